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

# the one scrubber (scrub.py); the old private names stay importable from here
from .scrub import scrub as _scrub, secret_name as _secret_name  # noqa: F401


class _NoRun:
    """Stand-in when tracking is off: same calls, nothing recorded."""

    def log(self, *a: Any, **k: Any) -> None: ...
    def finish(self) -> None: ...

    @property
    def summary(self) -> dict:
        return {}


_STAGE: dict | None = None  # {"run": ...} while stage.main runs a stage (see stage_run)


class _Borrowed:
    """The stage's own run handed to code that calls `start()`; its `finish()` is left to stage_run."""

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
    """The W&B run of this stage: inside stage.main, the stage's one run (opened on first use);
    outside (tests, notebooks), a new run."""
    if _STAGE is None:
        return _init(cfg, stage)
    if _STAGE["run"] is None:
        _STAGE["run"] = _init(cfg, stage)
    run = _STAGE["run"]
    return run if isinstance(run, _NoRun) else _Borrowed(run)


def _init(cfg: DictConfig, stage: str):
    from .launch import is_main_process

    t = cfg.tracking
    if t.backend != "wandb" or t.mode == "disabled" or not is_main_process():  # DDP: rank 0 tracks
        os.environ["WANDB_MODE"] = "disabled"
        return _NoRun()
    import wandb

    os.environ["WANDB_MODE"] = t.mode
    config = _scrub(OmegaConf.to_container(cfg, resolve=True))  # secrets captured at start: see scrub.py
    if t.mode == "offline":
        # An offline run needs no API key, so wandb and its service process (which inherits this
        # environment and writes debug logs into the run dir) never get to see it. wandb 0.31
        # writes no key offline anyway (tests/test_bad_inputs.py walks the run dir); this keeps
        # it that way whatever a future version logs.
        os.environ.pop("WANDB_API_KEY", None)
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
        config=config,
        reinit="finish_previous",
        settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True),
    )


@contextlib.contextmanager
def stage_run(cfg: DictConfig, stage: str) -> Iterator[None]:
    """One W&B run per stage execution, data stages included. Opened when the stage first calls
    `start()` (training and evaluation log into it), else after the stage succeeded; the stage's
    statistics file (<data>/<stage>_stats.json) and wall time go to its summary. A stage rejected
    for bad input before it tracked anything leaves no run behind; one that fails later finishes
    its run with exit code 1."""
    global _STAGE
    if cfg.get("train", {}).get("dry_run"):
        yield
        return
    _STAGE = {"run": None}
    t0 = time.time()
    try:
        yield
    except BaseException:
        run = _STAGE["run"]
        if run is not None and not isinstance(run, _NoRun):
            run.finish(exit_code=1)
        raise
    finally:
        run, _STAGE = _STAGE["run"], None
    if run is None:
        run = _init(cfg, stage)
    if isinstance(run, _NoRun):
        return
    from .paths import TaskPaths

    stats = TaskPaths(cfg).data / f"{stage}_stats.json"
    if stats.exists() and stats.stat().st_mtime >= t0:
        run.summary.update({f"stats/{k}": v for k, v in json.loads(stats.read_text()).items()})
    run.summary["stage_seconds"] = round(time.time() - t0, 1)
    run.finish()
