"""Automatic quality metrics for generated question lists (qgen_es).

Per output: does it have the requested number of items and of true/false items, are the items
well formed, does it leak answers or options, does it repeat itself, are the items about the
text (content words found in it), did generation stop cleanly, and - with reference questions -
ROUGE-L and BLEU against them. `aggregate` averages a list of these rows.
"""
from __future__ import annotations

import re
from collections import Counter
from itertools import combinations
from typing import Any, Callable, Sequence

from pipelines.core.textmetrics import bleu, rouge_l, rouge_l_multi, tokens

_ITEM = re.compile(r"^\s*(?:\d{1,3}\s*[.)\-:]|[-*•·–])\s+")  # "1." "1)" "2 -" "-" "*" "•"
_INLINE_ITEM = re.compile(r"(?:^|(?<=\s))\d{1,2}[.)]\s+")
_TF = re.compile(r"¿?\s*(?:verdadero|cierto)\s*(?:o|/)\s*falso\s*[?:]?|\(\s*v\s*/\s*f\s*\)|\(\s*v\s+o\s+f\s*\)", re.I)
_LEAK = re.compile(
    r"\b(?:respuestas?(?: correcta)?|soluci[oó]n)\s*:|(?:^|\s)R\s*[:=]\s*\S|"
    r"\(\s*(?:verdadero|falso|cierto|v|f)\s*\)|[→=]\s*(?:verdadero|falso)\b", re.I)
_OPTION = re.compile(r"(?:^|\s)\(?([a-dA-D])\)\s")
# function words and question words: not evidence that an item is about the text
_STOPWORDS = set("""
a al algo algún alguna algunas alguno algunos ante antes aquel aquella aquellas aquellos así aun aunque cada
como cómo con contra cual cuál cuales cuáles cuando cuándo cuanto cuánto cuanta cuánta cuantos cuántos cuantas
cuántas de del desde donde dónde durante e el él ella ellas ellos en entre era eran es esa esas ese eso esos
esta está estaba estaban están estar estas este esto estos fue fueron ha había habían han hasta hay la las le
les lo los más me mi mis muy nada ni no nos o otra otras otro otros para pero poco por porque que qué quien
quién quienes quiénes se según sea ser si sí sido sin sobre son su sus también tan tanto te tenía tiene tienen
todo todos tu un una unas uno unos y ya verdadero falso cierto texto respuesta
""".split())


def parse_questions(text: str) -> list[str]:
    """Items of a reply, numbering stripped.

    With numbered or bulleted lines, unmarked lines continue the item above (so an answer line
    after a question stays with it and counts as leakage) and lines before the first item are a
    preamble. Without markers each non-empty line is one item; a one-line "1. ... 2. ..." is split.
    """
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) == 1 and len(_INLINE_ITEM.findall(lines[0])) > 1:
        lines = [p.strip() for p in _INLINE_ITEM.split(lines[0]) if p.strip()]
        return lines
    if not any(_ITEM.match(ln) for ln in lines):
        return lines
    items: list[str] = []
    for ln in lines:
        if _ITEM.match(ln):
            items.append(_ITEM.sub("", ln, count=1).strip())
        elif items:
            items[-1] += " " + ln
    return [i for i in items if i]


def is_true_false(item: str) -> bool:
    return bool(_TF.search(item))


def _statement(item: str) -> str:
    """The content of an item without the true/false phrasing."""
    return " ".join(_TF.sub(" ", item).split()).strip(" .:")


def _well_formed(item: str) -> bool:
    if is_true_false(item):
        stmt = _statement(item)
        # a statement of a few words, not a question, and nothing after "¿Verdadero o falso?"
        tail = item[list(_TF.finditer(item))[-1].end():].strip()
        return len(tokens(stmt)) >= 3 and "¿" not in stmt and "?" not in stmt and not tail
    # one question; a leading clause is fine in Spanish ("Según el texto, ¿qué ...?")
    return (item.endswith("?") and item.count("¿") == 1 and item.count("?") == 1
            and (item.startswith("¿") or bool(re.match(r"^[^¿?]{1,80}[,:]?\s+¿", item))))


def _leaks(item: str) -> bool:
    if _LEAK.search(item):
        return True
    if is_true_false(item):  # "... ¿Verdadero o falso? Falso."
        tail = item[list(_TF.finditer(item))[-1].end():]
        return bool(re.search(r"\b(?:verdadero|falso|cierto|v|f)\b", tail, re.I))
    if len({m.lower() for m in _OPTION.findall(item)}) >= 2:  # "a) ... b) ..."
        return True
    # words after the closing "?" of a short-answer question are an answer
    return "?" in item and bool(tokens(item[item.rfind("?") + 1:]))


def _ngrams(toks: Sequence[str], n: int) -> Counter:
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def _runaway(items: Sequence[str], text: str) -> bool:
    """Degenerate repetition: a 3-gram three times inside one item, an 8-gram three times in
    the reply, or an item repeated verbatim. (The T/F phrasing itself is meant to repeat, and
    topical 6-grams like "espectáculo de medio tiempo del Super Bowl" recur in good lists.)"""
    stripped = [tokens(_statement(i)) for i in items]
    if any(c >= 3 for toks in stripped for c in _ngrams(toks, 3).values()):
        return True
    if any(c >= 3 for c in _ngrams(tokens(_TF.sub(" ", text)), 8).values()):
        return True
    keys = [tuple(t) for t in stripped if t]
    return len(keys) != len(set(keys))


def _content(text: str) -> list[str]:
    # numbers count only from three digits (years, quantities): "1" or "2" prove nothing
    return [t for t in tokens(text) if (t not in _STOPWORDS and not t.isdigit()) or (t.isdigit() and len(t) >= 3)]


def _grounded_share(item: str, ctx_words: set[str], ctx_prefixes: set[str]) -> float | None:
    words = _content(_statement(item))
    if not words:
        return None
    # a 5-letter prefix stands in for a stemmer: "nació" in the item, "nacido" in the text
    hit = sum(w in ctx_words or len(w) >= 5 and w[:5] in ctx_prefixes for w in words)
    return hit / len(words)


def score_output(text: str, context: str, n_requested: int, k_requested: int, eos_reached: bool,
                 refs: Sequence[str] | None = None, embed: Callable[[list[str]], Any] | None = None,
                 dup_threshold: float = 0.8) -> dict:
    """Metrics of one generated reply (see the module docstring); bools stay bools."""
    items = parse_questions(text)
    n = len(items)
    n_tf = sum(is_true_false(i) for i in items)
    tf_share = n_tf / n if n else 0.0
    want = k_requested / n_requested if n_requested else 0.0

    bodies = [_statement(i).strip("¿? ") for i in items]
    pairs = list(combinations(range(n), 2))
    if not pairs:
        dup = 0.0
    elif embed is not None:  # L2-normalised rows: cosine = dot product
        vec = embed(bodies)
        dup = sum(float(vec[i] @ vec[j]) >= dup_threshold for i, j in pairs) / len(pairs)
    else:
        dup = sum(rouge_l(bodies[i], bodies[j]) >= dup_threshold for i, j in pairs) / len(pairs)

    ctx = set(tokens(context))
    prefixes = {w[:5] for w in ctx if len(w) >= 5}
    shares = [s for i in items if (s := _grounded_share(i, ctx, prefixes)) is not None]

    row: dict[str, Any] = {
        "n_items": n,
        "count_ok": n == n_requested,
        "tf_share": tf_share,
        "tf_share_error": abs(tf_share - want),
        "tf_ok": n_tf == k_requested,
        "format_valid": sum(_well_formed(i) for i in items) / n if n else 0.0,
        "leakage": any(_leaks(i) for i in items),
        "near_duplicate_rate": dup,
        "grounding": sum(shares) / len(shares) if shares else 0.0,
        "terminated": bool(eos_reached) and not _runaway(items, text),
    }
    if refs is not None:  # compared without "¿?" and the T/F phrasing, which refs do not have
        plain_refs = [r.strip("¿? ") for r in refs]
        row["rouge_l"] = sum(rouge_l_multi(b, plain_refs) for b in bodies) / n if n and refs else 0.0
        row["bleu"] = bleu(bodies, [plain_refs] * n) if n and refs else 0.0
    return row


def aggregate(rows: Sequence[dict]) -> dict:
    """Mean of every numeric or bool field over the rows that have it, plus `n` (row count)."""
    sums: dict[str, float] = {}
    counts: Counter = Counter()
    for r in rows:
        for key, v in r.items():
            if isinstance(v, (bool, int, float)):
                sums[key] = sums.get(key, 0.0) + float(v)
                counts[key] += 1
    # the row count wins over a row field of the same name (a row's requested count `n`)
    return {**{k: sums[k] / counts[k] for k in sorted(sums)}, "n": len(rows)}
