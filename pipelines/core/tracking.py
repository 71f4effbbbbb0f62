"""W&B tracking: one run per stage (job_type = stage), grouped per experiment.

Offline by default (no network; `wandb sync wandb_runs/wandb/offline-run-*` uploads later).
Only the resolved task config is logged as the run config: never environment variables.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

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


_STAGE_RUN: Any = None  # the run stage.main opened for this stage execution


class _Borrowed:
    """The stage's own run handed to code that calls `start()`; its `finish()` is left to stage.main."""

    def __init__(self, run: Any):
        self._run = run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def finish(self, *a: Any, **k: Any) -> None: ...


def group(cfg: DictConfig) -> str:
    """W&B group: one per experiment. `dvc exp run`/queue runs carry DVC_EXP_NAME; Hydra runs and
    multiruns set tracking.group to "<task>-<run|multirun>-<sweep dir>"; TUNEDAG_WANDB_GROUP wins."""
    if os.environ.get("TUNEDAG_WANDB_GROUP"):
        return os.environ["TUNEDAG_WANDB_GROUP"]
    if os.environ.get("DVC_EXP_NAME"):
        return f"{cfg.tracking.group}-exp-{os.environ['DVC_EXP_NAME']}"
    return cfg.tracking.group


def run_dir(cfg: DictConfig) -> Path:
    """Where offline runs go: <paths.root>/<tracking.dir>; for `dvc exp run --temp`/queue (a throwaway
    copy of the repo) that is the real project's, so no run is lost with the copy."""
    root = Path(cfg.paths.root)
    if not root.is_absolute():
        from .paths import project_relative

        root = Path(os.environ.get("DVC_ROOT") or project_relative(".")) / root
    return root / cfg.tracking.dir


def start(cfg: DictConfig, stage: str, run_dir_: Path | None = None):
    """The W&B run of this stage: the one stage.main opened, or a new one (code run outside a stage)."""
    if _STAGE_RUN is not None:
        return _Borrowed(_STAGE_RUN)
    return _init(cfg, stage)


def _init(cfg: DictConfig, stage: str):
    from .launch import is_main_process

    t = cfg.tracking
    if t.backend != "wandb" or t.mode == "disabled" or not is_main_process():  # DDP: rank 0 tracks
        os.environ["WANDB_MODE"] = "disabled"
        return _NoRun()
    import wandb

    os.environ["WANDB_MODE"] = t.mode
    wdir = run_dir(cfg)
    wdir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=t.project,
        entity=t.entity,
        group=group(cfg),
        job_type=stage,
        name=f"{cfg.task.name}-{stage}",
        tags=list(t.tags) + [cfg.task.name],
        dir=str(wdir),
        mode=t.mode,
        config=_scrub(OmegaConf.to_container(cfg, resolve=True)),
        reinit="finish_previous",
        settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True),
    )


@contextlib.contextmanager
def stage_run(cfg: DictConfig, stage: str) -> Iterator[Any]:
    """One W&B run per stage execution (every stage, not only the training ones): the stage's
    statistics file (<data>/<stage>_stats.json) and its wall time go to the run summary; a failed
    stage finishes its run with exit code 1."""
    global _STAGE_RUN
    if cfg.get("train", {}).get("dry_run"):
        yield _NoRun()
        return
    run = _init(cfg, stage)
    _STAGE_RUN = None if isinstance(run, _NoRun) else run
    t0 = time.time()
    try:
        yield run
    except BaseException:
        if _STAGE_RUN is not None:
            run.finish(exit_code=1)
        raise
    finally:
        _STAGE_RUN = None
    if not isinstance(run, _NoRun):
        from .paths import TaskPaths

        stats = TaskPaths(cfg).data / f"{stage}_stats.json"
        if stats.exists() and stats.stat().st_mtime >= t0:
            run.summary.update({f"stats/{k}": v for k, v in json.loads(stats.read_text()).items()})
        run.summary["stage_seconds"] = round(time.time() - t0, 1)
        run.finish()
