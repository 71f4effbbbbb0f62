"""The task registry: every fact about a task family, declared once in its package.

A task is three things and nothing else:

- a package `pipelines/<name>/` whose `spec.py` defines `SPEC = TaskSpec(...)` (this module:
  schema, stages as "module:function" with their flags, metrics, dry-run stage),
- `conf/task/<name>.yaml` (its Hydra defaults; the schema is registered as `/schema/<name>`),
- its stanza in dvc.yaml (`python -m stages.<stage> <name>` per stage).

Discovery scans `pipelines/*/spec.py`: there is no central list to edit. Everything that needs
the task list (the stage runner, Hydra schemas, params.yaml, `pipelines.run`, reports/index.html)
reads `tasks()`, which orders tasks by `TaskSpec.order`, then by name; that order is the order of
params.yaml's blocks and of the index page, so it is part of each spec.

`spec.py` imports nothing but this module (no torch, no task code): the runner reads every spec
on each start, and the stage functions are imported only when their stage runs.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import PipelineError

PIPELINES = Path(__file__).resolve().parents[1]  # the folder holding the task packages
_PKG = __name__.split(".")[0]  # "pipelines"


@dataclass(frozen=True)
class Stage:
    """One stage of a task: `python -m stages.<name> <task>` calls `target(cfg)`."""

    name: str
    target: str  # "module:function" in the task package
    # re-executed under the configured launcher (torchrun / accelerate) unless launcher.name is local
    launchable: bool = False
    # after a real (not dry) run, <metrics>/run_info.json records the resolved config and versions
    records_run_info: bool = False


@dataclass(frozen=True)
class Metric:
    """One number in a JSON file a stage writes: `<paths.<folder>>/<file>`, then `keys` inward."""

    file: str
    keys: tuple[str, ...]
    folder: str = "metrics"  # a paths.* folder of the task: metrics | models
    goal: str = "max"  # which way is better (max | min), for whatever optimises it

    @property
    def label(self) -> str:
        return ".".join(self.keys)

    def read(self, obj: Any) -> Any:
        """The value inside a parsed file, or None when a key is missing (an older file)."""
        for k in self.keys:
            if not isinstance(obj, dict) or k not in obj:
                return None
            obj = obj[k]
        return obj


@dataclass(frozen=True)
class BestOf:
    """Index-page table of a mapping in the test metric's file: one row per entry, `columns` =
    (header, key in the entry). Replaces the default table (the run against baselines.json)."""

    key: str
    title: str
    row_header: str
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    package: str  # the task package, `__package__` of its spec.py
    schema: str  # "module:Class" in the package: the structured config of the task's block
    stages: tuple[Stage, ...]  # in run order (the DVC graph, linearised), as `pipelines.run` runs them
    test_metric: Metric  # the headline: index page, Hydra runs' return value
    # what a sweep may optimise without looking at test data; None when the task has no validation split
    validation_metric: Metric | None
    # a few more numbers of the test metric's file on the index page: (label, dotted key path)
    key_metrics: tuple[tuple[str, str], ...] = ()
    dry_run_stage: str = "finetune"  # the stage whose --dry-run prints the plan without weights
    comparison: BestOf | None = None  # index page; None: the run against metrics/<task>/baselines.json
    order: int = 100  # position among tasks (params.yaml, index page); ties by name

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def __post_init__(self):
        names = self.stage_names
        problems = []
        if len(set(names)) != len(names):
            problems.append(f"duplicate stage names {names}")
        if self.dry_run_stage not in names:
            problems.append(f"dry_run_stage {self.dry_run_stage!r} is not one of its stages")
        for target in (self.schema, *(s.target for s in self.stages)):
            if target.count(":") != 1:
                problems.append(f"{target!r} is not 'module:name'")
        if self.test_metric.folder != "metrics":
            problems.append("test_metric must be a file under metrics/ (the index page reads it there)")
        for m in (self.test_metric, self.validation_metric):
            if m is not None and (m.goal not in ("max", "min") or m.folder not in ("metrics", "models")):
                problems.append(f"{m}: goal is max|min, folder is metrics|models")
        if problems:
            raise ValueError(f"TaskSpec {self.name!r}: " + "; ".join(problems))

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def load(self, target: str) -> Any:
        """Import "module:name" from the task package (only now: stage modules may import torch)."""
        module, attr = target.split(":")
        return getattr(importlib.import_module(f"{self.package}.{module}"), attr)

    def function(self, stage: str) -> Callable:
        return self.load(self.stage(stage).target)

    def schema_class(self) -> type:
        return self.load(self.schema)

    def stage_modules(self, stage: str) -> list[str]:
        """The task's modules a run of `stage` imports by name, which no import statement shows
        (for DVC code deps): this spec, the schema's module and the stage function's module."""
        entry = self.stage(stage)
        targets = [self.schema] + ([entry.target] if entry else [])
        return [f"{self.package}.spec"] + list(dict.fromkeys(f"{self.package}.{t.split(':')[0]}" for t in targets))


def train_eval_stages(**targets: str) -> tuple[Stage, ...]:
    """The fine-tuning tasks' stages, with the default places of their functions; a keyword
    argument (stage=target) moves one stage's function elsewhere."""
    default = {"download": "data:download", "clean": "data:clean", "split": "data:split",
               "tokenize": "model:tokenize", "finetune": "model:finetune", "evaluate": "model:evaluate",
               "baselines": "baselines:baselines", "report": "report:report"}
    unknown = set(targets) - set(default)
    if unknown:
        raise ValueError(f"train_eval_stages: no stage {sorted(unknown)}")
    default.update(targets)
    return tuple(Stage(name, target, launchable=name == "finetune", records_run_info=name == "evaluate")
                 for name, target in default.items())


@functools.cache
def tasks() -> dict[str, TaskSpec]:
    """Every task package's SPEC, in task order. A spec.py that is wrong is a bug: it raises."""
    specs = []
    for path in sorted(PIPELINES.glob("*/spec.py")):
        package = f"{_PKG}.{path.parent.name}"
        spec = getattr(importlib.import_module(f"{package}.spec"), "SPEC", None)
        if not isinstance(spec, TaskSpec):
            raise TypeError(f"{path}: defines no SPEC = TaskSpec(...)")
        if (spec.name, spec.package) != (path.parent.name, package):
            raise ValueError(f"{path}: SPEC names task {spec.name!r} in {spec.package!r}; "
                             f"a task's name is its package's ({path.parent.name!r} in {package!r})")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=lambda s: (s.order, s.name))}


def spec_modules() -> list[str]:
    """Every task's spec module: what `tasks()` imports by name (code deps of anything reading all tasks)."""
    return [f"{s.package}.spec" for s in tasks().values()]


def get(task: str) -> TaskSpec:
    specs = tasks()
    if task not in specs:
        raise PipelineError(f"unknown task {task!r}; known tasks: {', '.join(sorted(specs))}")
    return specs[task]
