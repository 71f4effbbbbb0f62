"""Data stages of the extractive_qa task: download -> clean -> split.

Every SQuAD-format source goes through one reader: a local SQuAD JSON file (v1.1, or v2.0
with `is_impossible`), or a hub dataset (`squad`, `squad_v2`, `PlanTL-GOB-ES/SQAC`, ...) that
download converts into the same JSON. The reader checks the structure field by field and names
the place of the first problem (`file: data[3].paragraphs[0].qas[2]: missing field 'id'`), so
bad input never reaches tokenisation.

clean flattens to one row per question and validates every answer against its context:
empty answers (SQuAD-es has `answer_start = -1` alignment failures) are dropped, offsets that
are off by some characters are repaired when the text occurs nearby, and each reason is
counted in clean_stats.json. split keeps whole articles together.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from pipelines.core.download import download as core_download, load_hub_dataset
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_json, read_jsonl, remove, write_json, write_jsonl
from pipelines.core.paths import TaskPaths

SPLITS = ("train", "val", "test")


def _log(stage: str, msg: str) -> None:
    print(f"[extractive_qa:{stage}] {msg}", flush=True)


# ------------------------------------------------------------------------------- download
def download(cfg: DictConfig, run=None) -> None:
    d = cfg.data
    manifest = core_download(d, TaskPaths(cfg).data / "raw", lambda dst: _download_hub(d, dst))
    _log("download", f"{d.file}: {manifest['bytes']} bytes, sha256 {manifest['sha256'][:12]}…")


def _download_hub(d: DictConfig, dst: Path) -> dict:
    """A flat hub QA dataset (id, title, context, question, answers{text, answer_start}) as SQuAD JSON."""
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
    doc = {"version": version, "data": [
        {"title": t, "paragraphs": [{"context": c, "qas": qs} for c, qs in paras.items()]}
        for t, paras in articles.items()]}
    write_json(dst, doc)
    return {"hub_name": d.hub_name, "hub_config": d.hub_config, "hub_split": d.hub_split}


# ------------------------------------------------------------------------------- reading
def _need(obj: dict, key: str, kind: type | tuple, where: str) -> Any:
    if key not in obj:
        raise PipelineError(f"{where}: missing field {key!r}")
    v = obj[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise PipelineError(f"{where}: field {key!r}: expected {names}, got {type(v).__name__}")
    return v


def read_squad(path: Path, fmt: str = "auto") -> tuple[list[dict], bool]:
    """Flatten a SQuAD JSON file: (rows, is_v2). Structure errors name file and JSON path."""
    doc = read_json(path)  # missing file, bad UTF-8, truncated JSON -> PipelineError with position
    if not isinstance(doc, dict):
        raise PipelineError(f"{path}: expected a JSON object with a 'data' list, got {type(doc).__name__}")
    data = _need(doc, "data", list, str(path))
    if not data:
        raise PipelineError(f"{path}: 'data' is empty (no articles)")
    if fmt not in ("auto", "v1", "v2"):
        raise PipelineError(f"data.format: {fmt!r} is not one of auto, v1, v2")
    rows, ids = [], set()
    any_impossible = False
    for ai, art in enumerate(data):
        where = f"{path}: data[{ai}]"
        if not isinstance(art, dict):
            raise PipelineError(f"{where}: expected an object, got {type(art).__name__}")
        title = _need(art, "title", str, where)
        for pi, para in enumerate(_need(art, "paragraphs", list, where)):
            pw = f"{where}.paragraphs[{pi}]"
            if not isinstance(para, dict):
                raise PipelineError(f"{pw}: expected an object, got {type(para).__name__}")
            context = _need(para, "context", str, pw)
            for qi, qa in enumerate(_need(para, "qas", list, pw)):
                qw = f"{pw}.qas[{qi}]"
                if not isinstance(qa, dict):
                    raise PipelineError(f"{qw}: expected an object, got {type(qa).__name__}")
                qid = str(_need(qa, "id", (str, int), qw))
                if qid in ids:
                    raise PipelineError(f"{qw}: duplicate question id {qid!r}")
                ids.add(qid)
                question = _need(qa, "question", str, qw)
                impossible = bool(qa.get("is_impossible", False))
                any_impossible |= "is_impossible" in qa
                answers = []
                for ni, ans in enumerate(_need(qa, "answers", list, qw)):
                    aw = f"{qw}.answers[{ni}]"
                    if not isinstance(ans, dict):
                        raise PipelineError(f"{aw}: expected an object, got {type(ans).__name__}")
                    answers.append({"text": _need(ans, "text", str, aw),
                                    "answer_start": _need(ans, "answer_start", int, aw)})
                rows.append({"id": qid, "title": title, "context": context, "question": question,
                             "answers": answers, "is_impossible": impossible})
    version = str(doc.get("version", ""))
    is_v2 = fmt == "v2" or (fmt == "auto" and (version.lstrip("v").startswith("2") or any_impossible))
    return rows, is_v2


# ---------------------------------------------------------------------------------- clean
_TITLE_JUNK = re.compile(r"\s+_\s+")  # "Nikola _ Tesla": an artefact of SQuAD-es' translation


def clean_title(title: str) -> str:
    return " ".join(_TITLE_JUNK.sub(" ", title).split()).rstrip(".") or title


def repair_answer(context: str, text: str, start: int, window: int, strip: bool) -> tuple[dict | None, str]:
    """(answer or None, reason). Reasons: ok, stripped, repaired, empty, not_found, too_far."""
    if strip and text.strip() != text and text.strip():
        lead = len(text) - len(text.lstrip())
        fixed, reason = repair_answer(context, text.strip(), start + lead, window, False)
        return fixed, ("stripped" if reason == "ok" else reason)
    if not text.strip() or start < 0:
        return None, "empty"
    if context[start:start + len(text)] == text:
        return {"text": text, "answer_start": start}, "ok"
    hits = [m.start() for m in re.finditer(re.escape(text), context)]
    if not hits:
        return None, "not_found"
    best = min(hits, key=lambda h: (abs(h - start), h))
    if abs(best - start) > window:
        return None, "too_far"
    return {"text": text, "answer_start": best}, "repaired"


def clean(cfg: DictConfig, run=None) -> None:
    d, c, tp = cfg.data, cfg.data.clean, TaskPaths(cfg)
    out, stats_path = tp.data / "clean.jsonl", tp.data / "clean_stats.json"
    for p in (out, stats_path):
        remove(p)
    raw, is_v2 = read_squad(tp.data / "raw" / d.file, d.format)
    answers_by_reason: Counter = Counter()
    questions: Counter = Counter()
    repairs: list[dict] = []
    rows = []
    for r in raw:
        question = " ".join(r["question"].split())
        if not question:
            questions["dropped_empty_question"] += 1
            continue
        kept = []
        for a in r["answers"]:
            fixed, reason = repair_answer(r["context"], a["text"], a["answer_start"], c.repair_window, c.strip_answers)
            answers_by_reason[reason] += 1
            if reason in ("repaired", "stripped") and len(repairs) < 20:
                repairs.append({"id": r["id"], "reason": reason, "text": fixed["text"],  # type: ignore[index]
                                "from": a["answer_start"], "to": fixed["answer_start"]})  # type: ignore[index]
            if fixed is not None:
                kept.append(fixed)
        impossible = r["is_impossible"] or not kept
        if impossible and not is_v2:
            questions["dropped_no_valid_answer"] += 1
            continue
        if impossible:
            questions["kept_impossible"] += 1
            kept = []
        else:
            questions["kept"] += 1
        rows.append({"id": r["id"], "title": clean_title(r["title"]), "context": r["context"],
                     "question": question, "answers": kept, "is_impossible": impossible})
    if not rows:
        raise PipelineError(f"{tp.data / 'raw' / d.file}: no question left after cleaning ({dict(questions)})")
    stats = {"file": d.file, "format": "v2" if is_v2 else "v1", "questions_read": len(raw),
             "questions": dict(sorted(questions.items())), "answers": dict(sorted(answers_by_reason.items())),
             "articles": len({r["title"] for r in rows}), "paragraphs": len({r["context"] for r in rows}),
             "repair_examples": repairs}
    write_jsonl(out, rows)
    write_json(stats_path, stats)
    _log("clean", f"{len(raw)} questions read ({stats['format']}): {dict(sorted(questions.items()))}")
    _log("clean", f"answers: {dict(sorted(answers_by_reason.items()))}")


# ---------------------------------------------------------------------------------- split
def assign_titles(counts: dict[str, int], val: float, test: float, seed: int) -> dict[str, str]:
    """Seeded title -> split: shuffle titles, fill test, then val, up to their share of questions."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise PipelineError(f"data.split: need 0 < val, 0 < test and val + test < 1 (got val={val}, test={test})")
    titles = sorted(counts)
    if len(titles) < 3:
        raise PipelineError(f"data.split: {len(titles)} article(s); splitting by title needs at least 3")
    order = [titles[i] for i in np.random.default_rng(seed).permutation(len(titles))]
    total = sum(counts.values())
    out: dict[str, str] = {}
    i = 0
    for name, share in (("test", test), ("val", val)):
        got = 0
        # at least one article each; stop at the share, leaving >= 1 article for training
        while i < len(order) - 1 and (got == 0 or got + counts[order[i]] / 2 <= share * total):
            out[order[i]] = name
            got += counts[order[i]]
            i += 1
    for t in order[i:]:
        out[t] = "train"
    return out


def split(cfg: DictConfig, run=None) -> None:
    d, tp = cfg.data, TaskPaths(cfg)
    out, stats_path = tp.data / "split", tp.data / "split_stats.json"
    for p in (out, stats_path):
        remove(p)
    rows = read_jsonl(tp.data / "clean.jsonl")
    seed = int(cfg.runtime.seed)
    which = assign_titles(Counter(r["title"] for r in rows), float(d.split.val), float(d.split.test), seed)
    parts: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        parts[which[r["title"]]].append(r)
    stats = {}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name in SPLITS:
            part = parts[name]
            if d.limit is not None:
                if d.limit < 1:
                    raise PipelineError(f"data.limit: must be >= 1, got {d.limit}")
                keep = np.random.default_rng(seed).permutation(len(part))[: d.limit]
                part = [part[i] for i in sorted(keep)]
            write_jsonl(tmp / f"{name}.jsonl", part)
            stats[name] = {"questions": len(part), "articles": len({r["title"] for r in part}),
                           "paragraphs": len({r["context"] for r in part}),
                           "impossible": sum(r["is_impossible"] for r in part),
                           "titles": sorted({r["title"] for r in part})}
    write_json(stats_path, stats)
    for name, s in stats.items():
        _log("split", f"{name}: {s['questions']} questions, {s['articles']} articles")


def read_split(tp: TaskPaths, name: str) -> list[dict]:
    path = tp.data / "split" / f"{name}.jsonl"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the split stage first)")
    rows = read_jsonl(path)
    for i, r in enumerate(rows, 1):
        for key in ("id", "context", "question", "answers"):
            if key not in r:
                raise PipelineError(f"{path}:{i}: missing field {key!r}")
    return rows
