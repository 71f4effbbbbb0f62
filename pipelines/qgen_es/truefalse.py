"""True/false items derived from SQuAD-es (question, answer) pairs, whose data has none.

A true item restates the pair as a declarative sentence ("¿Quién inventó X?" + "Tesla" ->
"Tesla inventó X"); a false one swaps in another answer of the same type (year, date, number,
name) from the same article. Question shapes that do not rephrase reliably get a quoted
fallback that is always grammatical.
"""
from __future__ import annotations

import random
import re
from typing import Sequence

from pipelines.core.textmetrics import tokens

from .sources import NAME_PARTICLES

TF_SUFFIX = "¿Verdadero o falso?"


_NUMBER_WORDS = {
    "un", "uno", "una", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once",
    "doce", "trece", "catorce", "quince", "veinte", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta",
    "ochenta", "noventa", "cien", "ciento", "cientos", "mil", "miles", "millón", "millones", "docena", "medio",
}


_MONTHS = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre"
# "7 de febrero de 2016", "el 21 de mayo", "febrero de 2016"
_DATE = re.compile(rf"(?:el\s+)?(?:(\d{{1,2}})\s+de\s+)?({_MONTHS})(?:\s+(?:de|del)\s+\d{{3,4}})?", re.I)


def answer_type(answer: str) -> str:
    """year, date, number, name (capitalised words) or other: false statements swap like for like."""
    a = answer.strip()
    if re.fullmatch(r"(?:(?:en|el|año|del)\s+)*\d{3,4}", a, re.I):
        return "year"
    if _DATE.fullmatch(a):
        return "date"
    toks = tokens(a)
    if re.search(r"\d", a) or (toks and toks[0] in _NUMBER_WORDS and toks[0] not in ("un", "una")):
        return "number"
    words = [w for w in re.split(r"[\s,]+", a) if w]
    if words and words[0][0].isupper() and all(w[0].isupper() or w.lower() in NAME_PARTICLES for w in words):
        return "name"
    return "other"


def same_answer(a: str, b: str) -> bool:
    """Token-level containment either way: "Denver Broncos" ~ "los Denver Broncos"."""
    ta, tb = set(tokens(a)), set(tokens(b))
    return not ta or not tb or ta <= tb or tb <= ta


def _is_name(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0][0].isupper() and all(w[0].isupper() or w in NAME_PARTICLES for w in words)


def _invert(rest: str) -> str:
    """'nació Tesla' -> 'Tesla nació' when the subject is just a name; otherwise keep the
    question's verb-subject order, which Spanish allows ('se jugó el partido en 2016')."""
    m = re.fullmatch(r"((?:se |le |les |lo |la )?\w+) (.+)", rest)
    if m and _is_name(m.group(2)):
        return f"{m.group(2)} {m.group(1)}"
    return rest


_DETERMINERS = {"el", "la", "los", "las", "lo", "un", "una", "unos", "unas", "su", "sus", "este", "esta", "estos",
                "estas", "ese", "esa", "otro", "otra", "otros", "otras", "uno"}
_NOT_VERBS = {"de", "del", "que", "a", "al", "en", "por", "para", "con", "y", "o", "más", "menos"}


def natural_statement(question: str, answer: str) -> str | None:
    """A declarative sentence saying that `answer` answers `question` (no final punctuation), for
    the question shapes that rephrase reliably; None for the rest."""
    q = " ".join(question.split())
    kind = answer_type(answer)
    m = re.fullmatch(r"¿(.+)\?", q)
    inner = m.group(1).strip() if m and "¿" not in m.group(1) else None
    if not inner:
        return None
    stmt = None
    if mm := re.fullmatch(r"qui[eé]n(?:es)? (.+)", inner, re.I):
        stmt = f"{answer} {mm.group(1)}"
    elif (mm := re.fullmatch(r"(?:cu[aá]l(?:es)?|qu[eé]) (es|era|fue|son|eran|fueron) (.+)", inner, re.I)) \
            and mm.group(2).split()[0].lower() in _DETERMINERS:
        stmt = f"{mm.group(2)} {mm.group(1).lower()} {answer}"  # "el nombre de X es Y"
    elif (mm := re.fullmatch(r"(?:(?:en )?qu[eé] año|cu[aá]ndo) (.+)", inner, re.I)) and kind == "year":
        year = re.findall(r"\d{3,4}", answer)[0]  # "En 1898" -> "1898": "en" is added here
        stmt = f"{_invert(mm.group(1))} en {year}"
    elif (mm := re.fullmatch(r"(?:(?:en )?qu[eé] (?:día|fecha)|cu[aá]ndo) (.+)", inner, re.I)) and kind == "date":
        d = _DATE.fullmatch(answer.strip())
        date = answer.strip()[len("el "):] if answer.strip().lower().startswith("el ") else answer.strip()
        stmt = f"{_invert(mm.group(1))} {'el' if d.group(1) else 'en'} {date}"  # el 7 de febrero / en febrero
    elif (mm := re.fullmatch(r"c[oó]mo se (llama|llamaba|llaman|llamaban) (.+)", inner, re.I)) \
            and not mm.group(2).lower().startswith("a "):  # "se llama a ..." is another construction
        np_ = mm.group(2) + ("," if "," in mm.group(2) else "")  # close an inserted ", que ..." clause
        stmt = f"{np_} se {mm.group(1).lower()} {answer}"  # "el estadio se llama X"
    elif (mm := re.fullmatch(r"cu[aá]nt[oa]s (\w+) (\w+)(.*)", inner, re.I)) and kind == "number" \
            and mm.group(2).islower() and mm.group(2) not in _NOT_VERBS:
        # only "¿Cuántos <noun> <verb> ...?": a longer noun phrase ("Premios Nobel",
        # "años de edad") would be cut in two
        noun, rest = mm.group(1), mm.group(2) + mm.group(3)
        if noun.lower() in tokens(answer):
            stmt = f"{_invert(rest)} {answer}"
        else:
            of = " de" if tokens(answer)[-1:] in (["millones"], ["millón"]) else ""
            stmt = f"{_invert(rest)} {answer}{of} {noun}"
    elif (mm := re.fullmatch(r"(?:d[oó]nde|en qu[eé] (?:ciudad|país|lugar|región|estado)) (.+)", inner, re.I)) \
            and kind == "name":
        stmt = f"{_invert(mm.group(1))} en {answer}"
    if stmt is None:
        return None
    stmt = stmt.rstrip(" .")
    return stmt[0].upper() + stmt[1:]


def to_statement(question: str, answer: str) -> str:
    """natural_statement, or a fallback that is always grammatical if less natural."""
    if stmt := natural_statement(question, answer):
        return stmt
    body = " ".join(" ".join(question.split()).replace("¿", " ").split()).strip("? ")  # quoted: no "¿...?"
    return f'Según el texto, la respuesta a "{body}" es {answer}'.rstrip(" .")


def true_false_item(question: str, answer: str) -> str:
    """The T/F item saying that `answer` answers `question`: "Según el texto, <statement>. ¿Verdadero
    o falso?". The fixed opening marks the item type for the model (the statements themselves
    open with any word) and reads as a reading-comprehension item should."""
    stmt = to_statement(question, answer)
    if not stmt.startswith("Según el texto, "):
        first = stmt.split()[0]
        if first.lower() in question.split():  # a word the question has in lower case: "Se", "El"
            stmt = stmt[0].lower() + stmt[1:]
        stmt = f"Según el texto, {stmt}"
    return f"{stmt}. {TF_SUFFIX}"


def _wh_key(question: str) -> tuple[str, ...]:
    """The question's opening that says what kind of answer it wants: ("dónde",), ("cuántas",
    "veces"), ("en", "qué", "ciudad"); otherwise its first word; () for an empty question."""
    words = tokens(question)[:3]
    if not words:
        return ()
    if words[0] in ("en", "de", "a", "por", "para", "con") and words[1:2] in (["qué"], ["que"], ["cuál"]):
        return tuple(words[:3])
    if words[0] in ("qué", "que", "cuál", "cuáles") or words[0].startswith("cuánt"):
        return tuple(words[:2])
    return tuple(words[:1])


def make_true_false(qa: dict, article_qas: Sequence[dict], rng: random.Random) -> tuple[str, bool] | None:
    """(statement + " ¿Verdadero o falso?", is_true) from one QA pair, or None.

    True or false is drawn from `rng`. A false statement swaps in another answer of the same
    type from the same article; None without a usable answer or without such a distractor.
    """
    answer = qa.get("answer")
    if not answer:
        return None
    truth = rng.random() < 0.5
    used = answer
    if not truth:
        own = qa.get("answers") or [answer]
        kind = answer_type(answer)
        pool = sorted({(_wh_key(o["question"]), o["answer"]) for o in article_qas if o.get("answer")
                       and answer_type(o["answer"]) == kind
                       and not any(same_answer(o["answer"], a) for a in own)})
        if not pool:
            return None
        # prefer answers to the same kind of question ("¿Dónde...?" gets a place, not a person's
        # name; "¿Cuántas veces...?" a count of times): a false statement should still read plausibly
        key = _wh_key(qa["question"])
        for depth in (len(key), 1, 0):
            if closer := [a for k, a in pool if k[:depth] == key[:depth]]:
                used = rng.choice(closer)
                break
    return true_false_item(qa["question"], used), truth
