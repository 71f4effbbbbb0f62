"""Resuming a killed finetune: which checkpoint to go on from, and the loss sums HF keeps in memory only.

A killed `finetune` (SIGKILL, OOM, preemption) leaves `<models>/checkpoints/` behind (not a DVC
output, so the next `dvc repro` keeps it); training then goes on from the last complete checkpoint
of the same config and data, and logs the loss curve an uninterrupted run would have logged.
"""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

RESUME_SECTIONS = ("model", "peft", "train", "launcher", "data", "prompt", "sft")
RESUME_FILE = "tunedag_resume.json"


def _fingerprint(cfg: DictConfig, data_dir: Path) -> str:
    import hashlib

    from .io import sha256_file

    block = OmegaConf.to_container(cfg, resolve=True)
    sections = {k: block[k] for k in RESUME_SECTIONS if k in block}
    sections["train"] = {k: v for k, v in sections["train"].items() if k != "dry_run"}
    sections["seed"] = block["runtime"]["seed"]
    files = sorted(p for p in Path(data_dir).rglob("*") if p.is_file()) if Path(data_dir).exists() else []
    sections["data_files"] = {str(p.relative_to(data_dir)): sha256_file(p) for p in files}
    return hashlib.sha256(json.dumps(sections, sort_keys=True, default=str).encode()).hexdigest()


def _complete(ckpt: Path) -> bool:
    """HF writes a checkpoint's trainer_state.json last (after weights, optimizer, scheduler and RNG
    states): a checkpoint killed mid-save has none, or a truncated one."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    has_weights = any((ckpt / f).exists() for f in ("adapter_model.safetensors", "model.safetensors"))
    return has_weights and (ckpt / "optimizer.pt").exists()


def resume_checkpoint(cfg: DictConfig, ckpt_dir: Path, data_dir: Path) -> str | None:
    """The last complete checkpoint of an interrupted run of this same config and data, or None.

    A killed `finetune` (SIGKILL, OOM, preemption) leaves `<models>/checkpoints/` behind: it is not
    a DVC output, so the next `dvc repro` keeps it and training resumes from there (adapter weights,
    optimizer, scheduler and RNG states). Checkpoints of another config or another tokenized dataset
    are discarded. Checkpoints are written at every evaluation (`train.eval_strategy`).
    """
    from .io import write_json
    from .launch import is_main_process

    ckpt_dir = Path(ckpt_dir)
    fp = _fingerprint(cfg, data_dir)
    marker = ckpt_dir / RESUME_FILE
    try:
        same = json.loads(marker.read_text()).get("fingerprint") == fp
    except (OSError, ValueError):
        same = False
    found = None
    if same:
        ckpts = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                       key=lambda p: int(p.name.split("-")[-1]), reverse=True)
        found = next((p for p in ckpts if _complete(p)), None)
    if is_main_process():  # under DDP every rank decides the same; only rank 0 touches the files
        import shutil

        if not same and ckpt_dir.exists():
            print(f"[finetune] {ckpt_dir}: checkpoints of another config or dataset, discarded")
            shutil.rmtree(ckpt_dir)
        elif same:
            for p in ckpt_dir.glob("checkpoint-*"):
                if p.is_dir() and (found is None or int(p.name.split("-")[-1]) > int(found.name.split("-")[-1])):
                    print(f"[finetune] {p.name}: incomplete (killed while saving), removed")
                    shutil.rmtree(p)
        write_json(marker, {"fingerprint": fp}, output=False)  # kept if the stage fails: resume
    if found is not None:
        print(f"[finetune] resuming from {found} (step {found.name.split('-')[-1]})")
        return str(found)
    return None


LOSS_FILE = "tunedag_loss-{rank}.json"


def train_resumable(trainer, resume: str | None):
    """`trainer.train(resume_from_checkpoint=resume)`, logging the loss curve of an uninterrupted run.

    HF keeps the loss summed since the last log (and the total behind `train_loss`) in memory only:
    a run resumed from a checkpoint between two logs would average its next logged loss over the
    post-resume steps alone, and `train_loss` over the post-resume steps. Each checkpoint gets those
    sums (one file per process), and a resumed run starts from them."""
    trainer.add_callback(_loss_state_callback(trainer, resume))
    return trainer.train(resume_from_checkpoint=resume)


def _loss_state_callback(trainer, resume: str | None):
    import torch
    from transformers import TrainerCallback

    class LossState(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            path = Path(resume or "") / LOSS_FILE.format(rank=args.process_index)
            if resume is None:
                return
            if not path.exists():  # a checkpoint of an older version: HF's own (partial) averages
                print(f"[finetune] {path.name} not in {resume}: the next logged loss averages post-resume steps only")
                return
            saved = json.loads(path.read_text())
            # float32 -> Python float -> float32 is exact: the sums go on as if never interrupted
            trainer._tr_loss = torch.tensor(saved["tr_loss"], device=args.device)
            trainer._total_loss_scalar = saved["total"]
            trainer._globalstep_last_logged = saved["last_logged"]
            trainer._initial_global_step = saved["initial_step"]

        def on_save(self, args, state, control, **kw):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                (ckpt / LOSS_FILE.format(rank=args.process_index)).write_text(json.dumps({
                    "tr_loss": trainer._tr_loss.item(), "total": trainer._total_loss_scalar,
                    "last_logged": trainer._globalstep_last_logged, "initial_step": trainer._initial_global_step}))

    return LossState()
