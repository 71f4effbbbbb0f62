"""Data stages of the instruct task: download -> clean -> split.

Input is Alpaca-style JSON: a list of {instruction, input, output} (input may be empty). The
reader names the first bad record and field (`file: [12].output: expected a string`); clean
strips whitespace, drops records with an empty instruction or output and exact duplicates,
counting each reason; split is a seeded shuffle into train/val/test.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipelines.core.download import download as core_download, load_hub_dataset
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl
from pipelines.core.paths import TaskPaths

SPLITS = ("train", "val", "test")
FIELDS = ("instruction", "input", "output")


def _log(stage: str, msg: str) -> None:
    print(f"[instruct:{stage}] {msg}", flush=True)


def download(cfg: DictConfig, run=None) -> None:
    d = cfg.data
    manifest = core_download(d, TaskPaths(cfg).data / "raw", lambda dst: _download_hub(d, dst))
    _log("download", f"{d.file}: {manifest['bytes']} bytes, sha256 {manifest['sha256'][:12]}…")


def _download_hub(d: DictConfig, dst: Path) -> dict:
    ds = load_hub_dataset(d)
    if missing := {"instruction", "output"} - set(ds.column_names):
        raise PipelineError(f"{d.hub_name}: not an instruction dataset, missing column(s) {sorted(missing)}")
    write_json(dst, [{k: row.get(k) or "" for k in FIELDS} for row in ds])
    return {"hub_name": d.hub_name, "hub_split": d.hub_split}


def read_records(path: Path) -> list[dict]:
    doc = read_json(path)  # missing file, bad UTF-8, truncated JSON -> one-line PipelineError
    if not isinstance(doc, list):
        raise PipelineError(f"{path}: expected a JSON list of {{instruction, input, output}} objects")
    if not doc:
        raise PipelineError(f"{path}: no records")
    out = []
    for i, rec in enumerate(doc):
        if not isinstance(rec, dict):
            raise PipelineError(f"{path}: [{i}]: expected an object, got {type(rec).__name__}")
        row = {}
        for k in FIELDS:
            v = rec.get(k, "" if k == "input" else None)
            if v is None:
                raise PipelineError(f"{path}: [{i}]: missing field {k!r}")
            if not isinstance(v, str):
                raise PipelineError(f"{path}: [{i}].{k}: expected a string, got {type(v).__name__}")
            row[k] = v
        out.append(row)
    return out


def clean(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    rows = read_records(tp.data / "raw" / cfg.data.file)
    counts = {"read": len(rows), "empty_instruction": 0, "empty_output": 0, "duplicate": 0}
    seen: set[str] = set()
    kept = []
    for r in rows:
        r = {k: r[k].strip() for k in FIELDS}
        if not r["instruction"]:
            counts["empty_instruction"] += 1
            continue
        if not r["output"]:
            counts["empty_output"] += 1  # nothing to learn from
            continue
        key = "\x1f".join(r[k] for k in FIELDS)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        # a content hash: stable ids whatever the order of the source file
        kept.append({"id": hashlib.sha1(key.encode()).hexdigest()[:12], **r})
    if not kept:
        raise PipelineError(f"{tp.data / 'raw' / cfg.data.file}: no usable records after cleaning ({counts})")
    counts["kept"] = len(kept)
    write_jsonl(tp.data / "clean.jsonl", kept)
    write_json(tp.data / "clean_stats.json", counts)
    _log("clean", ", ".join(f"{k} {v}" for k, v in counts.items()))


def split(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    rows = read_jsonl(tp.data / "clean.jsonl")
    s = cfg.data.split
    if not (0 <= s.val < 1 and 0 < s.test < 1 and s.val + s.test < 1):
        raise PipelineError(f"data.split: val={s.val}, test={s.test}: need 0 <= val, 0 < test, val + test < 1")
    order = np.random.default_rng(cfg.runtime.seed).permutation(len(rows))
    n_test, n_val = int(round(len(rows) * s.test)), int(round(len(rows) * s.val))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    stats = {}
    with atomic_path(tp.data / "split") as out:
        out.mkdir()
        for name in SPLITS:
            sel = [rows[i] for i in sorted(parts[name])]
            if cfg.data.limit:
                sel = sel[:cfg.data.limit]
            if not sel:
                raise PipelineError(f"data.split: split {name!r} is empty ({len(rows)} records)")
            write_jsonl(out / f"{name}.jsonl", sel)
            stats[name] = len(sel)
    write_json(tp.data / "split_stats.json", stats)
    _log("split", ", ".join(f"{k} {v}" for k, v in stats.items()))


def read_split(tp: TaskPaths, name: str) -> list[dict]:
    path = tp.data / "split" / f"{name}.jsonl"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the split stage first)")
    return read_jsonl(path)
