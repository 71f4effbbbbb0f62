"""Data stages of the extractive_qa task: download -> clean -> split.

Every SQuAD-format source goes through core.squad's reader: a local SQuAD JSON file (v1.1, or
v2.0 with `is_impossible`), or a hub dataset (`squad`, `squad_v2`, `PlanTL-GOB-ES/SQAC`, ...)
that download converts into the same JSON; structure errors name the file and JSON path.

clean flattens to one row per question and validates every answer against its context:
empty answers (SQuAD-es has `answer_start = -1` alignment failures) are dropped, offsets that
are off by some characters are repaired when the text occurs nearby, and each reason is
counted in clean_stats.json. In a v2 file an answerable question whose answer is nowhere
near its context is an error (it would otherwise become a wrong "no answer" label).
split keeps whole articles together.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np
from omegaconf import DictConfig

from pipelines.core.download import download as core_download
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_jsonl, remove, write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.squad import clean_title, hub_to_squad, read_squad

SPLITS = ("train", "val", "test")


def _log(stage: str, msg: str) -> None:
    print(f"[extractive_qa:{stage}] {msg}", flush=True)


# ------------------------------------------------------------------------------- download
def download(cfg: DictConfig, run=None) -> None:
    d = cfg.data
    manifest = core_download(d, TaskPaths(cfg).data / "raw", lambda dst: hub_to_squad(d, dst))
    _log("download", f"{d.file}: {manifest['bytes']} bytes, sha256 {manifest['sha256'][:12]}…")


# ---------------------------------------------------------------------------------- clean
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
    squad = read_squad(tp.data / "raw" / d.file, d.format)
    raw, is_v2 = squad.questions(), squad.is_v2
    answers_by_reason: Counter = Counter()
    questions: Counter = Counter()
    repairs: list[dict] = []
    rows = []
    for r in raw:
        question = " ".join(r["question"].split())
        if not question:
            questions["dropped_empty_question"] += 1
            continue
        kept, lost = [], []
        for a in r["answers"]:
            fixed, reason = repair_answer(r["context"], a["text"], a["answer_start"], c.repair_window, c.strip_answers)
            answers_by_reason[reason] += 1
            if reason in ("not_found", "too_far"):
                lost.append(f"{a['text']!r} at {a['answer_start']}: {reason}")
            if reason in ("repaired", "stripped") and len(repairs) < 20:
                repairs.append({"id": r["id"], "reason": reason, "text": fixed["text"],  # type: ignore[index]
                                "from": a["answer_start"], "to": fixed["answer_start"]})  # type: ignore[index]
            if fixed is not None:
                kept.append(fixed)
        if is_v2 and not r["is_impossible"] and not kept and lost:
            raise PipelineError(f"{squad.path}: question {r['id']!r}: answerable (is_impossible false) but no answer "
                                f"is in its context ({'; '.join(lost)}); fix the answer or set is_impossible: true")
        impossible = r["is_impossible"] or not kept
        if impossible and not is_v2:
            questions["dropped_no_valid_answer"] += 1
            continue
        if impossible:
            questions["kept_impossible"] += 1
            kept = []
        else:
            questions["kept"] += 1
        # the title is the split key; the "(en inglés)" note stays, as it always has in this task's data
        rows.append({"id": r["id"], "title": clean_title(r["title"], drop_language_note=False), "context": r["context"],
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
