"""Retrieval latency: our vectorised scoring vs a per-chunk Python loop (the study's style), side by side.

    python bench/rag_retrieval.py [--chunks 10000] [--queries 100] [--dim 384] [--windows-per-chunk 2]

The study scored each question by looping over the chunks in Python and computing one
cosine similarity at a time. Ours (pipelines/rag/retrieve.py) scores all queries against all
chunk windows with one matrix product, reduces windows to chunks with `np.maximum.reduceat`
and takes the top-k with `argpartition`. Both get the same normalised random vectors (the
shapes of all-MiniLM-L6-v2 windows) and must return the same top-k; the script prints ms per
query for each and the ratio. The loop is timed on a subset of queries (it is slow) and
reported per query.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.rag.retrieve import dense_scores, top_k  # noqa: E402


def loop_top_k(q: np.ndarray, windows: np.ndarray, owner: np.ndarray, n_chunks: int, k: int) -> list[list[int]]:
    """Per query, per chunk: cosine of every window in plain Python/numpy calls, keep the best."""
    starts = np.searchsorted(owner, np.arange(n_chunks + 1))
    out = []
    for qv in q:
        scores = []
        for c in range(n_chunks):
            best = -2.0
            for w in windows[starts[c]:starts[c + 1]]:
                s = float(np.dot(qv, w) / (np.linalg.norm(qv) * np.linalg.norm(w)))
                best = max(best, s)
            scores.append((best, c))
        scores.sort(key=lambda t: (-t[0], t[1]))
        out.append([c for _, c in scores[:k]])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--loop-queries", type=int, default=5)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--windows-per-chunk", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    owner = np.repeat(np.arange(a.chunks), a.windows_per_chunk)
    windows = rng.normal(size=(len(owner), a.dim)).astype(np.float32)
    windows /= np.linalg.norm(windows, axis=1, keepdims=True)
    q = rng.normal(size=(a.queries, a.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    dense_scores(q[:2], windows, owner, a.chunks, "cosine")  # warm-up (BLAS threads)
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        ours, _ = top_k(dense_scores(q, windows, owner, a.chunks, "cosine", "max"), a.k)
    ours_ms = (time.perf_counter() - t0) / reps / a.queries * 1e3

    t0 = time.perf_counter()
    ref = loop_top_k(q[:a.loop_queries], windows, owner, a.chunks, a.k)
    loop_ms = (time.perf_counter() - t0) / a.loop_queries * 1e3
    same = ours[:a.loop_queries].tolist() == ref
    print(f"{a.chunks} chunks x {a.windows_per_chunk} windows x {a.dim}-d, top-{a.k}")
    print(f"per-chunk Python loop : {loop_ms:10.3f} ms/query ({a.loop_queries} queries)")
    print(f"vectorised (ours)     : {ours_ms:10.3f} ms/query ({a.queries} queries in one batch)")
    print(f"ratio                 : {loop_ms / ours_ms:10.1f}x   same top-{a.k}: {same}")
    if not same:
        sys.exit("rankings differ")


if __name__ == "__main__":
    main()
