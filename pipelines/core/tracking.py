"""W&B tracking: one run per stage (job_type = stage), grouped per experiment.

Offline by default (no network; `wandb sync wandb_runs/wandb/offline-run-*` uploads later).
Only the resolved task config is logged as the run config: never environment variables.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig, OmegaConf

# the one scrubber (scrub.py); the old private names stay importable from here
from .scrub import scrub as _scrub, secret_name as _secret_name  # noqa: F401


class Run:
    """The W&B run of one stage execution, opened on first use (`open`, `log`, `summary`,
    `records`), so a stage that fails on bad input before it tracks anything leaves no run.

    The stage runner makes one per stage (`stage_run`) and passes it to the stage function; code
    that logs gets it as an argument. `records` is False when tracking is off (tracking.mode
    disabled, another backend, a non-zero DDP rank): then nothing is recorded."""

    def __init__(self, cfg: DictConfig, stage: str):
        self.cfg, self.stage = cfg, stage
        self.opened = False
        self.wandb: Any = None  # the W&B run once opened, if recording

    def open(self) -> Run:
        if not self.opened:
            self.opened = True
            self.wandb = _init(self.cfg, self.stage)
        return self

    @property
    def records(self) -> bool:
        return self.open().wandb is not None

    def log(self, data: dict) -> None:
        if self.records:
            self.wandb.log(data)

    @property
    def summary(self) -> Any:
        """The run's summary (dict-like); a throwaway dict when nothing is recorded."""
        return self.wandb.summary if self.records else {}

    def finish(self, exit_code: int | None = None) -> None:
        if self.wandb is not None:
            self.wandb.finish(**({} if exit_code is None else {"exit_code": exit_code}))
            self.wandb = None


def tracked(stage: str) -> Callable:
    """Decorator of a stage function `fn(cfg, run=None)` that logs: called without a run (tests,
    notebooks), it gets a run of its own for the call, as the stage runner would give it."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def call(cfg: DictConfig, run: Run | None = None) -> Any:
            if run is not None:
                return fn(cfg, run)
            with stage_run(cfg, stage) as own:
                return fn(cfg, own)

        return call

    return wrap


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


def _init(cfg: DictConfig, stage: str):
    from .launch import is_main_process

    t = cfg.tracking
    if t.backend != "wandb" or t.mode == "disabled" or not is_main_process():  # DDP: rank 0 tracks
        os.environ["WANDB_MODE"] = "disabled"
        return None
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
def stage_run(cfg: DictConfig, stage: str) -> Iterator[Run]:
    """The one run of a stage execution, data stages included. Opened when the stage first uses
    it (training and evaluation log into it), else after the stage succeeded; the stage's
    statistics file (<data>/<stage>_stats.json) and wall time go to its summary. A stage rejected
    for bad input before it tracked anything leaves no run behind; one that fails later finishes
    its run with exit code 1. A dry run's is only opened if the stage uses it."""
    run = Run(cfg, stage)
    if cfg.get("train", {}).get("dry_run"):
        try:
            yield run
        finally:
            run.finish()
        return
    t0 = time.time()
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    if not run.records:
        return
    from .paths import TaskPaths

    stats = TaskPaths(cfg).data / f"{stage}_stats.json"
    if stats.exists() and stats.stat().st_mtime >= t0:
        run.summary.update({f"stats/{k}": v for k, v in json.loads(stats.read_text()).items()})
    run.summary["stage_seconds"] = round(time.time() - t0, 1)
    run.finish()
