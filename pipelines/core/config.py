"""Composing configs (Hydra) and reading a task's block of params.yaml.

`params.yaml` holds one fully composed block per task (`sentiment:`, ...), regenerated from
`conf/` by `python -m pipelines.core.params`. DVC stages read their task's block; Hydra runs
compose the same schema from `conf/` directly.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
PARAMS_FILE = PROJECT_ROOT / "params.yaml"

# task name -> package; each package has `config.py` (schema class `<X>Config`) and the stage
# modules named in pipelines.core.stage.DEFAULT_STAGES
TASKS: dict[str, str] = {
    "sentiment": "pipelines.sentiment",
    "extractive_qa": "pipelines.extractive_qa",
    "instruct": "pipelines.instruct",
    "qgen_es": "pipelines.qgen_es",
    "rag": "pipelines.rag",
}


def task_schema(task: str) -> type:
    if task not in TASKS:
        raise PipelineError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
    mod = importlib.import_module(TASKS[task] + ".config")
    return getattr(mod, "".join(p.capitalize() for p in task.split("_")) + "Config")


def register_schemas() -> None:
    """Make every task schema available to Hydra as `/schema/<task>`."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for task in TASKS:
        cs.store(group="schema", name=task, node=task_schema(task), package="_global_")


def compose(task: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose `conf/` for one task with Hydra's compose API (used by params regeneration/tests)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[f"task={task}", *(overrides or [])])


def validate(task: str, block: Any, source: str) -> DictConfig:
    """Merge a plain dict onto the task schema: unknown keys and wrong types fail here."""
    schema = OmegaConf.structured(task_schema(task))
    try:
        cfg = OmegaConf.merge(schema, block)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        msg = str(e).strip().splitlines()[0]
        key = getattr(e, "full_key", None)
        raise PipelineError(f"{source}: {task}.{key}: {msg}" if key else f"{source}: {msg}") from None
    return cfg


def load_task_block(task: str, params_path: str | Path = PARAMS_FILE) -> DictConfig:
    params_path = Path(params_path)
    if not params_path.exists():
        raise PipelineError(f"{params_path}: not found (regenerate with `python -m pipelines.core.params`)")
    data = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    if task not in data:
        task_schema(task)  # unknown task -> clear error first
        raise PipelineError(f"{params_path}: no block for task {task!r}")
    return validate(task, data[task], str(params_path))


def to_plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
