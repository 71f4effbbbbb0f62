"""Composing configs (Hydra) and reading a task's block of params.yaml.

`params.yaml` holds one fully composed block per task (`sentiment:`, ...), regenerated from
`conf/` by `python -m pipelines.core.params`. DVC stages read their task's block; Hydra runs
compose the same schema from `conf/` directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import registry
from .errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
PARAMS_FILE = PROJECT_ROOT / "params.yaml"

# task name -> its spec, in task order (found by pipelines/core/registry.py, no list to edit)
TASKS: dict[str, registry.TaskSpec] = registry.tasks()


def task_schema(task: str) -> type:
    return registry.get(task).schema_class()


def register_schemas() -> None:
    """Make every task schema available to Hydra as `/schema/<task>`."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for task in TASKS:
        cs.store(group="schema", name=task, node=task_schema(task), package="_global_")


_HYDRA = None  # the Hydra instance compose() initialised (re-initialised if someone else replaced it)


def compose(task: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose `conf/` for one task with Hydra's compose API (used by params regeneration/tests).
    Hydra is initialised once per process: the test suite composes a few hundred configs."""
    global _HYDRA
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    gh = GlobalHydra.instance()
    if _HYDRA is None or not gh.is_initialized() or gh.hydra is not _HYDRA:
        register_schemas()
        gh.clear()
        initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")  # stays initialised
        _HYDRA = gh.hydra
    return hydra_compose(config_name="config", overrides=[f"task={task}", *(overrides or [])])


# string keys whose value must be one of a few words, checked with the schema so that a typo
# fails at start (not after a stage has written its outputs and only then starts tracking)
CHOICES: dict[str, tuple[str, ...]] = {
    "tracking.backend": ("wandb", "none"),
    "tracking.mode": ("offline", "online", "disabled"),
}


def validate(task: str, block: Any, source: str) -> DictConfig:
    """Merge a plain dict onto the task schema: unknown keys and wrong types fail here."""
    schema = OmegaConf.structured(task_schema(task))
    if not isinstance(block, (dict, DictConfig)):
        raise PipelineError(f"{source}: {task}: expected a mapping of config keys, got {type(block).__name__}")
    try:
        cfg = OmegaConf.merge(schema, block)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        msg = str(e).strip().splitlines()[0]
        key = getattr(e, "full_key", None)
        raise PipelineError(f"{source}: {task}.{key}: {msg}" if key else f"{source}: {msg}") from None
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in allowed:
            raise PipelineError(f"{source}: {task}.{key}: {value!r} is not one of {', '.join(allowed)}")
    return cfg


def load_task_block(task: str, params_path: str | Path = PARAMS_FILE) -> DictConfig:
    params_path = Path(params_path)
    if not params_path.exists():
        raise PipelineError(f"{params_path}: not found (regenerate with `python -m pipelines.core.params`)")
    try:
        data = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise PipelineError(f"{params_path}: not valid UTF-8 (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise PipelineError(f"{params_path}: invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{params_path}: expected a mapping of task blocks, got {type(data).__name__}")
    if task not in data:
        task_schema(task)  # unknown task -> clear error first
        raise PipelineError(f"{params_path}: no block for task {task!r}")
    return validate(task, data[task], str(params_path))


def to_plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
