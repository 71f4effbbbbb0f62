"""generate stage of the rag task, and the answer checks (citations, refusals, language).

The generator gets the headline variant's top-k chunks, numbered [1]..[k] in rank order, and
rules: answer only from them, cite them as [n], or say the refusal sentence. Answers land in
data/rag/answers/<set>.jsonl with the chunk ids behind each number, so every citation can be
traced to the manual.
"""
from __future__ import annotations

import re
import sys
import time
import unicodedata
from typing import Any, Sequence

from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_jsonl
from pipelines.core.paths import TaskPaths

from .index import headline_variant, load_rankings

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


def is_refusal(text: str, refusal: str) -> bool:
    """The answer says the refusal sentence (case/accents/punctuation-insensitive)."""
    return _fold(refusal) in _fold(text)


def language(text: str) -> str:
    import py3langid as langid

    text = strip_citations(text)
    return langid.classify(text)[0] if text.strip() else ""


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


def generate(cfg: DictConfig) -> None:
    from pipelines.core import lm, sft

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
    model, tok = lm.load_causal_lm(cfg.model, paths.base_models)
    pc = cfg.generate.prompt
    t0 = time.time()
    answers: dict[str, list[dict]] = {}
    for qs in sets:
        rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
        ranked = load_rankings(paths, qs)
        if variant not in ranked:
            raise PipelineError(f"retrieval: no variant {variant!r} (check run.* and embeddings)")
        top = ranked[variant][:, :k]
        prompts = [sft.render_messages(pc.format, tok, build_messages(r["question"], [chunks[i] for i in ids], pc))
                   for r, ids in zip(rows, top)]
        outs = sft.generate(model, tok, prompts, pc.format, cfg.generate.generation)
        answers[qs] = [{"id": r["id"], "question": r["question"], "answerable": r["answerable"],
                        "reference": r.get("answer", ""), "chunk_ids": [int(i) for i in ids],
                        # could the generator have answered? an evidence string inside the (cut) chunks it saw
                        "evidence_in_prompt": _evidence_seen(r, [chunks[i] for i in ids], pc, cfg.clean.collapse_dots),
                        "answer": o["text"], "eos": o["eos"], "new_tokens": o["new_tokens"],
                        "prompt_tokens": len(tok(p, add_special_tokens=False)["input_ids"])}
                       for r, ids, o, p in zip(rows, top, outs, prompts)]
    for qs, rows in answers.items():
        write_jsonl(paths.data / "answers" / f"{qs}.jsonl", rows)
    n = sum(len(v) for v in answers.values())
    print(f"[rag:generate] {n} answers with {cfg.model.key} from {variant} top-{k} in {time.time() - t0:.1f}s",
          file=sys.stderr)


def _evidence_seen(q: dict, chunks: Sequence[dict], pc: Any, collapse_dots: bool) -> bool:
    from .corpus import normalize

    seen = " ".join(normalize(cut_words(c["text"], pc.max_chunk_words), collapse_dots) for c in chunks)
    return any(normalize(e, collapse_dots) in seen for e in q.get("evidence", []))


def answer_metrics(rows: Sequence[dict], relevant: dict[str, set], refusal: str) -> dict:
    """Citation validity, refusals (wanted on unanswerable questions), F1 / ROUGE-L, Spanish share."""
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
            "evidence_in_prompt": bool(r.get("evidence_in_prompt"))})
    ans = [p for p in per if p["answerable"]]
    neg = [p for p in per if not p["answerable"]]

    def mean(xs: Sequence[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    return {
        "n": len(per), "n_answerable": len(ans), "n_unanswerable": len(neg),
        # over the answers that cite at all (None when none does: validity would be vacuous)
        "citation_valid": mean([p["citation_valid"] for p in per if p["cites"]]),
        "cites_any": mean([p["cites"] for p in ans]),
        "cites_relevant": mean([p["cites_relevant"] for p in ans]),
        "refusal_on_unanswerable": mean([p["refusal"] for p in neg]),
        "false_refusal": mean([p["refusal"] for p in ans]),
        "f1": mean([p["f1"] for p in ans]), "rouge_l": mean([p["rouge_l"] for p in ans]),
        "spanish": mean([p["spanish"] for p in per]), "eos": mean([p["eos"] for p in per]),
        "evidence_in_prompt": mean([p["evidence_in_prompt"] for p in ans]),
    }, per
