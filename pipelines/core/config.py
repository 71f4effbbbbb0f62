"""Composing configs (Hydra) and reading a task's block of params.yaml.

`params.yaml` holds one fully composed block per task (`sentiment:`, ...), regenerated from
`conf/` by `python -m pipelines.core.params`. DVC stages read their task's block; Hydra runs
compose the same schema from `conf/` directly.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from omegaconf.nodes import StringNode

from . import registry
from .errors import PipelineError
from .schema import CHECK, YAML11_BOOLS, yaml_bool_hint

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


def validate(task: str, block: Any, source: str) -> DictConfig:
    """Merge a plain dict onto the task schema: unknown keys, wrong types and values outside the
    allowed words / ranges declared at the schema's fields (pipelines/core/schema.py) fail here."""
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
    if isinstance(block, dict):  # a composed DictConfig has no raw YAML values left to look at
        problem = _yaml_boolean(block, cfg, "")
        if problem:
            raise PipelineError(f"{source}: {task}.{problem}")
    problem = _constraint_problem(cfg, "") or _cross_field_problem(cfg)
    if problem:
        raise PipelineError(f"{source}: {task}.{problem}")
    return cfg


@functools.lru_cache(maxsize=None)
def _field_checks(cls: type) -> dict[str, Any]:
    """Constraints of a schema class's fields; a subclass that only changes a default keeps its
    base's constraint."""
    checks: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            checks.update({f.name: f.metadata[CHECK] for f in dataclasses.fields(klass) if CHECK in f.metadata})
    return checks


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)


def _constraint_problem(node: Any, path: str) -> str | None:
    """`<key>: <what>` for the first value (depth first) outside its field's declared constraint."""
    if isinstance(node, DictConfig):
        kind = OmegaConf.get_type(node)
        checks = _field_checks(kind) if dataclasses.is_dataclass(kind) else {}
        items = [(k, node._get_node(k)) for k in node.keys()]
    elif isinstance(node, ListConfig):
        checks, items = {}, [(i, node._get_node(i)) for i in range(len(node))]
    else:
        return None
    for key, child in items:
        where = _join(path, key)
        check = checks.get(key)
        if check is not None and not OmegaConf.is_missing(node, key):
            value = OmegaConf.to_container(child) if isinstance(child, (DictConfig, ListConfig)) else child._value()
            # a list or dict field: the constraint holds for each element / value
            parts = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else [(None, value)]
            for sub, v in parts:
                problem = None if v is None else check.problem(v)
                if problem:
                    return f"{where if sub is None else _join(where, sub)}: {problem}"
        if isinstance(child, (DictConfig, ListConfig)):
            problem = _constraint_problem(child, where)
            if problem:
                return problem
    return None


def _cross_field_problem(cfg: DictConfig) -> str | None:
    t = cfg.get("train")
    if t is not None and "epochs" in t and t.epochs == 0 and t.max_steps <= 0:
        return "train.epochs: must be > 0 unless train.max_steps > 0, got 0 (nothing would be trained)"
    return None


def _yaml_boolean(raw: Any, node: Any, path: str) -> str | None:
    """A YAML 1.1 boolean (`eval_strategy: no`) where the schema expects a string: OmegaConf
    would turn it into "False" without a word; say to quote it."""
    if isinstance(raw, dict) and isinstance(node, DictConfig):
        pairs = [(k, v, node._get_node(k)) for k, v in raw.items() if k in node]
    elif isinstance(raw, list) and isinstance(node, ListConfig) and len(raw) == len(node):
        pairs = [(i, v, node._get_node(i)) for i, v in enumerate(raw)]
    else:
        return None
    checks = _field_checks(OmegaConf.get_type(node)) if isinstance(node, DictConfig) and dataclasses.is_dataclass(
        OmegaConf.get_type(node)) else {}
    for key, value, child in pairs:
        where = _join(path, key)
        if isinstance(value, bool) and isinstance(child, StringNode):
            allowed = getattr(checks.get(key), "allowed", ())
            words = [w for w in allowed if w in YAML11_BOOLS and (w in ("yes", "on")) == value]
            return f"{where}: got {str(value).lower()} ({yaml_bool_hint(words or None)})"
        problem = _yaml_boolean(value, child, where)
        if problem:
            return problem
    return None


def load_task_block(task: str, params_path: str | Path = PARAMS_FILE) -> DictConfig:
    params_path = Path(params_path)
    if not params_path.exists():
        raise PipelineError(f"{params_path}: not found (regenerate with `python -m pipelines.core.params`)")
    if not params_path.is_file():
        raise PipelineError(f"{params_path}: is a folder, not a params file (--params takes a YAML file such as params.yaml)")
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
