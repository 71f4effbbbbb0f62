"""Extractive reader baseline: the fine-tuned extractive_qa model reads a question's top-k chunks.

Each (question, chunk) pair is one SQuAD-style example, tokenised, scored and post-processed by
the extractive_qa code itself (features.prepare_features, model.predict_logits,
postprocess.postprocess), so the windows, span search and span score are the ones its evaluate
stage reports. Within a chunk the span is postprocess's best (start_logit + end_logit); which
chunk answers is `rank_by`, higher is better, ties to the earlier chunk:
* "span": that span score, start_logit + end_logit (raw logits), postprocess's own ranking of
  spans across windows;
* "null": minus the chunk's no-answer score (start_logit + end_logit at CLS, lowest over its
  windows): the model was trained to point at CLS in windows without the answer, so this is
  its own "the answer is here" signal; the SQuAD-v2 path of postprocess reads it too;
* "span_minus_null": span score - null score, the quantity postprocess's SQuAD-v2 decision
  compares with null_score_diff_threshold.
Measured with the fine-tuned me5-small on SQuAD-es val articles (100 questions, gold among 3
paragraphs): the gold chunk wins 0.62 ("span"), 0.84 ("null"), 0.64 ("span_minus_null") with
distractors from other articles; 0.57 / 0.81 / 0.63 with distractors from the same article.
The span logits sit in a narrow band (~3-4.5) for any paragraph, so "span" barely separates.
The winning chunk's number is the citation, valid by construction; `score` is the rank_by
value, and below a threshold chosen on a tuning set (`choose_threshold`) the reader refuses.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipelines.extractive_qa.features import prepare_features
from pipelines.extractive_qa.model import predict_logits
from pipelines.extractive_qa.postprocess import postprocess

# chunk score from one postprocess record (its "score" is the best span's start+end logits)
RANK_BY = {"span": lambda p: p["score"], "null": lambda p: -p["null_score"],
           "span_minus_null": lambda p: round(p["score"] - p["null_score"], 6)}


def read(model: Any, tok: Any, questions: Sequence[str], contexts: Sequence[Sequence[str]], *, max_length: int,
         doc_stride: int, max_answer_length: int, batch_size: int, max_query_length: int = 64,
         n_best: int = 20, rank_by: str = "span") -> list[dict]:
    """Per question {"text", "score", "n", "start", "span_score", "null_score", "chunk_scores"}.

    contexts[i] holds question i's chunk texts in prompt order; `n` is the 1-based number of the
    chunk the span comes from and `start` the span's character offset in that chunk; `score` is
    the `rank_by` value of that chunk (see the module doc), span_score / null_score its span
    and no-answer scores; `chunk_scores` holds the rank_by value of every chunk (None where a
    chunk offers no span). A question without any span gets text "" and the rest None.
    All pairs of all questions go through the model together, in length-sorted batches of
    `batch_size`.
    """
    from datasets import Dataset

    if rank_by not in RANK_BY:
        raise ValueError(f"read: rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
    if len(questions) != len(contexts):
        raise ValueError(f"read: {len(questions)} questions but {len(contexts)} context lists")
    rows = [{"id": f"{i}/{j}", "question": q, "context": c, "answers": []}
            for i, (q, chunks) in enumerate(zip(questions, contexts)) for j, c in enumerate(chunks)]
    preds: dict[str, dict] = {}
    if rows:
        feats = Dataset.from_dict(prepare_features(tok, rows, max_length, doc_stride, max_query_length, with_labels=False))
        starts, ends = predict_logits(model, tok, feats, batch_size)
        preds = postprocess(rows, {k: feats[k] for k in ("example_id", "offset_mapping", "cls_index")},
                            starts, ends, n_best, max_answer_length)
    out = []
    for i, chunks in enumerate(contexts):
        per = [preds[f"{i}/{j}"] for j in range(len(chunks))]
        scores = [RANK_BY[rank_by](p) if p["score"] is not None else None for p in per]
        best = max((j for j, s in enumerate(scores) if s is not None), key=lambda j: (scores[j], -j), default=None)
        if best is None:
            out.append({"text": "", "score": None, "n": None, "start": None, "span_score": None, "null_score": None,
                        "chunk_scores": scores})
        else:
            p = per[best]
            top = p["nbest"][0]
            out.append({"text": top["text"], "score": scores[best], "n": best + 1, "start": top["start"],
                        "span_score": p["score"], "null_score": p["null_score"], "chunk_scores": scores})
    return out


def format_answer(span: str, n: int, citation_template: str = "[{n}]") -> str:
    """The span followed by its citation: format_answer("1996", 2) == "1996 [2]"."""
    return f"{span.strip()} {citation_template.format(n=n)}"


def answer_or_refuse(pred: dict, threshold: float, refusal: str, citation_template: str = "[{n}]") -> str:
    """The cited span when its score reaches `threshold`, else the refusal sentence."""
    if pred["score"] is None or not pred["text"].strip() or pred["score"] < threshold:
        return refusal
    return format_answer(pred["text"], pred["n"], citation_template)


def choose_threshold(scores: Sequence[float | None], answerable: Sequence[bool]) -> tuple[float, dict]:
    """The threshold (answer iff score >= threshold) with the best answer-vs-refuse accuracy on a
    tuning set: answerable questions should be answered, unanswerable ones refused.

    Candidates are the distinct scores (each the lowest threshold that answers everything
    scoring at least that) and one just above the highest (refuse all); ties go to the lower
    threshold. A None score (no span) is always refused. info: accuracy and, at the chosen
    threshold, the answer rate, false refusals and refusals on unanswerable; the grid with
    the accuracy of each candidate.
    """
    if len(scores) != len(answerable):
        raise ValueError(f"choose_threshold: {len(scores)} scores but {len(answerable)} labels")
    if not len(scores):
        raise ValueError("choose_threshold: no tuning questions")
    s = np.array([-np.inf if v is None else float(v) for v in scores], dtype=np.float64)
    y = np.asarray(answerable, dtype=bool)
    grid = np.unique(s[np.isfinite(s)])
    grid = np.append(grid, np.nextafter(grid[-1], np.inf)) if len(grid) else np.array([0.0])
    answers = s[None, :] >= grid[:, None]  # (candidates, questions)
    acc = (answers == y[None, :]).mean(axis=1)
    best = int(np.argmax(acc))  # the first maximum: grid ascending, so the lower threshold
    chosen = answers[best]
    info = {"accuracy": float(acc[best]), "n": int(len(y)), "n_answerable": int(y.sum()),
            "answer_rate": float(chosen.mean()),
            "false_refusal": float((~chosen[y]).mean()) if y.any() else None,
            "refusal_on_unanswerable": float((~chosen[~y]).mean()) if (~y).any() else None,
            "grid": [float(t) for t in grid], "accuracies": [float(a) for a in acc]}
    return float(grid[best]), info
