"""generate stage of the rag task, one DVC stage per answering system (`--set select=<system>`):

  raft      the generator fine-tuned on cited answers (raft.py), the headline
  prompted  the same base generator with the same prompt, not fine-tuned (baseline)
  reader    the fine-tuned extractive_qa model reading the chunks: the best span, cited by the
            number of the chunk it came from; refuses under a span-score threshold chosen on the
            tuning sets (reader.py)

Every system answers the same questions (each set's seeded `generate_limit` sample) from the
same chunks: the chosen retriever's top-k (choose stage) on the set's corpus, numbered [1]..[k]
in rank order. Answers land in data/rag/answers/<system>/<set>.jsonl with the chunk ids behind
each number, so every citation can be traced to its source. The checks of the answers are in
answer_checks.py, an evaluate-only dependency: changing a metric does not re-run generation.
"""
from __future__ import annotations

import random
import sys
import time
from typing import Sequence

from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_json, write_jsonl
from pipelines.core.paths import TaskPaths

from .choose import read_choice
from .index import headline_variant, load_rankings
from .prep import selected
from .prompting import chunk_view, render_prompt

SYSTEMS = ("raft", "prompted", "reader")


def answer_sets(cfg: DictConfig) -> list[str]:
    sets = [n for n, q in cfg.data.question_sets.items() if q.generate and q.role == "test"]
    if not sets:
        raise PipelineError("data.question_sets: none to answer (generate: true, role: test)")
    return sets


def contexts(cfg: DictConfig, paths: TaskPaths, qs: str, choice: dict,
             limit: int | None) -> tuple[list[dict], list[list[dict]], str]:
    """(questions, their top-k chunks, variant) for one question set; `limit` = a seeded sample."""
    spec = cfg.data.question_sets[qs]
    variant = headline_variant(cfg, spec.corpus, choice)
    col = variant.split("|", 1)[0]
    chunks = read_jsonl(paths.data / "chunks" / f"{col}.jsonl")
    rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
    ranked = load_rankings(paths, qs)
    if variant not in ranked:
        raise PipelineError(f"retrieval: no variant {variant!r} for {qs!r} (check run.* and embeddings)")
    k = int(choice["top_k"])
    if k > len(chunks):  # documented clamping: a top-k beyond the corpus means "all chunks"
        print(f"warning: top-k {k} > {len(chunks)} chunks of {col}; using {len(chunks)}", file=sys.stderr)
        k = len(chunks)
    if k > cfg.retrieve.keep:
        raise PipelineError(f"top-k: {k} > retrieve.keep ({cfg.retrieve.keep}); raise retrieve.keep")
    idx = list(range(len(rows)))
    if limit is not None and limit < len(rows):
        idx = sorted(random.Random(cfg.runtime.seed).sample(idx, limit))
    top = ranked[variant][:, :k]
    return [rows[i] for i in idx], [[chunks[int(j)] for j in top[i]] for i in idx], variant


def generate(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    choice = read_choice(paths)
    for system in selected(cfg, {s: s for s in (SYSTEMS if cfg.select else cfg.generate.systems)}, "answering system"):
        t0 = time.time()
        answer_fn, info = _system(cfg, paths, system, choice)
        n = 0
        out: dict[str, list[dict]] = {}
        for qs in answer_sets(cfg):
            rows, ctx, variant = contexts(cfg, paths, qs, choice, cfg.data.question_sets[qs].generate_limit)
            outs = answer_fn(rows, ctx)
            out[qs] = [{"id": r["id"], "question": r["question"], "answerable": r["answerable"],
                        "reference": r.get("answer", ""), "chunk_ids": [c["id"] for c in cs], "variant": variant,
                        # could it have answered? an evidence string / the reference inside the chunks it saw
                        "evidence_in_prompt": _evidence_seen(r, cs, cfg) if system != "reader" else None,
                        **o} for r, cs, o in zip(rows, ctx, outs)]
            n += len(rows)
        for qs, rows in out.items():
            write_jsonl(paths.data / "answers" / system / f"{qs}.jsonl", rows)
        write_json(paths.data / "answers" / system / "info.json", {**info, "seconds": round(time.time() - t0, 1),
                                                                   "answers": n})
        print(f"[rag:generate] {system}: {n} answers in {time.time() - t0:.1f}s", file=sys.stderr)


def _system(cfg: DictConfig, paths: TaskPaths, system: str, choice: dict):
    """(answer function over (questions, chunk lists), info) for one system."""
    if system == "reader":
        from .reader_stage import reader_system

        return reader_system(cfg, paths, choice)
    from pipelines.core import causal_lm

    if system == "raft":
        from pipelines.core.sft import load_finetuned_lm

        model, tok = load_finetuned_lm(cfg, paths.models / "final")
    else:
        model, tok = causal_lm.load_causal_lm(cfg.model, paths.base_models)
    pc = cfg.prompt

    def answer(rows: Sequence[dict], ctx: Sequence[Sequence[dict]]) -> list[dict]:
        texts = [render_prompt(tok, r["question"], cs, pc) for r, cs in zip(rows, ctx)]
        outs = causal_lm.generate(model, tok, texts, pc.format, cfg.generate.generation)
        return [{"answer": o["text"], "eos": o["eos"], "new_tokens": o["new_tokens"],
                 "prompt_tokens": len(tok(p, add_special_tokens=False)["input_ids"])} for o, p in zip(outs, texts)]

    return answer, {"system": system, "generator": cfg.model.key}


def _evidence_seen(q: dict, chunks: Sequence[dict], cfg: DictConfig) -> bool:
    """An evidence string (bash) or the reference answer (SQuAD) inside the chunk views the model saw."""
    from .corpus import normalize

    cd = cfg.clean.collapse_dots
    seen = " ".join(normalize(chunk_view(c, q["question"], cfg.prompt), cd) for c in chunks).lower()
    wanted = q.get("evidence") or ([q["answer"]] if q.get("answer") else [])
    return any(normalize(e, cd).lower() in seen for e in wanted)
