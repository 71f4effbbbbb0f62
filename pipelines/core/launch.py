"""Scale-out on existing engines: `finetune` re-executes itself under torchrun or accelerate.

    launcher=torchrun train.nproc=2          # CPU: gloo DDP, GPU: NCCL DDP
    launcher=accelerate_fsdp train.nproc=8   # GPU presets: DDP, FSDP, DeepSpeed ZeRO-2/3, QLoRA+FSDP

The DVC command stays `python -m stages.finetune <task>`: the stage sees `launcher.name`, builds
the launcher command and runs itself once per process under it (TUNEDAG_LAUNCHED marks the
children). The HF Trainer does the distributed part (DDP/FSDP/DeepSpeed through Accelerate);
our code only keeps side effects on rank 0 (files, W&B) and splits the global batch.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from .errors import PipelineError

LAUNCHERS = ("local", "torchrun", "accelerate")
CHILD_ENV = "TUNEDAG_LAUNCHED"


def launched() -> bool:
    """True inside a process started by a launcher (ours or the user's own torchrun)."""
    return CHILD_ENV in os.environ or "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def local_world_size() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def per_device_batch(global_batch: int, key: str = "train.batch_size") -> int:
    """The global batch per optimizer step split over the processes (same recipe at any scale)."""
    n = world_size()
    if global_batch % n:
        raise PipelineError(f"{key}: {global_batch} is not divisible by the world size {n} (train.nproc x launcher.nnodes)")
    return global_batch // n


def _check(cfg: DictConfig) -> None:
    lc = cfg.launcher
    if lc.name not in LAUNCHERS:
        raise PipelineError(f"launcher.name: {lc.name!r} is not one of {', '.join(LAUNCHERS)}")
    if cfg.train.nproc < 1 or lc.nnodes < 1:
        raise PipelineError(f"train.nproc / launcher.nnodes: must be >= 1, got {cfg.train.nproc} / {lc.nnodes}")
    if lc.nnodes > 1 and not lc.rdzv_endpoint:
        raise PipelineError("launcher.rdzv_endpoint: needed when launcher.nnodes > 1 (host:port of node 0)")
    if lc.name == "accelerate" and not lc.accelerate:
        raise PipelineError("launcher.accelerate: empty; use a preset such as launcher=accelerate_ddp")
    per_device_world = cfg.train.nproc * lc.nnodes
    if cfg.train.batch_size % per_device_world:
        raise PipelineError(f"train.batch_size: {cfg.train.batch_size} is not divisible by train.nproc x launcher.nnodes "
                            f"= {per_device_world}")


def accelerate_config(cfg: DictConfig) -> dict[str, Any]:
    """The accelerate config file body of the preset, with the process counts filled in, validated
    by accelerate's own config class and launch parser (unknown keys fail here, offline)."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    body = OmegaConf.to_container(cfg.launcher.accelerate, resolve=True) if isinstance(cfg.launcher.accelerate, DictConfig) \
        else dict(cfg.launcher.accelerate)
    body.setdefault("compute_environment", "LOCAL_MACHINE")
    body["num_machines"] = cfg.launcher.nnodes
    body["num_processes"] = cfg.train.nproc * cfg.launcher.nnodes
    known = {a.dest for a in launch_command_parser()._actions}
    for section in ("fsdp_config", "deepspeed_config"):
        for key in body.get(section) or {}:
            if key not in known:
                raise PipelineError(f"launcher.accelerate.{section}.{key}: not an accelerate launch option")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "accelerate.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=True))
        try:
            ClusterConfig.from_yaml_file(str(path))
        except (ValueError, TypeError) as e:
            raise PipelineError(f"launcher.accelerate: {str(e).splitlines()[0]}") from None
    if body.get("distributed_type") == "FSDP" and cfg.peft.method == "qlora":
        # FSDP shards only float tensors: 4-bit weights must be stored in the compute dtype, and
        # flat-parameter wrapping needs use_orig_params off for frozen 4-bit + trainable LoRA
        storage = (cfg.model.quantization or {}).get("bnb_4bit_quant_storage")
        if storage not in ("bfloat16", "float16", "float32"):
            raise PipelineError("model.quantization.bnb_4bit_quant_storage: QLoRA with FSDP needs a float storage dtype "
                                f"(e.g. bfloat16), got {storage!r}")
        if (body.get("fsdp_config") or {}).get("fsdp_use_orig_params", True):
            raise PipelineError("launcher.accelerate.fsdp_config.fsdp_use_orig_params: must be false for QLoRA with FSDP")
    return body


def command(cfg: DictConfig, stage: str, argv: list[str], accelerate_file: str | None = None) -> list[str]:
    """The command line that runs `stages.<stage>` once per process under the configured launcher."""
    lc = cfg.launcher
    target = ["-m", f"stages.{stage}", *argv]
    if lc.name == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(cfg.train.nproc),
               "--nnodes", str(lc.nnodes)]
        # one node: a private rendezvous on a free port (several runs may share a machine)
        cmd += ["--standalone"] if lc.nnodes == 1 else ["--rdzv-backend", "c10d", "--rdzv-endpoint", lc.rdzv_endpoint]
        return cmd + target
    if lc.name == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_file or "<accelerate.yaml>",
                *target]
    raise PipelineError(f"launcher.name: {lc.name!r} does not relaunch")


def describe(cfg: DictConfig, stage: str, argv: list[str]) -> None:
    """Dry run: validate the launcher config and print what would be run."""
    _check(cfg)
    if cfg.launcher.name == "local":
        return
    body = accelerate_config(cfg) if cfg.launcher.name == "accelerate" else None
    world = cfg.train.nproc * cfg.launcher.nnodes
    print(f"[dry-run] launcher: {cfg.launcher.name}, {cfg.train.nproc} process(es) x {cfg.launcher.nnodes} node(s), "
          f"per-device batch {cfg.train.batch_size // world} (global {cfg.train.batch_size})")
    print("[dry-run] command: " + " ".join(command(cfg, stage, argv)))
    if body is not None:
        print("[dry-run] accelerate config:\n" + yaml.safe_dump(body, sort_keys=True).rstrip())
        if "deepspeed_config" in body and body.get("distributed_type") == "DEEPSPEED":
            try:
                import deepspeed  # noqa: F401
            except ImportError:
                print("[dry-run] note: deepspeed is not installed here; `pip install deepspeed` on the GPU machine")


def relaunch(cfg: DictConfig, stage: str, argv: list[str]) -> int:
    """Run the stage under the launcher and return its exit code."""
    _check(cfg)
    env = {**os.environ, CHILD_ENV: "1"}
    if cfg.launcher.name == "accelerate":
        import torch

        if not torch.cuda.is_available():
            raise PipelineError("launcher: the accelerate presets need CUDA GPUs (none found); on CPU use launcher=torchrun")
        body = accelerate_config(cfg)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "accelerate.yaml"
            path.write_text(yaml.safe_dump(body, sort_keys=True))
            cmd = command(cfg, stage, argv, str(path))
            print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
            return subprocess.run(cmd, env=env).returncode
    cmd = command(cfg, stage, argv)
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env).returncode


def ddp_backend(cfg: DictConfig) -> str | None:
    """TrainingArguments.ddp_backend: None lets Accelerate choose (gloo on CPU, nccl on GPU)."""
    if "launcher" not in cfg:
        return None
    b = cfg.launcher.backend
    return None if b == "auto" else b
