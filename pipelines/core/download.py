"""The download stage's shared part: copy a local data file into the task's raw dir, verified.

Shared data (`../shared/data`) never changes in place and comes with a SHA256SUMS file; the
copy (what later stages read) is checked against it, so a corrupted or swapped file fails
here with a clear error instead of producing different numbers downstream.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import PipelineError
from .io import atomic_path, remove, sha256_file, write_json
from .paths import project_relative


def verify_checksum(src: Path, copy: Path) -> bool:
    """Check `copy` against `<src dir>/SHA256SUMS` when it exists; False when there is none."""
    sums = src.parent / "SHA256SUMS"
    if not sums.exists():
        print(f"warning: {sums} not found; {src.name} not verified", file=sys.stderr)
        return False
    expected = None
    for line in sums.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2 and parts[1].lstrip("*") == src.name:  # `*name` = binary mode
            expected = parts[0].lower()
    if expected is None:
        raise PipelineError(f"{src}: not listed in {sums}")
    got = sha256_file(copy)
    if got != expected:
        raise PipelineError(f"{src}: sha256 mismatch: expected {expected}, got {got} (per {sums})")
    return True


def download(data_cfg: Any, raw: Path, from_hub: Callable[[Path], dict]) -> dict:
    """Fill `raw/` (atomically) with `data.file` and a manifest.json; returns the manifest.

    source=local copies `<data.root>/<data.file>` and verifies its checksum; source=hub calls
    `from_hub(dst)`, the task's own conversion of a hub dataset into the file format its
    clean stage reads (returning extra manifest fields).
    """
    remove(raw)
    with atomic_path(raw) as tmp:
        tmp.mkdir()
        dst = tmp / data_cfg.file
        extra: dict = {}
        if data_cfg.source == "local":
            src = project_relative(data_cfg.root) / data_cfg.file
            if not src.is_file():
                raise PipelineError(f"{src}: file not found")
            shutil.copyfile(src, dst)
            verified = verify_checksum(src, dst)
        elif data_cfg.source == "hub":
            extra = from_hub(dst) or {}
            verified = False
        else:
            raise PipelineError(f"data.source: unknown source {data_cfg.source!r} (expected local or hub)")
        manifest = {"file": data_cfg.file, "sha256": sha256_file(dst), "source": data_cfg.source,
                    "bytes": dst.stat().st_size, "checksum_verified": verified, **extra}
        write_json(tmp / "manifest.json", manifest)
    return manifest


def load_hub_dataset(data_cfg: Any):
    """datasets.load_dataset(hub_name, hub_config, split=hub_split), failing as a config error."""
    if not data_cfg.hub_name:
        raise PipelineError("data.hub_name: empty (required when data.source=hub)")
    import datasets

    args = [data_cfg.hub_name] + ([data_cfg.hub_config] if data_cfg.get("hub_config") else [])
    try:
        return datasets.load_dataset(*args, split=data_cfg.hub_split)
    except Exception as e:  # offline / unknown name: a config problem, not a bug
        raise PipelineError(f"data.hub_name: cannot load {data_cfg.hub_name!r} split {data_cfg.hub_split!r}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
