"""Start/end logits of every feature -> one answer text per example (cf. HF `utils_qa.py`).

For each example, every window (feature) proposes spans; a span is (start token, end token)
with both tokens inside the context (offset != [-1, -1]), end >= start and at most
`max_answer_length` tokens, scored start_logit + end_logit. Unlike taking the argmax of start
and end separately (which can give end < start or a span in the question), the search is exact
over all valid spans of the band, vectorised with numpy. The `n_best` spans over all windows
are kept (probabilities by softmax over them); the best is the prediction.

SQuAD v2: the null answer's score is start_logit[CLS] + end_logit[CLS], the minimum over the
example's windows; "" is predicted when null score - best span score > threshold.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np


def best_spans(start: np.ndarray, end: np.ndarray, valid: np.ndarray, max_answer_length: int,
               k: int) -> list[tuple[float, int, int]]:
    """Top-k (score, start, end) over spans with valid[start], valid[end], 0 <= end-start < max_len."""
    n = len(start)
    if n == 0 or not valid.any():
        return []
    width = min(max_answer_length, n)
    # band[i, w] = score of span (i, i + w); invalid cells are -inf
    idx_end = np.arange(n)[:, None] + np.arange(width)[None, :]
    inside = idx_end < n
    idx_end_c = np.minimum(idx_end, n - 1)
    band = start[:, None] + end[idx_end_c]
    ok = inside & valid[:, None] & valid[idx_end_c]
    band = np.where(ok, band, -np.inf)
    flat = band.ravel()
    k = min(k, int(ok.sum()))
    if k == 0:
        return []
    top = np.argpartition(-flat, k - 1)[:k]
    top = top[np.lexsort((top, -flat[top]))]  # by score, ties by position: deterministic
    return [(float(flat[t]), int(t // width), int(t // width + t % width)) for t in top]


def postprocess(examples: Sequence[dict], features: dict[str, Sequence], start_logits: Sequence[np.ndarray],
                end_logits: Sequence[np.ndarray], n_best: int = 20, max_answer_length: int = 30,
                version_2: bool = False, null_threshold: float = 0.0) -> dict[str, dict]:
    """{example id: {"prediction", "score", "null_score", "nbest": [{"text", "score", "prob"}]}}.

    `features` needs `example_id` and `offset_mapping`; logits per feature may be longer than
    the feature (batch padding) or padded with -100 by the Trainer: only the first
    len(offset_mapping) positions are read.
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError("n_best and max_answer_length must be >= 1")
    by_example: dict[str, list[int]] = defaultdict(list)
    for i, eid in enumerate(features["example_id"]):
        by_example[eid].append(i)
    out: dict[str, dict] = {}
    for ex in examples:
        context = ex["context"]
        cands: dict[str, tuple[float, int, int]] = {}  # text -> best (score, char start, char end)
        null_score = None
        for fi in by_example.get(ex["id"], []):
            offsets = np.asarray(features["offset_mapping"][fi], dtype=np.int64).reshape(-1, 2)
            n = len(offsets)
            s = np.asarray(start_logits[fi], dtype=np.float64)[:n]
            e = np.asarray(end_logits[fi], dtype=np.float64)[:n]
            cls = int(features["cls_index"][fi]) if "cls_index" in features else 0
            fnull = float(s[cls] + e[cls])
            null_score = fnull if null_score is None else min(null_score, fnull)
            valid = offsets[:, 0] >= 0
            for score, a, b in best_spans(s, e, valid, max_answer_length, n_best):
                c0, c1 = int(offsets[a, 0]), int(offsets[b, 1])
                text = context[c0:c1]
                if text.strip() and (text not in cands or score > cands[text][0]):
                    cands[text] = (score, c0, c1)
        ranked = sorted(cands.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0]))[:n_best]
        scores = np.array([v[0] for _, v in ranked], dtype=np.float64)
        probs = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() if len(scores) else scores
        nbest = [{"text": t, "score": round(float(v[0]), 6), "prob": round(float(p), 6), "start": v[1]}
                 for (t, v), p in zip(ranked, probs)]
        pred = nbest[0]["text"] if nbest else ""
        best = nbest[0]["score"] if nbest else None
        if version_2 and null_score is not None and (best is None or null_score - best > null_threshold):
            pred = ""
        out[ex["id"]] = {"prediction": pred, "score": best,
                         "null_score": None if null_score is None else round(null_score, 6), "nbest": nbest}
    return out
