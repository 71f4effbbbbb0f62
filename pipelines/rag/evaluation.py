"""evaluate stage of the rag task: retrieval metrics of every variant, answer metrics of the run.

metrics/rag/eval.json        headline: the run's variant on every question set + its answers
metrics/rag/retrieval.json   every variant x question set (the report's comparison table)
metrics/rag/answers/<set>.jsonl   per answer: citations, refusal, F1, language
"""
from __future__ import annotations

import sys

from omegaconf import DictConfig

from pipelines.core import tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_json, write_jsonl
from pipelines.core.paths import TaskPaths

from .answer_checks import answer_metrics
from .index import headline_variant, load_rankings, read_variants
from .metrics import judge, ranking_metrics


@tracking.tracked("evaluate")
def evaluate(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    variants = read_variants(paths)
    head = headline_variant(cfg)
    ks = sorted(set(cfg.retrieve.ks))
    if max(ks) > cfg.retrieve.keep:
        raise PipelineError(f"retrieve.ks: {max(ks)} > retrieve.keep ({cfg.retrieve.keep})")
    grid: list[dict] = []
    headline: dict = {"variant": head, "retrieval": {}, "answers": {}}
    judgements: dict[str, dict[str, dict]] = {}
    for qs, spec in cfg.data.question_sets.items():
        rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
        ranked = load_rankings(paths, qs)
        chunk_cache: dict[str, list[dict]] = {}
        for name, ids in ranked.items():
            v = variants[name]
            col = v["collection"]
            if col not in chunk_cache:
                chunk_cache[col] = read_jsonl(paths.data / "chunks" / f"{col}.jsonl")
                judgements[f"{qs}|{col}"] = {j["id"]: j for j in judge(rows, chunk_cache[col], cfg.clean.collapse_dots)}
            js = [judgements[f"{qs}|{col}"][r["id"]] for r in rows]
            m = ranking_metrics(ids, js, ks)
            grid.append({"question_set": qs, "variant": name, **v, **m})
            if name == head:
                headline["retrieval"][qs] = m
        if spec.generate and (paths.data / "answers" / f"{qs}.jsonl").exists():
            answers = read_jsonl(paths.data / "answers" / f"{qs}.jsonl")
            col = cfg.run.collection
            rel = {i: set(j["relevant"]) for i, j in judgements.get(f"{qs}|{col}", {}).items()}
            summary, per = answer_metrics(answers, rel, cfg.generate.prompt.refusal)
            headline["answers"][qs] = summary
            write_jsonl(paths.metrics / "answers" / f"{qs}.jsonl", per)
    headline["best"] = _best(grid)
    headline["run"] = {k: cfg.run[k] for k in cfg.run}
    headline["generator"] = cfg.model.key
    write_json(paths.metrics / "retrieval.json", grid)
    write_json(paths.metrics / "eval.json", headline)
    _track(run, headline, grid)
    for qs, m in headline["retrieval"].items():
        if not m.get("n"):
            continue
        print(f"[rag:evaluate] {qs}: {head}: hit@5 {m.get('hit@5', 0):.3f} mrr@10 {m.get('mrr@10', 0):.3f}",
              file=sys.stderr)


def _track(run, headline: dict, grid: list[dict]) -> None:
    flat = {f"{qs}/{k}": v for qs, m in headline["retrieval"].items() for k, v in m.items()}
    flat.update({f"answers/{qs}/{k}": v for qs, m in headline["answers"].items() for k, v in m.items() if v is not None})
    run.log(flat)
    if grid and run.records:  # the whole comparison as one W&B table
        import wandb

        cols = sorted({k for r in grid for k in r})
        run.log({"retrieval_grid": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in grid])})


def _best(grid: list[dict]) -> dict:
    """Per question set and retriever: the variant with the best hit@5 (ties: MRR@10)."""
    best: dict = {}
    for row in grid:
        if "hit@5" not in row:
            continue
        key = f"{row['question_set']}/{row['retriever']}"
        cur = best.get(key)
        if cur is None or (row["hit@5"], row["mrr@10"]) > (cur["hit@5"], cur["mrr@10"]):
            best[key] = {"variant": row["variant"], "hit@5": row["hit@5"], "mrr@10": row["mrr@10"]}
    return best
