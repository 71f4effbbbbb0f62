"""What the finetune stage leaves under `paths.models`, and loading it back.

final/ holds the trained weights (full fine-tuning) or the LoRA adapter, the tokenizer and
tunedag.json (method, base model, what loading needs); train_log.json, train_summary.json
and train_timing.json describe the run. Every task's evaluate loads final/ with
`load_finetuned`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from .errors import PipelineError
from .models import load_kwargs, local_kwargs, resolve

FINAL = "final"


def checkpoint_dir(cfg: DictConfig) -> Path:
    """Where training writes its checkpoints (kept after a kill, to resume; removed once finished)."""
    from .paths import TaskPaths

    return TaskPaths(cfg).models / "checkpoints"


def read_log_history(trainer) -> list[dict]:
    return [dict(e) for e in trainer.state.log_history]


def save_finetuned(cfg: DictConfig, trainer, tok, src: str, summary: dict, train_seconds: float,
                   final_meta: dict | None = None, **extra) -> None:
    """Write what finetune leaves behind, under `paths.models`: final/ (weights or adapter,
    tokenizer, tunedag.json), train_log.json, train_summary.json (summary + `extra`) and
    train_timing.json. Wall-clock fields go only to train_timing.json, so identical runs give
    identical logs (and reports); checkpoints are removed: a finished run has nothing to resume.
    `final_meta` adds fields to final/tunedag.json (what loading the model back needs)."""
    import torch

    from .io import atomic_path, write_json
    from .paths import TaskPaths

    if not trainer.is_world_process_zero():  # under DDP only rank 0 writes
        return
    models = TaskPaths(cfg).models
    with atomic_path(models / FINAL) as tmp:
        trainer.model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "tunedag.json").write_text(json.dumps({"method": cfg.peft.method, "base": src, "model": cfg.model.key,
                                                           **(final_meta or {})}))
    history, timings = [], []
    for entry in read_log_history(trainer):
        timing = {k: v for k, v in entry.items() if k.endswith(("_runtime", "_per_second"))}
        history.append({k: v for k, v in entry.items() if k not in timing})
        if timing:
            timings.append({"step": entry.get("step"), **timing})
    write_json(models / "train_log.json", history)
    best = trainer.state.best_metric
    write_json(models / "train_summary.json", {
        "model": cfg.model.key, **summary, "best_checkpoint_metric": best,
        "metric_for_best": cfg.train.metric_for_best, "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch, "world_size": trainer.args.world_size,
        "per_device_batch": trainer.args.per_device_train_batch_size, **extra,
    })
    write_json(models / "train_timing.json", {"train_seconds": round(train_seconds, 1),
                                              "threads": torch.get_num_threads(), "log": timings})
    import shutil

    shutil.rmtree(checkpoint_dir(cfg), ignore_errors=True)
    print(f"[finetune] {trainer.state.global_step} steps in {train_seconds:.0f}s, best {cfg.train.metric_for_best}={best}")


def load_finetuned(cfg: DictConfig, auto_class: str, final: Path | None = None, *, load_base: Callable[[], Any] | None = None,
                   base_kwargs: dict | None = None, full_kwargs: dict | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a finetune output folder (default <models>/final).

    Full fine-tuning: the saved weights (`auto_class` with `full_kwargs`). LoRA: the adapter on
    its base model, merged for speed; QLoRA: kept on the 4-bit base. The base is `load_base()`,
    or `auto_class` from the configured model with `base_kwargs` (e.g. a classifier's label maps).
    """
    import transformers

    from .paths import TaskPaths

    final = final or TaskPaths(cfg).models / FINAL
    meta_file = final / "tunedag.json"
    if not meta_file.exists():
        raise PipelineError(f"{final}: no fine-tuned model (run the finetune stage first)")
    meta = json.loads(meta_file.read_text())
    cls = getattr(transformers, auto_class)
    tok = transformers.AutoTokenizer.from_pretrained(final, **local_kwargs(cfg.model))
    if meta["method"] == "full":
        model = cls.from_pretrained(final, **(full_kwargs or {}), **local_kwargs(cfg.model))
    else:
        from peft import PeftModel

        if load_base is not None:
            base = load_base()
        else:
            base = cls.from_pretrained(resolve(cfg.model, cfg.paths.base_models), **(base_kwargs or {}),
                                       **load_kwargs(cfg.model))
        if meta.get("pad", {}).get("added") and len(tok) != base.get_input_embeddings().weight.shape[0]:
            base.resize_token_embeddings(len(tok))  # the pad token added at tokenize time
        model = PeftModel.from_pretrained(base, final)
        if meta["method"] == "qlora":
            from . import qlora

            qlora.disable_cpu_bf16_fastpath(model)
        else:
            model = model.merge_and_unload()
    return model.eval(), tok
