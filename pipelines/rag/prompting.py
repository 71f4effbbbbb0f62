"""The rag prompt, one for RAFT training examples and for inference (prompt.*).

Chunks are numbered [1]..[k] in the order given; each is shown as its `snippet_words`-word
window that shares the most content words with the question (a 300-word manual chunk would
not fit a small generator's budget, and its first words are rarely the answer), or, with
snippet_words = 0, as its first `max_chunk_words` words.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Sequence

_WORD = re.compile(r"\w+")
_STOP: set[str] | None = None


def _stopwords() -> set[str]:
    global _STOP
    if _STOP is None:
        from bm25s.stopwords import STOPWORDS_SPANISH

        _STOP = {_fold(w) for w in STOPWORDS_SPANISH}
    return _STOP


def _fold(w: str) -> str:
    w = unicodedata.normalize("NFKD", w.lower())
    return "".join(c for c in w if not unicodedata.combining(c))


def _terms(text: str) -> set[str]:
    """Content-word stems (accent-folded, first 5 letters: a cheap Spanish stemmer)."""
    stop = _stopwords()
    return {f[:5] for f in map(_fold, _WORD.findall(text)) if len(f) > 2 and f not in stop}


def cut_words(text: str, n: int) -> str:
    words = text.split()
    return text if n <= 0 or len(words) <= n else " ".join(words[:n]) + " …"


def snippet(text: str, question: str, n_words: int) -> str:
    """The n-word window of `text` sharing most question terms (earliest on ties), marked "…" where cut."""
    words = text.split()
    if n_words <= 0 or len(words) <= n_words:
        return text
    q = _terms(question)
    stems = [next(iter(_terms(w)), None) for w in words]
    step = max(1, n_words // 4)
    starts = list(range(0, len(words) - n_words + 1, step))
    if starts[-1] != len(words) - n_words:
        starts.append(len(words) - n_words)
    best = max(starts, key=lambda s: (len(q & {t for t in stems[s:s + n_words] if t}), -s))
    out = " ".join(words[best:best + n_words])
    return ("… " if best > 0 else "") + out + (" …" if best + n_words < len(words) else "")


def chunk_view(chunk: dict, question: str, pc: Any) -> str:
    if pc.snippet_words > 0:
        return snippet(chunk["text"], question, pc.snippet_words)
    return cut_words(chunk["text"], pc.max_chunk_words)


def user_message(question: str, chunks: Sequence[dict], pc: Any) -> str:
    context = "\n\n".join(pc.chunk_template.format(n=i, section=c.get("section") or "-", text=chunk_view(c, question, pc))
                          for i, c in enumerate(chunks, 1))
    return pc.user_template.format(context=context, question=question)


def render_prompt(tok: Any, question: str, chunks: Sequence[dict], pc: Any) -> str:
    """The generation prompt: exactly the prompt part of a RAFT training example."""
    from pipelines.core.prompts import render

    return render(pc.format, tok, user_message(question, chunks, pc), "", None, pc.system_prompt)[0]


def cited_answer(answer: str, n: int, pc: Any) -> str:
    return pc.answer_template.format(answer=answer.strip().rstrip("."), citation=pc.citation.format(n=n))


def refusal_sentence(pc: Any) -> str:
    return pc.refusal.rstrip(".") + "."
