"""Where a task's files live: every path is under `paths.root` (a Hydra run dir or ".")."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


class TaskPaths:
    def __init__(self, cfg: DictConfig):
        p = cfg.paths
        root = Path(p.root)
        self.root = root
        self.data = root / p.data
        self.models = root / p.models
        self.metrics = root / p.metrics
        self.reports = root / p.reports
        # shared across runs: relative to the project, not to the run dir
        self.base_models = Path(p.base_models)


def project_relative(path: str | Path) -> Path:
    """Resolve a path given relative to the project (e.g. data.root = ../shared/data).

    `dvc exp run --temp` and `dvc queue` run stages in a copy of the repo under
    `<project>/.dvc/tmp/exps/...`; paths that point outside the repo must still be taken
    relative to the real project, not to that copy.
    """
    p = Path(path)
    if p.is_absolute():
        return p
    base = Path.cwd().resolve()
    parts = base.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            base = Path(*parts[:i])
            break
    return base / p
