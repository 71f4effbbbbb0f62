"""Chunking: word windows with overlap (the study's 300/100 and 500/200) or structure-aware packing.

A chunk is {id, doc, section, start, end, text, n_words}; `text == doc_text[start:end]`, so a
chunk can always be traced back to its place in the cleaned corpus (char span).
"""
from __future__ import annotations

import bisect
import re
from typing import Any

from pipelines.core.errors import PipelineError

_WORD = re.compile(r"\S+")
METHODS = ("words", "structure", "paragraph")


def check(cfg: Any, where: str) -> None:
    if cfg.method not in METHODS:
        raise PipelineError(f"{where}.method: {cfg.method!r} is not one of {', '.join(METHODS)}")
    if cfg.method == "paragraph":
        return
    if cfg.size <= 0:
        raise PipelineError(f"{where}.size: must be > 0 (got {cfg.size})")
    if not 0 <= cfg.overlap < cfg.size:
        raise PipelineError(f"{where}.overlap: must be >= 0 and < size ({cfg.size}); got {cfg.overlap}")


def _section_at(doc: dict, pos: int) -> str:
    starts = [p["start"] for p in doc["paragraphs"]]
    i = max(bisect.bisect_right(starts, pos) - 1, 0)
    return doc["paragraphs"][i]["section"] if doc["paragraphs"] else ""


def _windows(spans: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Word-index windows [i, j) of `size` words advancing by size - overlap; the last one ends at the end."""
    n, step, out = len(spans), size - overlap, []
    i = 0
    while True:
        j = min(i + size, n)
        out.append((i, j))
        if j >= n:
            return out
        i += step


def word_chunks(doc: dict, size: int, overlap: int) -> list[dict]:
    text = doc["text"]
    spans = [m.span() for m in _WORD.finditer(text)]
    out = []
    for i, j in _windows(spans, size, overlap) if spans else []:
        s, e = spans[i][0], spans[j - 1][1]
        out.append({"doc": doc["doc"], "section": _section_at(doc, s), "start": s, "end": e,
                    "text": text[s:e], "n_words": j - i})
    return out


def structure_chunks(doc: dict, size: int, overlap: int) -> list[dict]:
    """Paragraphs packed up to `size` words without crossing a section; a longer paragraph is
    split into word windows of its own (with `overlap`)."""
    text, out = doc["text"], []
    group: list[dict] = []

    def emit(paras: list[dict]) -> None:
        s, e = paras[0]["start"], paras[-1]["end"]
        out.append({"doc": doc["doc"], "section": paras[0]["section"], "start": s, "end": e,
                    "text": text[s:e], "n_words": sum(p["n"] for p in paras)})

    for p in doc["paragraphs"]:
        p = {**p, "n": len(text[p["start"]:p["end"]].split())}
        if group and (p["section"] != group[0]["section"] or sum(g["n"] for g in group) + p["n"] > size):
            emit(group)
            group = []
        if p["n"] > size:
            sub = {"doc": doc["doc"], "text": text[p["start"]:p["end"]],
                   "paragraphs": [{"start": 0, "end": p["end"] - p["start"], "section": p["section"]}]}
            for c in word_chunks(sub, size, overlap):
                c["start"] += p["start"]
                c["end"] += p["start"]
                out.append(c)
            continue
        group.append(p)
    if group:
        emit(group)
    return out


def retrieval_text(chunk: dict, prefix_section: bool) -> str:
    """What BM25 and the embedder read: the chunk, optionally after its section heading (a SQuAD
    paragraph's article title: measured +0.006 hit@5 for BM25 on SQuAD-es, +0.008 for the hybrid)."""
    return f"{chunk['section']}: {chunk['text']}" if prefix_section and chunk.get("section") else chunk["text"]


def chunk_documents(docs: list[dict], cfg: Any) -> list[dict]:
    """All chunks of all documents, numbered 0..n-1 in corpus order."""
    chunks: list[dict] = []
    for doc in docs:
        if cfg.method == "words":
            chunks += word_chunks(doc, cfg.size, cfg.overlap)
        elif cfg.method == "structure":
            chunks += structure_chunks(doc, cfg.size, cfg.overlap)
        else:  # paragraph: the document is the unit (SQuAD paragraphs)
            chunks.append({"doc": doc["doc"], "section": doc["paragraphs"][0]["section"] if doc["paragraphs"] else "",
                           "start": 0, "end": len(doc["text"]), "text": doc["text"], "n_words": len(doc["text"].split())})
    for i, c in enumerate(chunks):
        c["id"] = i
    return chunks
