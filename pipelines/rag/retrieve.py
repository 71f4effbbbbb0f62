"""Scoring every query against every chunk at once: dense (cosine / euclidean / dot), BM25, hybrid.

Dense scores are one matrix product over all queries and all chunk windows, then a per-chunk
reduction of the window scores (`np.maximum.reduceat` over the contiguous windows of each
chunk) — no Python loop over chunks or queries.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from pipelines.core.errors import PipelineError

SIMILARITIES = ("cosine", "euclidean", "dot")
POOLINGS = ("max", "mean", "first")


def window_scores(q: np.ndarray, w: np.ndarray, similarity: str) -> np.ndarray:
    """[n_queries, n_windows] similarity; euclidean as 1 / (1 + distance)."""
    if similarity == "dot":
        return q @ w.T
    if similarity == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        wn = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        return qn @ wn.T
    if similarity == "euclidean":
        # |q - w|^2 = |q|^2 + |w|^2 - 2 q.w, without materialising the differences
        d2 = (q * q).sum(1)[:, None] + (w * w).sum(1)[None, :] - 2.0 * (q @ w.T)
        return 1.0 / (1.0 + np.sqrt(np.maximum(d2, 0.0)))
    raise PipelineError(f"retrieve.similarity: {similarity!r} is not one of {', '.join(SIMILARITIES)}")


def dense_scores(q: np.ndarray, windows: np.ndarray, owner: np.ndarray, n_chunks: int,
                 similarity: str, pooling: str = "max") -> np.ndarray:
    """[n_queries, n_chunks] scores from window vectors (`owner[i]` = chunk of window i, sorted)."""
    if pooling not in POOLINGS:
        raise PipelineError(f"retrieve.pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
    if len(owner) and (np.any(np.diff(owner) < 0) or owner[-1] >= n_chunks):
        raise PipelineError("embeddings: window owners must be sorted chunk indices (re-run the embed stage)")
    starts = np.searchsorted(owner, np.arange(n_chunks))
    if pooling == "first":
        return window_scores(q, windows[starts], similarity)
    if pooling == "mean":
        # mean of the window vectors (one vector per chunk), then the similarity
        sums = np.add.reduceat(windows, starts, axis=0)
        counts = np.diff(np.append(starts, len(owner)))[:, None]
        return window_scores(q, sums / counts, similarity)
    return np.maximum.reduceat(window_scores(q, windows, similarity), starts, axis=1)


# --------------------------------------------------------------------------- BM25
def _stemmer(language: str | None):
    if not language:
        return None
    import Stemmer  # PyStemmer (Snowball)

    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        raise PipelineError(f"retrieve.bm25.stemmer: no Snowball stemmer for {language!r}") from None


def bm25_scores(chunks: Sequence[str], queries: Sequence[str], cfg: Any) -> np.ndarray:
    """[n_queries, n_chunks] BM25 scores (bm25s; stopwords and Snowball stemming from config)."""
    import bm25s

    stem = _stemmer(cfg.stemmer)
    kw = dict(stopwords=cfg.stopwords or None, stemmer=stem, show_progress=False)
    corpus_tokens = bm25s.tokenize(list(chunks), **kw)
    index = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=cfg.method)
    index.index(corpus_tokens, show_progress=False)
    vocab = corpus_tokens.vocab
    out = np.zeros((len(queries), len(chunks)), dtype=np.float32)
    # bm25s.tokenize of the queries would build a new vocabulary: map query terms onto the corpus'
    q_tokens = bm25s.tokenize(list(queries), return_ids=False, **kw)
    for i, toks in enumerate(q_tokens):
        ids = [vocab[t] for t in toks if t in vocab]
        if ids:
            out[i] = index.get_scores(ids)
    return out


# --------------------------------------------------------------------------- fusion
def _minmax(s: np.ndarray) -> np.ndarray:
    lo, hi = s.min(1, keepdims=True), s.max(1, keepdims=True)
    return (s - lo) / np.maximum(hi - lo, 1e-12)


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every chunk per query (ties broken by chunk order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    r = np.empty_like(order)
    np.put_along_axis(r, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(len(scores), 0), axis=1)
    return r


def hybrid_scores(dense: np.ndarray, lexical: np.ndarray, method: str, alpha: float | None, rrf_k: int) -> np.ndarray:
    """Score fusion: rrf = sum of 1/(k + rank); linear = alpha * minmax(dense) + (1 - alpha) * minmax(bm25)."""
    if method == "rrf":
        return 1.0 / (rrf_k + ranks(dense)) + 1.0 / (rrf_k + ranks(lexical))
    if method == "linear":
        return alpha * _minmax(dense) + (1 - alpha) * _minmax(lexical)
    raise PipelineError(f"retrieve.hybrid.method: {method!r} is not one of rrf, linear")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the k best chunks per query, best first; k is clamped to the chunk count."""
    if k <= 0:
        raise PipelineError(f"top_k: must be > 0 (got {k})")
    k = min(k, scores.shape[1])
    # argpartition: O(n) per query instead of a full sort; rows with a tie at the k-th score
    # (e.g. BM25 rows where no query term occurs) get a stable full sort so that equal scores
    # are always broken by chunk id and the ranking is reproducible
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -part_scores), axis=1)  # by score, ties by chunk id
    idx = np.take_along_axis(part, order, 1)
    tied = np.flatnonzero((scores >= part_scores.min(1, keepdims=True)).sum(1) > k)
    if len(tied):
        idx[tied] = np.argsort(-scores[tied], axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(scores, idx, 1)


_TOKEN = re.compile(r"\w+")
