"""Atomic, deterministic file I/O.

Every stage output is written to a temporary sibling and renamed into place, so a killed or
failed stage never leaves an output that looks complete.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import PipelineError

_WRITTEN: list[Path] | None = None  # outputs renamed into place since track_writes()


def track_writes() -> None:
    """Record every output written from now on (the stage runner removes them if the stage fails)."""
    global _WRITTEN
    _WRITTEN = []


def written() -> list[Path]:
    return list(_WRITTEN or [])


@contextlib.contextmanager
def atomic_path(path: str | Path, output: bool = True) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it over `path` (file or directory).
    `output=False`: bookkeeping that must survive a failed stage (e.g. the resume marker).

    A full disk (or an OSError without a file name) is re-raised with `path` as its file name, so
    the stage runner's one-line error names the output that could not be written."""
    path = Path(path)
    try:
        with _atomic(path) as target:
            yield target
    except OSError as e:
        # a full disk: name the output (shutil names the copy's source, a write() nothing at all)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or (e.filename is None and e.errno is not None):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    if output and _WRITTEN is not None:
        _WRITTEN.append(path)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # leftovers of a writer killed before its rename (SIGKILL skips `finally`); one writer per path
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise RuntimeError(f"{path}: nothing was written")
        remove(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove(path: str | Path) -> None:
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def write_text(path: str | Path, text: str, output: bool = True) -> None:
    with atomic_path(path, output) as tmp:
        tmp.write_text(text, encoding="utf-8")


def dumps_json(obj: Any) -> str:
    # sorted keys + fixed float repr: same inputs give byte-identical files
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default) + "\n"


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any, output: bool = True) -> None:
    write_text(path, dumps_json(obj), output)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise PipelineError(f"{path}: empty file")
        return json.loads(text)
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise PipelineError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True, default=_json_default) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: file not found")
    rows = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise PipelineError(f"{path}:{i}: not valid UTF-8") from None
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise PipelineError(f"{path}:{i}: invalid JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise PipelineError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
            rows.append(obj)
    return rows


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
