"""choose stage of the rag task: the headline retriever and top-k, picked on the tuning set only.

Every variant of the retrieve stage is scored on `choose.tune_set` (SQuAD-es questions of
extractive_qa's *training* articles, a set that is never reported as a result) and the best one
by `choose.metric` (ties: MRR@10) becomes the headline: its retriever, embedder, similarity,
pooling and hybrid weight are then applied to every corpus with that corpus' collection
(`run.collections`). top-k is the smallest of `choose.top_ks` whose tuning hit@k reaches
`choose.min_hit`. A `run.*` value that is set pins that field (the choice is made among the
variants that match it): sweeps over explicit variants keep working.

This module reads the tuning set's files and nothing else (tests/test_rag_choose.py checks it):
the test questions cannot leak into the choice.

data/rag/choice.json   the chosen fields, the tuning metrics of every candidate, the hybrid α curve
"""
from __future__ import annotations

import sys

from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json, read_jsonl, write_json
from pipelines.core.paths import TaskPaths

from .metrics import judge, ranking_metrics

PINNABLE = ("retriever", "embedder", "similarity", "alpha")


def tune_set(cfg: DictConfig) -> tuple[str, DictConfig]:
    name = cfg.choose.tune_set
    if name not in cfg.data.question_sets:
        raise PipelineError(f"choose.tune_set: unknown question set {name!r} (known: {', '.join(cfg.data.question_sets)}); "
                            f"add a tuning set (role: tune) or pin run.retriever/embedder/similarity/alpha/top_k")
    spec = cfg.data.question_sets[name]
    if spec.role != "tune":
        raise PipelineError(f"choose.tune_set: question set {name!r} has role {spec.role!r}; the headline must be "
                            f"chosen on a set with role: tune (never on a reported one)")
    return name, spec


def collection_for(cfg: DictConfig, corpus: str) -> str:
    cols = cfg.run.collections
    if corpus not in cols:
        raise PipelineError(f"run.collections: no collection for corpus {corpus!r}")
    if cols[corpus] not in cfg.collections:
        raise PipelineError(f"run.collections.{corpus}: unknown collection {cols[corpus]!r}")
    return cols[corpus]


def _matches_pins(v: dict, run: DictConfig) -> bool:
    for f in PINNABLE:
        want = run[f]
        if want is None:
            continue
        got = v.get(f)
        if f == "alpha":
            if v["retriever"] == "hybrid" and (got is None or abs(got - want) > 1e-9):
                return False
        elif f in ("embedder", "similarity") and v["retriever"] == "bm25":
            continue  # BM25 has no embedder/similarity: a pin on them does not exclude it
        elif got != want:
            return False
    return True


def _all_pinned(cfg: DictConfig) -> dict | None:
    """The choice when run.* pins every field (nothing left to tune: no tuning set needed)."""
    r = cfg.run
    if r.retriever is None or r.top_k is None:
        return None
    if r.retriever != "bm25" and (r.embedder is None or r.similarity is None or (r.retriever == "hybrid" and r.alpha is None)):
        return None
    dense = r.retriever != "bm25"
    return {"tune_set": None, "questions": 0, "collection": None, "metric": cfg.choose.metric, "retriever": r.retriever,
            "embedder": r.embedder if dense else "-", "similarity": r.similarity if dense else "-",
            "pooling": cfg.retrieve.pooling if dense else "-", "alpha": r.alpha if r.retriever == "hybrid" else None,
            "top_k": int(r.top_k), "top_k_rule": "pinned by run.top_k", "pinned": {k: r[k] for k in (*PINNABLE, "top_k")},
            "tuning": {}, "candidates": [], "alpha_curve": []}


def choose(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    pinned = _all_pinned(cfg)
    if pinned is not None and cfg.choose.tune_set not in cfg.data.question_sets:
        write_json(paths.data / "choice.json", pinned)
        print(f"[rag:choose] every run.* field pinned, no tuning set: {pinned['retriever']} top-{pinned['top_k']}",
              file=sys.stderr)
        return
    name, spec = tune_set(cfg)
    col = collection_for(cfg, spec.corpus)
    rows = read_jsonl(paths.data / "clean" / "questions" / f"{name}.jsonl")
    f = paths.data / "retrieval" / f"{name}.npz"
    if not f.exists():
        raise PipelineError(f"{f}: not found; run the retrieve stage")
    import numpy as np

    with np.load(f) as z:
        ranked = {k: z[k] for k in z.files}
    variants = read_json(paths.data / "retrieval" / "variants.json")
    chunks = read_jsonl(paths.data / "chunks" / f"{col}.jsonl")
    js = judge(rows, chunks, cfg.clean.collapse_dots)
    c = cfg.choose
    ks = sorted(set(cfg.retrieve.ks) | set(c.top_ks))
    if max(ks) > cfg.retrieve.keep:
        raise PipelineError(f"choose.top_ks: {max(ks)} > retrieve.keep ({cfg.retrieve.keep})")
    table = []
    for vname, ids in ranked.items():
        v = variants[vname]
        if v["collection"] != col:
            continue
        m = ranking_metrics(ids, js, ks)
        if not m.get("n"):
            raise PipelineError(f"choose.tune_set: {name!r} has no answerable question")
        table.append({"variant": vname, **v, **m})
    if c.metric not in table[0]:
        raise PipelineError(f"choose.metric: {c.metric!r} is not a ranking metric ({', '.join(k for k in table[0] if '@' in k)})")
    candidates = [t for t in table if _matches_pins(t, cfg.run)]
    if not candidates:
        raise PipelineError(f"run: no retrieval variant of {col!r} matches the pinned run.* fields "
                            f"({', '.join(f'{k}={cfg.run[k]}' for k in PINNABLE if cfg.run[k] is not None)})")
    best = max(candidates, key=lambda t: (t[c.metric], t["mrr@10"], t["variant"]))
    if cfg.run.top_k is not None:
        top_k, why = int(cfg.run.top_k), "pinned by run.top_k"
    else:
        ok = [k for k in sorted(c.top_ks) if best[f"hit@{k}"] >= c.min_hit]
        top_k = ok[0] if ok else max(c.top_ks)
        why = (f"smallest of {sorted(c.top_ks)} with tuning hit@k >= {c.min_hit}" if ok
               else f"no k of {sorted(c.top_ks)} reaches hit@k {c.min_hit}: the largest")
    choice = {"tune_set": name, "questions": len(rows), "collection": col, "metric": c.metric,
              "retriever": best["retriever"], "embedder": best["embedder"], "similarity": best["similarity"],
              "pooling": best["pooling"], "alpha": best.get("alpha"), "top_k": top_k, "top_k_rule": why,
              "pinned": {k: cfg.run[k] for k in (*PINNABLE, "top_k") if cfg.run[k] is not None},
              "tuning": {k: best[k] for k in best if "@" in k or k == "n"},
              "candidates": sorted(candidates, key=lambda t: (-t[c.metric], -t["mrr@10"], t["variant"])),
              "alpha_curve": sorted(({"embedder": t["embedder"], "similarity": t["similarity"], "alpha": t["alpha"],
                                      c.metric: t[c.metric], "mrr@10": t["mrr@10"]}
                                     for t in table if t["retriever"] == "hybrid"),
                                    key=lambda t: (t["embedder"], t["similarity"], t["alpha"]))}
    write_json(paths.data / "choice.json", choice)
    print(f"[rag:choose] on {name} ({len(rows)} questions, {col}): {best['variant']} {c.metric} "
          f"{best[c.metric]:.3f}, top-k {top_k} ({why})", file=sys.stderr)


def read_choice(paths: TaskPaths) -> dict:
    f = paths.data / "choice.json"
    if not f.exists():
        raise PipelineError(f"{f}: not found; run the choose stage")
    return read_json(f)
