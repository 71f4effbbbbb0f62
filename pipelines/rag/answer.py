"""generate stage of the rag task (the checks of its answers are in answer_checks.py, an
evaluate-only dependency: changing a metric does not re-run generation).

The generator gets the headline variant's top-k chunks, numbered [1]..[k] in rank order, and
rules: answer only from them, cite them as [n], or say the refusal sentence. Answers land in
data/rag/answers/<set>.jsonl with the chunk ids behind each number, so every citation can be
traced to the manual.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Sequence

from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_jsonl
from pipelines.core.paths import TaskPaths

from .index import headline_variant, load_rankings


def cut_words(text: str, n: int) -> str:
    words = text.split()
    return text if n <= 0 or len(words) <= n else " ".join(words[:n]) + " …"


def build_messages(question: str, chunks: Sequence[dict], pc: Any) -> list[dict]:
    context = "\n\n".join(pc.chunk_template.format(n=i, section=c.get("section") or "-",
                                                   text=cut_words(c["text"], pc.max_chunk_words))
                          for i, c in enumerate(chunks, 1))
    msgs = [{"role": "user", "content": pc.user_template.format(context=context, question=question)}]
    if pc.system_prompt:
        msgs.insert(0, {"role": "system", "content": pc.system_prompt})
    return msgs


def generate(cfg: DictConfig, run=None) -> None:
    from pipelines.core import causal_lm, prompts

    paths = TaskPaths(cfg)
    run = cfg.run
    if run.top_k <= 0:
        raise PipelineError(f"run.top_k: must be > 0 (got {run.top_k})")
    variant = headline_variant(cfg)
    col = cfg.collections[run.collection]
    chunks = read_jsonl(paths.data / "chunks" / f"{run.collection}.jsonl")
    k = run.top_k
    if k > len(chunks):  # documented clamping: a top-k beyond the corpus means "all chunks"
        print(f"warning: run.top_k={k} > {len(chunks)} chunks of {run.collection}; using {len(chunks)}", file=sys.stderr)
        k = len(chunks)
    if k > cfg.retrieve.keep:
        raise PipelineError(f"run.top_k: {k} > retrieve.keep ({cfg.retrieve.keep}); raise retrieve.keep")
    sets = [n for n, q in cfg.data.question_sets.items() if q.corpus == col.corpus and q.generate]
    if not sets:
        raise PipelineError(f"data.question_sets: none to answer on corpus {col.corpus!r} (generate: true)")
    model, tok = causal_lm.load_causal_lm(cfg.model, paths.base_models)
    pc = cfg.generate.prompt
    t0 = time.time()
    answers: dict[str, list[dict]] = {}
    for qs in sets:
        rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
        ranked = load_rankings(paths, qs)
        if variant not in ranked:
            raise PipelineError(f"retrieval: no variant {variant!r} (check run.* and embeddings)")
        top = ranked[variant][:, :k]
        texts = [prompts.render_messages(pc.format, tok, build_messages(r["question"], [chunks[i] for i in ids], pc))
                   for r, ids in zip(rows, top)]
        outs = causal_lm.generate(model, tok, texts, pc.format, cfg.generate.generation)
        answers[qs] = [{"id": r["id"], "question": r["question"], "answerable": r["answerable"],
                        "reference": r.get("answer", ""), "chunk_ids": [int(i) for i in ids],
                        # could the generator have answered? an evidence string inside the (cut) chunks it saw
                        "evidence_in_prompt": _evidence_seen(r, [chunks[i] for i in ids], pc, cfg.clean.collapse_dots),
                        "answer": o["text"], "eos": o["eos"], "new_tokens": o["new_tokens"],
                        "prompt_tokens": len(tok(p, add_special_tokens=False)["input_ids"])}
                       for r, ids, o, p in zip(rows, top, outs, texts)]
    for qs, rows in answers.items():
        write_jsonl(paths.data / "answers" / f"{qs}.jsonl", rows)
    n = sum(len(v) for v in answers.values())
    print(f"[rag:generate] {n} answers with {cfg.model.key} from {variant} top-{k} in {time.time() - t0:.1f}s",
          file=sys.stderr)


def _evidence_seen(q: dict, chunks: Sequence[dict], pc: Any, collapse_dots: bool) -> bool:
    from .corpus import normalize

    seen = " ".join(normalize(cut_words(c["text"], pc.max_chunk_words), collapse_dots) for c in chunks)
    return any(normalize(e, collapse_dots) in seen for e in q.get("evidence", []))
