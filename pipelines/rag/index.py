"""embed / retrieve stages of the rag task.

data/rag/embeddings/<embedding>/   windows.npy (float32, L2-normalised), owner.npy (chunk of each
                                   window), queries/<set>.npy, meta.json
data/rag/retrieval/<set>.npz       per variant: the `retrieve.keep` best chunk ids per question
data/rag/retrieval/variants.json   what each variant is (collection, embedder, retriever, ...)

Embeddings are computed once per (corpus, chunking, embedder) — each is its own DVC stage —
and retrieval is pure numpy over them, so changing similarity, pooling, top-k or the hybrid
re-runs retrieve/evaluate only.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_json, read_jsonl, write_json
from pipelines.core.paths import TaskPaths

from . import retrieve as R
from .chunking import retrieval_text
from .prep import selected


def _question_sets(cfg: DictConfig, corpus: str) -> list[str]:
    return [n for n, q in cfg.data.question_sets.items() if q.corpus == corpus]


def _check_embedding(cfg: DictConfig, name: str) -> tuple[DictConfig, DictConfig]:
    spec = cfg.embeddings[name]
    if spec.collection not in cfg.collections:
        raise PipelineError(f"embeddings.{name}.collection: unknown collection {spec.collection!r}")
    if spec.embedder not in cfg.embedders:
        raise PipelineError(f"embeddings.{name}.embedder: unknown embedder {spec.embedder!r}; "
                            f"known: {', '.join(cfg.embedders)}")
    return spec, cfg.collections[spec.collection]


def dry_run(cfg: DictConfig) -> dict:
    """The plan without weights: corpora, collections, embeddings (with each embedder's source)."""
    from pipelines.core.models import PACKAGED, trust_remote_code

    plan: dict = {"collections": {}, "embeddings": {}, "generator": cfg.model.key}
    from . import chunking

    for name, col in cfg.collections.items():
        chunking.check(col, f"collections.{name}")
        plan["collections"][name] = f"{col.corpus}: {col.method} {col.size}/{col.overlap}"
    for name, m in cfg.embedders.items():
        if m.source == "package" and m.key not in PACKAGED:
            raise PipelineError(f"embedders.{name}.key: unknown packaged model {m.key!r}")
        trust_remote_code(m, f"embedders.{name}")  # the shared one-line warning when set
    for name in cfg.embeddings:
        spec, _ = _check_embedding(cfg, name)
        m = cfg.embedders[spec.embedder]
        plan["embeddings"][name] = {"collection": spec.collection, "embedder": m.hub_id or m.key,
                                    "source": m.source, "trust_remote_code": bool(m.trust_remote_code),
                                    "params_estimate": _param_estimate(m)}
    for k, v in plan.items():
        print(f"[rag:dry-run] {k}: {v}", file=sys.stderr)
    return plan


def _param_estimate(m: DictConfig) -> int | None:
    """Parameter count from the config's `arch` facts (meta device: nothing is downloaded)."""
    if not m.arch:
        return None
    import torch
    from transformers import AutoConfig, AutoModel

    arch = dict(m.arch)
    conf = AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        model = AutoModel.from_config(conf)
    return sum(p.numel() for p in model.parameters())


def embed(cfg: DictConfig, run=None) -> None:
    if cfg.train.dry_run:
        dry_run(cfg)
        return
    paths = TaskPaths(cfg)
    from .embed import Encoder

    for name in selected(cfg, cfg.embeddings, "embedding"):
        spec, col = _check_embedding(cfg, name)
        chunks = read_jsonl(paths.data / "chunks" / f"{spec.collection}.jsonl")
        t0 = time.time()
        import torch

        enc = Encoder(cfg.embedders[spec.embedder], paths.base_models, cfg.embed.max_tokens,
                      where=f"embedders.{spec.embedder}")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cfg.embed.bf16)):
            texts = [retrieval_text(c, col.prefix_section) for c in chunks]
            windows, owner = enc.encode_windows(texts, cfg.embed.window_stride,
                                                cfg.embed.batch_size)
            queries = {}
            for qs in _question_sets(cfg, col.corpus):
                rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
                queries[qs] = enc.encode([r["question"] for r in rows], cfg.embed.batch_size)
        seconds = time.time() - t0
        with atomic_path(paths.data / "embeddings" / name) as out:
            out.mkdir()
            np.save(out / "windows.npy", windows)
            np.save(out / "owner.npy", owner)
            (out / "queries").mkdir()
            for qs, q in queries.items():
                np.save(out / "queries" / f"{qs}.npy", q)
            write_json(out / "meta.json", {"collection": spec.collection, "embedder": spec.embedder,
                                           "chunks": len(chunks), "windows": len(windows), "dim": windows.shape[1],
                                           "max_tokens": enc.max_tokens, "window_stride": cfg.embed.window_stride,
                                           "truncated_chunks": int(np.sum(np.bincount(owner) > 1))})
        print(f"[rag:embed] {name}: {len(chunks)} chunks -> {len(windows)} windows of <= {enc.max_tokens} "
              f"tokens in {seconds:.1f}s", file=sys.stderr)


def hybrid_label(method: str, alpha: float | None) -> str:
    return f"hybrid-a{alpha:g}" if method == "linear" else "hybrid-rrf"


def variant_name(collection: str, retriever: str, embedder: str = "-", similarity: str = "-", pooling: str = "-") -> str:
    return f"{collection}|{embedder}|{retriever}|{similarity}|{pooling}"


def retrieve(cfg: DictConfig, run=None) -> None:
    """Rank every question of every set with every variant: dense (embedding x similarity x pooling),
    BM25 (per collection) and hybrid (embedding x similarity, with retrieve.pooling)."""
    paths = TaskPaths(cfg)
    rc = cfg.retrieve
    for s in rc.similarities:
        if s not in R.SIMILARITIES:
            raise PipelineError(f"retrieve.similarities: {s!r} is not one of {', '.join(R.SIMILARITIES)}")
    for p in [*rc.poolings, rc.pooling]:
        if p not in R.POOLINGS:
            raise PipelineError(f"retrieve.poolings: {p!r} is not one of {', '.join(R.POOLINGS)}")
    if rc.keep <= 0 or any(k <= 0 for k in rc.ks):
        raise PipelineError(f"retrieve.keep/ks: must be > 0 (keep={rc.keep}, ks={list(rc.ks)})")
    emb_root = paths.data / "embeddings"
    available = {n: s for n, s in cfg.embeddings.items() if (emb_root / n / "meta.json").exists()}
    missing = sorted(set(cfg.embeddings) - set(available))
    if missing:
        raise PipelineError(f"{emb_root}: embeddings {', '.join(missing)} missing; run `dvc repro` (rag_embed@...)")
    rankings: dict[str, dict[str, np.ndarray]] = {}
    variants: dict[str, dict] = {}
    if rc.hybrid.method == "linear" and not all(0 <= a <= 1 for a in rc.hybrid.alphas):
        raise PipelineError(f"retrieve.hybrid.alphas: each must be in [0, 1] (got {list(rc.hybrid.alphas)})")
    t0 = time.time()
    for col_name in cfg.collections:  # BM25 on every collection; dense and hybrid where embedded
        col = cfg.collections[col_name]
        chunks = read_jsonl(paths.data / "chunks" / f"{col_name}.jsonl")
        texts = [retrieval_text(c, col.prefix_section) for c in chunks]
        for qs in _question_sets(cfg, col.corpus):
            rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
            out = rankings.setdefault(qs, {})
            lexical = R.bm25_scores(texts, [r["question"] for r in rows], rc.bm25)
            hide = excluded(rows, chunks)

            def top(scores: np.ndarray) -> np.ndarray:
                return R.top_k(scores if hide is None else np.where(hide, -np.inf, scores), rc.keep)[0]

            name = variant_name(col_name, "bm25")
            out[name] = top(lexical)
            variants[name] = {"collection": col_name, "retriever": "bm25", "embedder": "-", "similarity": "-", "pooling": "-"}
            for emb_name, spec in available.items():
                if spec.collection != col_name:
                    continue
                d = emb_root / emb_name
                windows, owner = np.load(d / "windows.npy"), np.load(d / "owner.npy")
                q = np.load(d / "queries" / f"{qs}.npy")
                if len(q) != len(rows):
                    raise PipelineError(f"{d}: query embeddings of {qs!r} are stale; re-run rag_embed@{emb_name}")
                for sim in rc.similarities:
                    for pool in dict.fromkeys([*rc.poolings, rc.pooling]):
                        dense = R.dense_scores(q, windows, owner, len(chunks), sim, pool)
                        name = variant_name(col_name, "dense", spec.embedder, sim, pool)
                        out[name] = top(dense)
                        variants[name] = {"collection": col_name, "retriever": "dense", "embedder": spec.embedder,
                                          "similarity": sim, "pooling": pool}
                        if pool != rc.pooling:
                            continue
                        for alpha in (rc.hybrid.alphas if rc.hybrid.method == "linear" else [None]):
                            fused = R.hybrid_scores(dense, lexical, rc.hybrid.method, alpha, rc.hybrid.rrf_k)
                            name = variant_name(col_name, hybrid_label(rc.hybrid.method, alpha), spec.embedder, sim, pool)
                            out[name] = top(fused)
                            variants[name] = {"collection": col_name, "retriever": "hybrid", "embedder": spec.embedder,
                                              "similarity": sim, "pooling": pool, "alpha": alpha}
    with atomic_path(paths.data / "retrieval") as out_dir:
        out_dir.mkdir()
        for qs, by_variant in rankings.items():
            np.savez_compressed(out_dir / f"{qs}.npz", **{k: v.astype(np.int32) for k, v in by_variant.items()})
        write_json(out_dir / "variants.json", variants)
    print(f"[rag:retrieve] {len(variants)} variants x {len(rankings)} question sets in {time.time() - t0:.1f}s",
          file=sys.stderr)


def excluded(rows: list[dict], chunks: list[dict]) -> np.ndarray | None:
    """[n_questions, n_chunks] True where a chunk belongs to the question's `exclude_title` article
    (SQuAD documents are "<title>#<paragraph>"): those questions are asked without their article."""
    if not any(r.get("exclude_title") for r in rows):
        return None
    titles = np.array([c["doc"].rsplit("#", 1)[0] for c in chunks], dtype=object)
    return np.stack([titles == r["exclude_title"] if r.get("exclude_title") else np.zeros(len(chunks), bool)
                     for r in rows])


def load_rankings(paths: TaskPaths, qs: str) -> dict[str, np.ndarray]:
    f = paths.data / "retrieval" / f"{qs}.npz"
    if not f.exists():
        raise PipelineError(f"{f}: not found; run the retrieve stage")
    with np.load(f) as z:
        return {k: z[k] for k in z.files}


def headline_variant(cfg: DictConfig, corpus: str, choice: dict) -> str:
    """The variant whose chunks corpus' questions are answered from: the choose stage's pick
    (retriever, embedder, similarity, pooling, alpha) on this corpus' collection."""
    from .choose import collection_for

    col = collection_for(cfg, corpus)
    if choice["retriever"] == "bm25":
        return variant_name(col, "bm25")
    if not any(s.collection == col and s.embedder == choice["embedder"] for s in cfg.embeddings.values()):
        raise PipelineError(f"embeddings: no embedding of collection {col!r} with the chosen embedder "
                            f"{choice['embedder']!r}; add one (or pin run.embedder)")
    retriever = choice["retriever"]
    if retriever == "hybrid":
        retriever = hybrid_label(cfg.retrieve.hybrid.method, choice["alpha"])
    return variant_name(col, retriever, choice["embedder"], choice["similarity"], choice["pooling"])


def read_variants(paths: TaskPaths) -> dict:
    return read_json(paths.data / "retrieval" / "variants.json")

