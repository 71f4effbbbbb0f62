"""W&B tracking: one run per stage (job_type = stage), grouped per experiment.

Offline by default (no network; `wandb sync wandb_runs/wandb/offline-run-*` uploads later).
Only the resolved task config is logged as the run config: never environment variables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SECRET_MARKERS = ("key", "token", "secret", "password")


def _scrub(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: ("***" if any(m in k.lower() for m in SECRET_MARKERS) and isinstance(v, str) and v else _scrub(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


class _NoRun:
    """Stand-in when tracking is off: same calls, nothing recorded."""

    def log(self, *a: Any, **k: Any) -> None: ...
    def finish(self) -> None: ...

    @property
    def summary(self) -> dict:
        return {}


def start(cfg: DictConfig, stage: str, run_dir: Path | None = None):
    from .launch import is_main_process

    t = cfg.tracking
    if t.backend != "wandb" or t.mode == "disabled" or not is_main_process():  # DDP: rank 0 tracks
        os.environ["WANDB_MODE"] = "disabled"
        return _NoRun()
    import wandb

    os.environ["WANDB_MODE"] = t.mode
    wdir = Path(cfg.paths.root) / t.dir
    wdir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=t.project,
        entity=t.entity,
        group=t.group,
        job_type=stage,
        name=f"{cfg.task.name}-{stage}",
        tags=list(t.tags) + [cfg.task.name],
        dir=str(wdir),
        mode=t.mode,
        config=_scrub(OmegaConf.to_container(cfg, resolve=True)),
        reinit="finish_previous",
        settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True),
    )
