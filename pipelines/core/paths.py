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
