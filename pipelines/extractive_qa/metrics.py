"""EM/F1 of predicted answer texts against a split's references, under every configured
normalisation (the official English-article one and a Spanish one by default)."""
from __future__ import annotations

from typing import Mapping

from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.squad_metric import Normaliser, squad_scores

DIGITS = 6  # metrics files are rounded: stable across platforms, still exact to 1e-6


def normalisers(ev: DictConfig) -> dict[str, Normaliser]:
    out = {name: Normaliser(tuple(n.articles), n.extra_punctuation) for name, n in ev.normalisation.items()}
    if ev.primary not in out:
        raise PipelineError(f"evaluate.primary: {ev.primary!r} is not one of evaluate.normalisation "
                            f"({', '.join(out) or 'none'})")
    return out


def references(row: dict) -> list[str]:
    return [] if row.get("is_impossible") else [a["text"] for a in row["answers"]]


def score_predictions(rows: list[dict], predictions: Mapping[str, str], ev: DictConfig) -> tuple[dict, list[dict]]:
    """(summary, per-question rows). Every row must have a prediction ("" is a prediction)."""
    missing = [r["id"] for r in rows if r["id"] not in predictions]
    if missing:
        raise PipelineError(f"predictions: {len(missing)} question(s) have no prediction, e.g. {missing[0]!r}")
    norms = normalisers(ev)
    preds = [predictions[r["id"]] for r in rows]
    refs = [references(r) for r in rows]
    summary: dict = {"n": len(rows), "primary": ev.primary, "normalisation": {}}
    per_q = [{"id": r["id"], "title": r.get("title"), "question": r["question"], "prediction": p,
              "references": ref, "scores": {}} for r, p, ref in zip(rows, preds, refs)]
    for name, norm in norms.items():
        s = squad_scores(preds, refs, norm)
        summary["normalisation"][name] = {"exact_match": round(s["exact_match"], DIGITS), "f1": round(s["f1"], DIGITS)}
        for row, (em, f1) in zip(per_q, s["per_question"]):
            row["scores"][name] = {"em": em, "f1": round(f1, DIGITS)}
    summary.update(summary["normalisation"][ev.primary])
    for row in per_q:
        row.update(em=row["scores"][ev.primary]["em"], f1=row["scores"][ev.primary]["f1"])
    return summary, per_q
