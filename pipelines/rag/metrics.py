"""Relevance judgements and ranking metrics (hit@k, recall@k, MRR@k, nDCG@k).

Binary relevance: a chunk is relevant to a question when it contains one of the question's
evidence strings after `corpus.normalize` (or, for SQuAD, when it is the question's own
paragraph). recall@k = share of the question's *evidence strings* found in the top k (a
question with three evidence strings spread over three chunks needs all three for 1.0).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .corpus import normalize


def judge(questions: Sequence[dict], chunks: Sequence[dict], collapse_dots: bool = True) -> list[dict]:
    """Per question: {relevant: sorted chunk ids, evidence_chunks: [ids per evidence string]}.

    An evidence string split across two chunks (it straddles a window boundary) has no chunk:
    the question then counts as a miss for every retriever, and `unreachable` says so.
    """
    texts = [normalize(c["text"], collapse_dots) for c in chunks]
    by_doc: dict[str, list[int]] = {}
    for c in chunks:
        by_doc.setdefault(c["doc"], []).append(c["id"])
    out = []
    for q in questions:
        if q.get("relevant_docs"):
            ev_chunks = [sorted(i for d in q["relevant_docs"] for i in by_doc.get(d, []))]
        else:
            ev_chunks = []
            for e in q["evidence"]:
                e = normalize(e, collapse_dots)
                ev_chunks.append([i for i, t in enumerate(texts) if e in t])
        relevant = sorted({i for ids in ev_chunks for i in ids})
        out.append({"id": q["id"], "answerable": bool(q["answerable"]), "relevant": relevant,
                    "evidence_chunks": ev_chunks, "unreachable": bool(q["answerable"]) and not relevant})
    return out


def ranking_metrics(ranked: np.ndarray, judgements: Sequence[dict], ks: Sequence[int], ndcg_k: int = 10,
                    mrr_k: int = 10) -> dict:
    """Mean metrics over answerable questions; `ranked` = [n_questions, >= max k] chunk ids, best first."""
    rows = [(r, j) for r, j in zip(ranked, judgements) if j["answerable"]]
    n = len(rows)
    if not n:
        return {"n": 0}
    out: dict = {"n": n, "unreachable": sum(j["unreachable"] for _, j in rows)}
    for k in ks:
        hits, recalls = [], []
        for r, j in rows:
            top = set(r[:k].tolist())
            hits.append(float(bool(top & set(j["relevant"]))))
            ev = j["evidence_chunks"]
            recalls.append(sum(bool(top & set(ids)) for ids in ev) / len(ev) if ev else 0.0)
        out[f"hit@{k}"] = float(np.mean(hits))
        out[f"recall@{k}"] = float(np.mean(recalls))
    rr, nd = [], []
    for r, j in rows:
        rel = set(j["relevant"])
        first = next((i for i, c in enumerate(r[:mrr_k].tolist()) if c in rel), None)
        rr.append(0.0 if first is None else 1.0 / (first + 1))
        dcg = sum(1.0 / math.log2(i + 2) for i, c in enumerate(r[:ndcg_k].tolist()) if c in rel)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), ndcg_k)))
        nd.append(dcg / ideal if ideal else 0.0)
    out[f"mrr@{mrr_k}"] = float(np.mean(rr))
    out[f"ndcg@{ndcg_k}"] = float(np.mean(nd))
    return out
