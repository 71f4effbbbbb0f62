"""Shared fine-tuning plumbing: PEFT wrapping, parameter counts, TrainingArguments, the training
run (`fit`, resumable), dry runs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from .errors import PipelineError
from .models import load_kwargs, local_kwargs, read_model_type, resolve, target_modules

PEFT_METHODS = ("lora", "qlora", "full")


def count_params(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def lora_config(peft_cfg: DictConfig, model_type: str, task_type: str, n_layers: int | None = None):
    from peft import LoraConfig

    if peft_cfg.method not in PEFT_METHODS:
        raise PipelineError(f"peft.method: {peft_cfg.method!r} is not one of {', '.join(PEFT_METHODS)}")
    if peft_cfg.r <= 0:
        raise PipelineError(f"peft.r: must be positive, got {peft_cfg.r}")
    layers = None
    top = peft_cfg.get("top_layers")
    if top is not None:
        if not n_layers or not 0 < top <= n_layers:
            raise PipelineError(f"peft.top_layers: must be in 1..{n_layers} (the model's layer count), got {top}")
        layers = list(range(n_layers - top, n_layers))
    return LoraConfig(
        layers_to_transform=layers,
        task_type=task_type,
        r=peft_cfg.r,
        lora_alpha=peft_cfg.lora_alpha,
        lora_dropout=peft_cfg.lora_dropout,
        target_modules=target_modules(peft_cfg, model_type),
        bias=peft_cfg.bias,
        modules_to_save=list(peft_cfg.modules_to_save) if peft_cfg.modules_to_save else None,
    )


def apply_peft(model, peft_cfg: DictConfig, model_type: str, task_type: str):
    """Wrap with LoRA (or leave as is for full fine-tuning). Returns (model, summary dict)."""
    on_meta = next(iter(model.parameters())).device.type == "meta"  # dry run: nothing is loaded
    if peft_cfg.method == "qlora" and not on_meta and not getattr(model, "is_loaded_in_4bit", False):
        raise PipelineError("peft.method: qlora needs a 4-bit base model; this task loads it unquantised "
                            "(QLoRA is supported by the causal-LM tasks instruct and qgen_es)")
    if peft_cfg.method == "full":
        targets: Any = "all parameters"
    else:
        from peft import get_peft_model

        lcfg = lora_config(peft_cfg, model_type, task_type, getattr(model.config, "num_hidden_layers", None))
        model = get_peft_model(model, lcfg)
        targets = sorted(lcfg.target_modules) if not isinstance(lcfg.target_modules, str) else lcfg.target_modules
    trainable, total = count_params(model)
    summary = {
        "method": peft_cfg.method,
        "target_modules": targets,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": round(100.0 * trainable / total, 4),
    }
    if peft_cfg.method != "full" and peft_cfg.get("top_layers"):
        summary["top_layers"] = peft_cfg.top_layers
    return model, summary


def training_arguments(cfg: DictConfig, output_dir: Path, report_to: list[str], args_cls=None, **overrides):
    """TrainingArguments (or a subclass such as TRL's SFTConfig) from the `train` block."""
    from transformers import TrainingArguments

    from .launch import ddp_backend, per_device_batch

    t = cfg.train
    eval_strategy = t.eval_strategy
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=per_device_batch(t.batch_size),  # == batch_size in one process
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.grad_accum,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        lr_scheduler_type=t.scheduler,
        max_grad_norm=t.max_grad_norm,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps if eval_strategy == "steps" else None,
        save_strategy=eval_strategy if eval_strategy != "no" else "no",
        save_steps=t.eval_steps if eval_strategy == "steps" else None,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=t.load_best and eval_strategy != "no",
        metric_for_best_model=t.metric_for_best if t.load_best and eval_strategy != "no" else None,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        seed=cfg.runtime.seed,
        data_seed=cfg.runtime.seed,
        use_cpu=not _has_cuda(),
        report_to=report_to,
        run_name=f"{cfg.task.name}-finetune",
        disable_tqdm=True,
        bf16=t.bf16,
        dataloader_num_workers=0,
        ddp_backend=ddp_backend(cfg),
        # Under DDP, HF multiplies the loss by the world size, assuming a token-summed loss divided by
        # the global token count (causal LMs). Encoder heads return a per-batch mean, which made
        # their gradients (and logged loss) 2x too large on 2 processes: only SFT opts in.
        average_tokens_across_devices="sft" in cfg,
    )
    kw.update(overrides)
    return (args_cls or TrainingArguments)(**kw)


def ordered_eval_trainer():
    """A Trainer class whose evaluation keeps the dataset order.

    transformers 5 applies `group_by_length` to the eval sampler too (a seeded shuffle of
    length-grouped megabatches): metrics that pair predictions with dataset rows by position
    (QA post-processing maps features back to examples) would read shuffled rows.
    Train batches stay length-grouped; pre-sort the eval set by length to save padding.
    """
    import torch
    from transformers import Trainer

    class OrderedEvalTrainer(Trainer):
        def _get_eval_sampler(self, eval_dataset):
            return torch.utils.data.SequentialSampler(eval_dataset) if eval_dataset is not None else None

    return OrderedEvalTrainer


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_config(model_cfg: DictConfig, base_models: str | Path, **extra):
    """The model's HF config without weights: local config.json, hub cache, or the `arch` block."""
    from transformers import AutoConfig

    src = model_cfg.source
    if src in ("package", "path"):
        return AutoConfig.from_pretrained(resolve(model_cfg, base_models), **local_kwargs(model_cfg), **extra)
    try:
        return AutoConfig.from_pretrained(model_cfg.hub_id, **load_kwargs(model_cfg), **extra)
    except Exception as e:  # offline / not cached: fall back to the architecture facts in the config
        if not model_cfg.arch:
            raise PipelineError(
                f"model.arch: {model_cfg.hub_id} is not reachable ({type(e).__name__}) and the model config has no arch block"
            ) from None
        arch = (OmegaConf.to_container(model_cfg.arch, resolve=True) if isinstance(model_cfg.arch, DictConfig)
                else dict(model_cfg.arch))
        return AutoConfig.for_model(arch.pop("model_type"), **arch, **extra)


# what each architecture calls its attention-probability dropout
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def model_overrides(cfg: DictConfig, hf_config=None) -> dict:
    """`from_pretrained` kwargs for train-level overrides of the model's own config."""
    value = cfg.train.attention_dropout
    if value is None:
        return {}
    hf_config = hf_config or build_config(cfg.model, cfg.paths.base_models)
    keys = [k for k in ATTENTION_DROPOUT_KEYS if hasattr(hf_config, k)]
    if not keys:
        raise PipelineError(f"train.attention_dropout: {hf_config.model_type} has none of "
                            f"{', '.join(ATTENTION_DROPOUT_KEYS)}; set it to null")
    return {k: float(value) for k in keys}


def memory_estimate(total: int, trainable: int, weight_bytes: float, batch_tokens: int, hidden: int, layers: int,
                    checkpointing: bool = False, world: int = 1, sharding: str = "none") -> dict:
    """Rough training memory per device (GiB): weights + grads/Adam states of trainable params +
    activations of the per-device batch. `sharding`: none (DDP), optimizer (ZeRO-2) or all (FSDP, ZeRO-3)."""
    gib = 1024**3
    weights = total * weight_bytes / (world if sharding == "all" else 1)
    optim = trainable * (4 + 4 + 4) / (world if sharding in ("all", "optimizer") else 1)  # fp32 grad + two Adam moments
    # ~ 34 * hidden bytes per token per layer (fp32 activations, no checkpointing), a standard rule of thumb;
    # with checkpointing only each layer's bf16 input is kept, plus one layer recomputed at a time
    acts = batch_tokens * hidden * (layers * 2 + 34) if checkpointing else batch_tokens * hidden * layers * 34
    out = {"weights_gib": round(weights / gib, 2), "grads_optimizer_gib": round(optim / gib, 2),
           "activations_gib": round(acts / gib, 2), "total_gib": round((weights + optim + acts) / gib, 2)}
    if world > 1:
        out.update(world_size=world, sharding=sharding)
    return out


def sharding_of(cfg: DictConfig) -> tuple[int, str]:
    """(world size, what is sharded) of the configured launcher, for the dry run's memory estimate."""
    if "launcher" not in cfg:
        return 1, "none"
    world = cfg.train.nproc * cfg.launcher.nnodes
    acc = cfg.launcher.accelerate or {}
    kind = acc.get("distributed_type") if cfg.launcher.name == "accelerate" else None
    if kind == "FSDP" or (kind == "DEEPSPEED" and (acc.get("deepspeed_config") or {}).get("zero_stage") == 3):
        return world, "all"
    if kind == "DEEPSPEED":
        return world, "optimizer"
    return world, "none"


def dry_run_model(cfg: DictConfig, auto_cls_name: str, task_type: str, num_labels: int | None = None) -> dict:
    """Build the model on the meta device (no weights), apply PEFT, print what would train."""
    import torch
    import transformers

    extra = {"num_labels": num_labels} if num_labels else {}
    hf_cfg = build_config(cfg.model, cfg.paths.base_models, **extra)
    for k, v in model_overrides(cfg, hf_cfg).items():
        setattr(hf_cfg, k, v)
    auto_cls = getattr(transformers, auto_cls_name)
    with torch.device("meta"):
        model = auto_cls.from_config(hf_cfg)
    model, summary = apply_peft(model, cfg.peft, hf_cfg.model_type, task_type)
    q = cfg.model.quantization
    weight_bytes = 0.5 if q and q.get("load_in_4bit") else (2 if cfg.model.dtype in ("bfloat16", "float16") else 4)
    hidden = getattr(hf_cfg, "hidden_size", None) or getattr(hf_cfg, "dim", 768)
    layers = getattr(hf_cfg, "num_hidden_layers", None) or getattr(hf_cfg, "n_layers", 12)
    world, sharding = sharding_of(cfg)
    mem = memory_estimate(summary["total_params"], summary["trainable_params"], weight_bytes,
                          max(1, cfg.train.batch_size // world) * (cfg.sft.max_length if "sft" in cfg else 256), hidden,
                          layers, checkpointing=bool("sft" in cfg and cfg.sft.gradient_checkpointing),
                          world=world, sharding=sharding)
    info = {"model": cfg.model.key, "source": cfg.model.source, "hub_id": cfg.model.hub_id,
            "model_type": hf_cfg.model_type, "auto_class": auto_cls_name, **summary,
            "quantization": dict(q) if q else None, "memory_estimate": mem}
    print("[dry-run] model and adapter:\n" + json.dumps(info, indent=2, default=str))
    return info


# config sections that change what training computes: a checkpoint of another config must not be resumed
def fit(cfg: DictConfig, run, trainer_for: Callable[[Any, list], Any], args_cls=None, **arg_overrides) -> tuple[Any, float]:
    """Train with the `train` block: (trainer, seconds). `trainer_for(args, callbacks)` builds the
    task's Trainer. An interrupted run of the same config resumes from its last checkpoint; HF's
    W&B callback logs into the stage's run, opened here so that it exists when training starts."""
    import time

    from transformers import EarlyStoppingCallback

    from .finetuned import checkpoint_dir
    from .paths import TaskPaths
    from .resume import resume_checkpoint, train_resumable

    run.open()
    ckpt = checkpoint_dir(cfg)
    resume = resume_checkpoint(cfg, ckpt, TaskPaths(cfg).data / "tokenized")  # after a kill: go on from there
    args = training_arguments(cfg, ckpt, report_to=["wandb"] if cfg.tracking.mode != "disabled" else [],
                              args_cls=args_cls, **arg_overrides)
    patience = cfg.train.early_stopping_patience
    trainer = trainer_for(args, [EarlyStoppingCallback(patience)] if patience > 0 else [])
    t0 = time.time()
    train_resumable(trainer, resume)
    return trainer, time.time() - t0


def model_type_of(cfg: DictConfig) -> str:
    return read_model_type(resolve(cfg.model, cfg.paths.base_models), cfg.model)
