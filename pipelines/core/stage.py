"""The one entry point behind every `stages/<name>.py`.

    python -m stages.finetune sentiment [--params params.yaml]

reads the task's block of params.yaml (validated against the task schema), sets threads
before torch is imported, and calls the stage's function with the config. What a stage is
(its function, whether it may be relaunched under torchrun/accelerate, whether it records
run_info.json) comes from the task's spec (pipelines/core/registry.py), never from its name.
A PipelineError (bad input or config) becomes one line on stderr and exit code 2; anything else
is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import errno
import sys
import time

from . import scrub as _scrub  # first: captures the secret env values before anything drops one
from .config import PARAMS_FILE, TASKS, load_task_block
from .errors import PipelineError
from .registry import get as task_spec
from .runtime import offline_defaults, set_threads

# OSErrors that mean the machine, not the code: the disk is full or read-only, a folder is not a
# folder. Reported like bad input (one line naming the path, exit 2); any other OSError is a bug.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                      errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def dtype_paths(block: dict, prefix: str = "") -> dict:
    """Every `dtype`/`bf16`/`fp16` key of the config (model weights, autocast, generation copy):
    the settings under which numbers are only reproducible on the same kind of CPU."""
    out = {}
    for k, v in block.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(dtype_paths(v, f"{key}."))
        elif k in ("dtype", "bf16", "fp16"):
            out[key] = v
    return out


def record_run_info(cfg, stage: str = "evaluate") -> None:
    """<metrics>/run_info.json: the resolved config (secrets masked), the library versions, CPU
    model, threads and dtype paths of this run, beside its metrics (git-tracked by DVC, so every
    `dvc exp` carries its own)."""
    import os
    import platform
    from importlib import metadata

    import torch
    from omegaconf import OmegaConf

    from .io import write_json
    from .paths import TaskPaths

    versions = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    block = OmegaConf.to_container(cfg, resolve=True)
    threads = block.get("runtime", {}).get("threads", {})
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(),
               # this stage's: configured (runtime.threads), the TUNEDAG_MAX_THREADS cap, what torch used
               "threads": {"stage": stage, "configured": threads.get(stage, threads.get("default")),
                           "cap": os.environ.get("TUNEDAG_MAX_THREADS"), "torch": torch.get_num_threads()}}
    write_json(TaskPaths(cfg).metrics / "run_info.json",
               {"config": _scrub.scrub(block), "versions": versions, "machine": machine,
                "dtypes": dtype_paths(block)})


def check_tracking_dir(cfg) -> None:
    """A tracking dir that cannot be created fails before the stage writes anything (the run is
    opened only after a data stage succeeded)."""
    if cfg.get("train", {}).get("dry_run") or "tracking" not in cfg:
        return
    t = cfg.tracking
    if t.backend != "wandb" or t.mode == "disabled":
        return
    import tempfile

    from .tracking import run_dir

    d = run_dir(cfg)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=d).close()
    except OSError as e:
        raise PipelineError(f"{d}: tracking.dir: {'not a folder' if e.errno == errno.EEXIST else e.strerror}") from None


def _environment_error(e: OSError) -> str:
    where = e.filename or "output"
    return f"error: {where}: {e.strerror or e}"


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
        spec = task_spec(task)
        entry = spec.stage(stage)
        if entry is None:
            raise PipelineError(f"task {task!r} has no stage {stage!r}")
        if args.dry_run:
            cfg.train.dry_run = True
        if entry.launchable and "launcher" in cfg and cfg.launcher.name != "local":
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
        fn = spec.load(entry.target)
        t0 = time.time()
        from . import io, tracking

        check_tracking_dir(cfg)
        io.track_writes()
        with tracking.stage_run(cfg, stage) as run:
            fn(cfg, run)  # stage functions take (cfg, run): the run is the one code that logs uses
        if entry.records_run_info and not cfg.get("train", {}).get("dry_run"):
            record_run_info(cfg, stage)
        print(f"[{task}:{stage}] done in {time.time() - t0:.1f}s", file=sys.stderr)
    except PipelineError as e:
        _rollback()
        print(f"error: {_scrub.scrub_text(str(e))}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        _rollback()
        print(_scrub.scrub_text(_environment_error(e)), file=sys.stderr)
        sys.exit(2)


def _rollback() -> None:
    """A failed stage leaves none of the outputs it already wrote (each was complete, but the set
    is not: DVC would take the stage for failed, a user reading them might not)."""
    from . import io

    for path in reversed(io.written()):
        try:
            io.remove(path)
        except OSError:
            pass
