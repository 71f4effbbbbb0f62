"""The one SQuAD reader (and title cleaner) behind extractive_qa, qgen_es and rag.

A SQuAD JSON file (v1.1, or v2.0 with `is_impossible`) is checked field by field and the first
problem is named with its place (`file: data[3].paragraphs[0].qas[2]: missing field 'id'`), so
bad input never reaches a later stage. What each task makes of it (one row per question, one
record per paragraph, one document per paragraph) is its own business; the reader keeps the
file's structure and values as they are, titles included (`clean_title` is applied by the
task that wants it).

`hub_to_squad` turns a flat hub QA dataset (`squad`, `squad_v2`, `PlanTL-GOB-ES/SQAC`, ...)
into the same JSON, so a hub source goes through this reader too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .download import load_hub_dataset
from .errors import PipelineError
from .io import read_json, write_json

FORMATS = ("auto", "v1", "v2")


@dataclass(frozen=True)
class Squad:
    """A validated SQuAD file. articles: [{title, paragraphs: [{context, qas: [{id, question,
    answers: [{text, answer_start}], is_impossible}]}]}] with every field of the right type."""
    path: Path
    articles: list[dict]
    is_v2: bool

    def paragraphs(self) -> Iterator[tuple[int, int, dict, dict]]:
        """(article index, paragraph index, article, paragraph) in file order."""
        for ai, art in enumerate(self.articles):
            for pi, para in enumerate(art["paragraphs"]):
                yield ai, pi, art, para

    def questions(self) -> list[dict]:
        """One row per question: {id, title, context, question, answers, is_impossible}."""
        return [{"id": qa["id"], "title": art["title"], "context": para["context"], "question": qa["question"],
                 "answers": qa["answers"], "is_impossible": qa["is_impossible"]}
                for _, _, art, para in self.paragraphs() for qa in para["qas"]]


def need(obj: dict, key: str, kind: type | tuple, where: str) -> Any:
    """obj[key], checked to be of `kind` (bool is not an int here); errors name `where` and the key."""
    if key not in obj:
        raise PipelineError(f"{where}: missing field {key!r}")
    v = obj[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        hint = " (write true or false, without quotes)" if kind is bool and isinstance(v, str) else ""
        raise PipelineError(f"{where}: field {key!r}: expected {names}, got {type(v).__name__}{hint}")
    return v


def _object(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise PipelineError(f"{where}: expected an object, got {type(v).__name__}")
    return v


def read_squad(path: str | Path, fmt: str = "auto") -> Squad:
    """Read and check a SQuAD JSON file. fmt: auto (v2 when the version says 2 or any question has
    `is_impossible`), v1 or v2. Errors name the file and the JSON path of the first problem."""
    path = Path(path)
    doc = read_json(path)  # missing file, bad UTF-8, truncated JSON -> PipelineError with position
    if not isinstance(doc, dict):
        raise PipelineError(f"{path}: expected a JSON object with a 'data' list, got {type(doc).__name__}")
    data = need(doc, "data", list, str(path))
    if not data:
        raise PipelineError(f"{path}: 'data' is empty (no articles)")
    if fmt not in FORMATS:
        raise PipelineError(f"data.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    articles, ids = [], set()
    any_impossible = False
    for ai, art in enumerate(data):
        where = f"{path}: data[{ai}]"
        title = need(_object(art, where), "title", str, where)
        paragraphs = []
        for pi, para in enumerate(need(art, "paragraphs", list, where)):
            pw = f"{where}.paragraphs[{pi}]"
            context = need(_object(para, pw), "context", str, pw)
            qas = []
            for qi, qa in enumerate(need(para, "qas", list, pw)):
                qw = f"{pw}.qas[{qi}]"
                question = need(_object(qa, qw), "question", str, qw)
                qid = str(need(qa, "id", (str, int), qw))
                if qid in ids:
                    raise PipelineError(f"{qw}: duplicate question id {qid!r}")
                ids.add(qid)
                # a string "false" would be truthy: every question unanswerable
                impossible = need(qa, "is_impossible", bool, qw) if "is_impossible" in qa else False
                any_impossible |= "is_impossible" in qa
                answers = []
                for ni, ans in enumerate(need(qa, "answers", list, qw)):
                    aw = f"{qw}.answers[{ni}]"
                    answers.append({"text": need(_object(ans, aw), "text", str, aw),
                                    "answer_start": need(ans, "answer_start", int, aw)})
                qas.append({"id": qid, "question": question, "answers": answers, "is_impossible": impossible})
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": title, "paragraphs": paragraphs})
    if not any(a["paragraphs"] for a in articles):
        raise PipelineError(f"{path}: 'data' holds no paragraphs")
    version = str(doc.get("version", ""))
    is_v2 = fmt == "v2" or (fmt == "auto" and (version.lstrip("v").startswith("2") or any_impossible))
    return Squad(path, articles, is_v2)


_LANG_NOTE = re.compile(r"\s*\(en [^()]*\)$", re.I)  # "(en inglés)": a translation note, not a name


def clean_title(title: str, drop_language_note: bool = True) -> str:
    """'Nikola _ Tesla' -> 'Nikola Tesla' (SQuAD-es' translation artefact), 'Genghis.' -> 'Genghis';
    'Victoria _ and _ Albert _ Museum (en inglés)' -> 'Victoria and Albert Museum' unless
    drop_language_note is False. Disambiguations like 'Sky (Reino Unido)' are kept."""
    t = " ".join(title.replace("_", " ").split()).rstrip(". ")
    if drop_language_note:
        t = _LANG_NOTE.sub("", t).rstrip(". ")
    return t or title.strip()


def hub_to_squad(d: Any, dst: Path) -> dict:
    """A flat hub QA dataset (id, title, context, question, answers{text, answer_start}) written
    as SQuAD JSON to dst; returns what the download manifest records about the source."""
    ds = load_hub_dataset(d)
    need = {"id", "context", "question", "answers"}
    if missing := need - set(ds.column_names):
        raise PipelineError(f"{d.hub_name}: not a SQuAD-format dataset, missing column(s) {sorted(missing)}; "
                            f"columns: {', '.join(ds.column_names)}")
    articles: dict[str, dict[str, list]] = {}
    for row in ds:
        title = row.get("title") or "untitled"
        qa = {"id": str(row["id"]), "question": row["question"],
              "answers": [{"text": t, "answer_start": int(s)}
                          for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])]}
        if not qa["answers"]:
            qa["is_impossible"] = True  # squad_v2 style: no answer
        articles.setdefault(title, {}).setdefault(row["context"], []).append(qa)
    version = "v2.0" if any("is_impossible" in qa for a in articles.values() for qs in a.values() for qa in qs) else "1.1"
    write_json(dst, {"version": version, "data": [
        {"title": t, "paragraphs": [{"context": c, "qas": qs} for c, qs in paras.items()]}
        for t, paras in articles.items()]})
    return {"hub_name": d.hub_name, "hub_config": d.hub_config, "hub_split": d.hub_split}
