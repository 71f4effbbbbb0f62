"""Per-item checks that read a generated question the way a teacher would (qgen_es judge stage).

* Spanish word validity: every word of an item is a word a Spanish spell checker knows (Hunspell
  with Debian's hunspell-es, inflections included) or a word of the source text (names).
* Statement support: a true/false statement's content words are found in one sentence of the
  text (a true statement), or all but one contiguous run of them (a false statement that swaps
  exactly one answer); anything else is unsupported.
* Diversity: distinct openings (first three words) within a list.

Answerability of short-answer questions needs the extractive_qa model and lives in judge.py.
These functions are pure: no model, no files beyond the dictionary.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Sequence

from pipelines.core.errors import PipelineError
from pipelines.core.textmetrics import tokens

from .quality import _TF, _content, is_true_false

_WORD = re.compile(r"[^\W\d_]+")  # letters only: "Super-Bowl" -> 2 words, "1856" -> none
_SENTENCE = re.compile(r"(?<=[.!?;])[\"»”)]?\s+")
_OPENING = re.compile(r"^\s*según el texto,?\s*", re.I)  # the fixed T/F opening is not a statement's content


# ------------------------------------------------------------------------------- word validity
@functools.cache
def load_dictionary(path: str):
    """A Hunspell dictionary from `<path>.dic` + `<path>.aff` (spylls: pure-Python Hunspell)."""
    base = Path(path)
    missing = [str(p) for p in (base.with_suffix(".dic"), base.with_suffix(".aff")) if not p.is_file()]
    if missing:
        raise PipelineError(f"{missing[0]}: Spanish dictionary not found (judge.spelling.dictionary; "
                            f"Debian: apt-get install hunspell-es)")
    from spylls.hunspell import Dictionary

    return Dictionary.from_files(str(base))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


class Speller:
    """`known(word)`: the dictionary knows it (as written or lower-cased: sentence-initial
    capitals) or it is a word of the source text (case-insensitive). Lookups are cached."""

    def __init__(self, dictionary):
        self._dic = dictionary
        self._known = functools.lru_cache(maxsize=None)(self._lookup)

    def _lookup(self, word: str) -> bool:
        return bool(self._dic.lookup(word) or self._dic.lookup(word.lower()))

    def unknown(self, text: str, source: str = "") -> list[str]:
        src = {w.lower() for w in words(source)}
        return [w for w in words(text) if w.lower() not in src and not self._known(w)]

    def validity(self, text: str, source: str = "") -> dict:
        """{"words", "unknown" (the words neither known nor in the source), "share", "all_valid"}."""
        ws, bad = words(text), self.unknown(text, source)
        return {"words": len(ws), "unknown": bad, "share": 1 - len(bad) / len(ws) if ws else None,
                "all_valid": not bad}


# ------------------------------------------------------------------------------- statements
def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(text)) if s]


def statement_body(item: str) -> str:
    """A true/false item's statement: no "¿Verdadero o falso?" and no "Según el texto," opening."""
    body = " ".join(_TF.sub(" ", item).split()).strip(" .:")
    return _OPENING.sub("", body).strip(" .:")


def _covered(word: str, sent_words: set[str], sent_prefixes: set[str]) -> bool:
    # a 5-letter prefix stands in for a stemmer ("nació" / "nacido"), as quality.grounding does
    return word in sent_words or (len(word) >= 5 and word[:5] in sent_prefixes)


def support(statement: str, context: str, max_swap_words: int = 4, topic: str = "") -> dict:
    """How one sentence of `context` supports a statement (its content words, see quality._content).

    Words of `topic` (the text's title: "Nikola Tesla") count as found in every sentence: Spanish
    drops the subject ("Trabajó para Edison"), and the subject of a biography is its title.

    verdict: "true" when one sentence holds every content word; "false_swap" when the best
    sentence holds all but one contiguous run of 1..max_swap_words of them (one swapped answer)
    and at least half; otherwise "unsupported" (also without content words). `sentence` is the
    best sentence, `missing` the content words it lacks.
    """
    content = _content(statement)
    if not content:
        return {"verdict": "unsupported", "sentence": None, "missing": [], "coverage": 0.0}
    best = None
    implied = set(tokens(topic))
    for s in sentences(context):
        sw = set(tokens(s)) | implied
        prefixes = {w[:5] for w in sw if len(w) >= 5}
        hit = [_covered(w, sw, prefixes) for w in content]
        if best is None or sum(hit) > sum(best[1]):
            best = (s, hit)
    if best is None:
        return {"verdict": "unsupported", "sentence": None, "missing": content, "coverage": 0.0}
    sent, hit = best
    missing = [w for w, h in zip(content, hit) if not h]
    coverage = sum(hit) / len(content)
    # runs of uncovered words in statement order: a swap is one run
    runs = sum(1 for i, h in enumerate(hit) if not h and (i == 0 or hit[i - 1]))
    if not missing:
        verdict = "true"
    elif runs == 1 and len(missing) <= max_swap_words and coverage >= 0.5:
        verdict = "false_swap"
    else:
        verdict = "unsupported"
    return {"verdict": verdict, "sentence": sent, "missing": missing, "coverage": coverage}


# ------------------------------------------------------------------------------- diversity
def opening(item: str, n: int = 3) -> tuple[str, ...]:
    """An item's first n words, T/F statements after their fixed "Según el texto," opening."""
    text = statement_body(item) if is_true_false(item) else item
    return tuple(tokens(text)[:n])


def distinct_openings(items: Sequence[str], n: int = 3) -> float | None:
    """Share of distinct first-n-word openings in one list (1.0: no two items open alike)."""
    keys = [opening(i, n) for i in items]
    keys = [k for k in keys if k]
    return len(set(keys)) / len(keys) if keys else None
