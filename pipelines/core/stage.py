"""The one entry point behind every `stages/<name>.py`.

    python -m stages.finetune sentiment [--params params.yaml]

reads the task's block of params.yaml (validated against the task schema), sets threads
before torch is imported, and calls the stage's function ("module:function" in the task
package, see DEFAULT_STAGES) with the config. A PipelineError
(bad input or config) becomes one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time

from .config import PARAMS_FILE, TASKS, load_task_block
from .errors import PipelineError
from .runtime import offline_defaults, set_threads

# Where a stage's function lives in a task package ("module:function"); a package whose
# layout differs defines its own STAGES in `steps.py`. Modules are imported only when their
# stage runs, so each stage pays only for what it uses.
DEFAULT_STAGES = {
    "download": "data:download",
    "clean": "data:clean",
    "split": "data:split",
    "tokenize": "model:tokenize",
    "finetune": "model:finetune",
    "evaluate": "model:evaluate",
    "baselines": "baselines:baselines",
    "report": "report:report",
}


def stage_table(task: str) -> dict[str, str]:
    try:
        return importlib.import_module(f"{TASKS[task]}.steps").STAGES
    except ModuleNotFoundError as e:
        if e.name != f"{TASKS[task]}.steps":
            raise
        return DEFAULT_STAGES


def apply_overrides(task: str, cfg, overrides: list[str]):
    """`--set key=value` pairs on top of the params block, validated like the block itself."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from .config import to_plain, validate

    block = to_plain(cfg)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"--set {item!r}: expected KEY=VALUE")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise PipelineError(f"--set {item!r}: value is not valid YAML ({problem})") from None
        node = OmegaConf.create(block)
        try:
            OmegaConf.update(node, key, parsed, merge=False, force_add=True)
        except OmegaConfBaseException as e:  # e.g. a key path through a non-mapping value
            raise PipelineError(f"--set {item!r}: {str(e).strip().splitlines()[0]}") from None
        # validated one by one, so the error names the override that broke the config
        cfg = validate(task, OmegaConf.to_container(node), f"--set {item}")
        block = to_plain(cfg)
    return cfg


# libraries whose versions can change a metric; recorded next to every run's metrics
VERSIONED = ("torch", "transformers", "tokenizers", "peft", "trl", "accelerate", "bitsandbytes", "datasets",
             "numpy", "scikit-learn", "scipy", "rouge-score", "sacrebleu", "bm25s", "PyStemmer", "py3langid", "tunedag")


def record_run_info(cfg) -> None:
    """<metrics>/run_info.json: the resolved config (secrets masked) and the library versions of this
    run, beside its metrics (git-tracked by DVC, so every `dvc exp` carries its own)."""
    import platform
    from importlib import metadata

    from omegaconf import OmegaConf

    from .io import write_json
    from .paths import TaskPaths
    from .tracking import _scrub

    versions = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    write_json(TaskPaths(cfg).metrics / "run_info.json",
               {"config": _scrub(OmegaConf.to_container(cfg, resolve=True)), "versions": versions})


def main(stage: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=f"{stage} stage")
    parser.add_argument("task", help=f"task family ({', '.join(TASKS)}); 'task=NAME' also accepted")
    parser.add_argument("--params", default=str(PARAMS_FILE), help="composed params file (default: params.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="build configs and data pipeline, do not train")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key of the task block for this stage (YAML value), e.g. select=bash-w300")
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    task = args.task.removeprefix("task=")
    try:
        cfg = load_task_block(task, args.params)
        if args.set:
            cfg = apply_overrides(task, cfg, args.set)
        if args.dry_run:
            cfg.train.dry_run = True
        if stage == "finetune" and "launcher" in cfg and cfg.launcher.name != "local":
            from . import launch

            if cfg.train.dry_run:
                launch.describe(cfg, stage, raw_argv)
            elif not launch.launched():
                sys.exit(launch.relaunch(cfg, stage, raw_argv))  # each process prints its own errors
        from .launch import local_world_size

        threads = cfg.runtime.threads
        # processes of one node share its cores
        set_threads(max(1, int(threads.get(stage, threads.get("default", 1))) // local_world_size()))
        offline_defaults()
        target = stage_table(task).get(stage)
        if target is None:
            raise PipelineError(f"task {task!r} has no stage {stage!r}")
        module, name = target.split(":")
        fn = getattr(importlib.import_module(f"{TASKS[task]}.{module}"), name)
        t0 = time.time()
        from . import tracking

        with tracking.stage_run(cfg, stage) as run:
            fn(cfg, run)  # stage functions take (cfg, run): the run is the one code that logs uses
        if stage == "evaluate" and not cfg.get("train", {}).get("dry_run"):
            record_run_info(cfg)
        print(f"[{task}:{stage}] done in {time.time() - t0:.1f}s", file=sys.stderr)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
