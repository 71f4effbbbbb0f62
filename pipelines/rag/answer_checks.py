"""Checks of the rag answers (evaluate stage): citations [n], refusals, language, F1/EM/ROUGE-L.

Every summary metric `m` comes with `m_ci`: its 95% percentile-bootstrap interval over the
same items as its mean (core/intervals.py; one fixed seed, so reruns give the same bytes).

Kept apart from the generate stage (answer.py) so that DVC re-runs only evaluation when a
metric changes.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def citations(text: str) -> list[int]:
    """Numbers cited as [3], [1, 2] or [1][4], in order of appearance (repeats kept once)."""
    out: list[int] = []
    for m in _CITE.finditer(text):
        for n in re.split(r"\s*[,;]\s*", m.group(1)):
            if int(n) not in out:
                out.append(int(n))
    return out


def strip_citations(text: str) -> str:
    return re.sub(r"\s+", " ", _CITE.sub(" ", text)).strip()


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"\s+", " ", "".join(c for c in text if not unicodedata.combining(c))).strip(" .\"'")


def exact_match(pred: str, ref: str) -> bool:
    """Same words as the reference after token_f1's folding (lower case, punctuation dropped), so
    "1996 [2]." matches "1996" once the citation is stripped."""
    from pipelines.core.textmetrics import tokens

    return tokens(strip_citations(pred)) == tokens(ref)


def is_refusal(text: str, refusal: str) -> bool:
    """The answer says the refusal sentence (case/accents/punctuation-insensitive)."""
    return _fold(refusal) in _fold(text)


def language(text: str) -> str:
    import py3langid as langid

    text = strip_citations(text)
    return langid.classify(text)[0] if text.strip() else ""


def answer_metrics(rows: Sequence[dict], relevant: dict[str, set], refusal: str) -> tuple[dict, list[dict]]:
    """Citation validity, refusals (wanted on unanswerable questions), F1 / EM / ROUGE-L, Spanish
    share, each with a bootstrap interval; and the per-answer checks."""
    from pipelines.core.intervals import bootstrap_ci
    from pipelines.core.textmetrics import rouge_l, token_f1

    per = []
    for r in rows:
        cited = citations(r["answer"])
        k = len(r["chunk_ids"])
        body = strip_citations(r["answer"])
        ref = is_refusal(r["answer"], refusal)
        rel = relevant.get(r["id"], set())
        cited_ids = [r["chunk_ids"][c - 1] for c in cited if 1 <= c <= k]
        per.append({
            "id": r["id"], "answerable": r["answerable"], "cited": cited, "refusal": ref,
            "citation_valid": all(1 <= c <= k for c in cited), "cites": bool(cited),
            "cites_relevant": any(c in rel for c in cited_ids),
            "f1": token_f1(body, r["reference"]) if r["answerable"] else None,
            "rouge_l": rouge_l(body, r["reference"]) if r["answerable"] else None,
            "spanish": language(r["answer"]) == "es", "eos": r["eos"],
            "evidence_in_prompt": bool(r.get("evidence_in_prompt")),
            "em": exact_match(body, r["reference"]) if r["answerable"] else None})  # last: older keys keep their places
    ans = [p for p in per if p["answerable"]]
    neg = [p for p in per if not p["answerable"]]

    def mean(xs: Sequence[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    # which items each metric averages over (the interval resamples exactly those)
    items = {
        # over the answers that cite at all (None when none does: validity would be vacuous)
        "citation_valid": [p["citation_valid"] for p in per if p["cites"]],
        "cites_any": [p["cites"] for p in ans],
        "cites_relevant": [p["cites_relevant"] for p in ans],
        "refusal_on_unanswerable": [p["refusal"] for p in neg],
        "false_refusal": [p["refusal"] for p in ans],
        "f1": [p["f1"] for p in ans], "rouge_l": [p["rouge_l"] for p in ans],
        "spanish": [p["spanish"] for p in per], "eos": [p["eos"] for p in per],
        "evidence_in_prompt": [p["evidence_in_prompt"] for p in ans],
        "em": [p["em"] for p in ans],
    }
    summary = {"n": len(per), "n_answerable": len(ans), "n_unanswerable": len(neg),
               **{m: mean(xs) for m, xs in items.items()}}
    summary.update({f"{m}_ci": list(bootstrap_ci(xs, seed=0)) for m, xs in items.items()})
    return summary, per
