"""Causal-LM supervised fine-tuning shared by the instruct and qgen_es tasks.

`encode` tokenises a rendered prompt and completion (see prompts.py) *separately* (the prompt
exactly as it will be fed at generation time) and builds labels: -100 on the prompt when
`train_on_inputs` is off (prompt masking), the completion always learned, including its
end-of-sequence token. Examples longer than `sft.max_length` are dropped and counted rather
than cut: a cut completion would lose its EOS and teach the model never to stop.

Training is TRL's SFTTrainer on these pre-tokenized rows (its `labels` column is used as is;
TRL pads labels with -100), through the same `training.fit` as the encoder tasks.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from . import tracking
from .causal_lm import load_base_lm, load_tokenizer, torch_dtype
from .errors import PipelineError
from .models import read_model_type
from .prompts import add_special_tokens, check_format, render

# existing tokens that can serve as a padding token distinct from EOS, in order of preference
PAD_CANDIDATES = ("<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<unk>")


# --------------------------------------------------------------------------- tokenizer
def ensure_pad_token(tok: Any, model: Any = None, distinct: bool = True) -> dict:
    """Give the tokenizer a pad token; distinct from EOS when `distinct` (reuse an existing one)."""
    before = tok.pad_token
    if tok.pad_token is not None and (not distinct or tok.pad_token_id != tok.eos_token_id):
        return {"pad_token": tok.pad_token, "changed": False}
    if not distinct:
        tok.pad_token = tok.eos_token
        return {"pad_token": tok.pad_token, "changed": True, "was": before}
    vocab = tok.get_vocab()
    for cand in PAD_CANDIDATES:
        if cand in vocab and cand not in (tok.eos_token, tok.bos_token):
            tok.pad_token = cand
            return {"pad_token": cand, "changed": True, "was": before, "added": False}
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    if model is not None:
        model.resize_token_embeddings(len(tok))
    return {"pad_token": "<|pad|>", "changed": True, "was": before, "added": True}


def encode(tok: Any, fmt: str, prompt: str, completion: str, train_on_inputs: bool) -> dict:
    p = tok(prompt, add_special_tokens=add_special_tokens(fmt))["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"]
    labels = (list(p) if train_on_inputs else [-100] * len(p)) + list(c)
    return {"input_ids": list(p) + list(c), "labels": labels, "prompt_len": len(p)}


def encode_examples(tok: Any, examples: Sequence[dict], prompt_cfg: DictConfig, max_length: int) -> tuple[list[dict], dict]:
    """examples: dicts with instruction/input/output[/system]. Returns (rows, counts)."""
    rows, too_long, empty = [], 0, 0
    for ex in examples:
        if not str(ex.get("output", "")).strip():
            empty += 1  # nothing to learn: every label would be -100
            continue
        prompt, completion = render(prompt_cfg.format, tok, ex["instruction"], ex.get("input", ""), ex["output"],
                                    ex.get("system") or prompt_cfg.system_prompt)
        r = encode(tok, prompt_cfg.format, prompt, completion, prompt_cfg.train_on_inputs)
        if len(r["input_ids"]) > max_length:
            too_long += 1
            continue
        rows.append({"id": ex["id"], **r, "length": len(r["input_ids"])})
    return rows, {"kept": len(rows), "dropped_too_long": too_long, "dropped_empty_output": empty}



def apply_adapter(cfg: DictConfig, model, src: str):
    from .training import apply_peft

    model_type = read_model_type(src, cfg.model)
    model, summary = apply_peft(model, cfg.peft, model_type, "CAUSAL_LM")
    if cfg.peft.method == "qlora":
        from . import qlora

        summary["linear4bit_layers"] = qlora.disable_cpu_bf16_fastpath(model)
    return model, summary



def load_finetuned_lm(cfg: DictConfig, final: Path):
    """(model in eval mode, tokenizer) from a finetune output folder (adapter or full weights)."""
    from .finetuned import load_finetuned

    return load_finetuned(cfg, "AutoModelForCausalLM", final, load_base=lambda: load_base_lm(cfg, for_training=False)[0],
                          full_kwargs={"dtype": torch_dtype(cfg.model.dtype)})


# --------------------------------------------------------------------------- training
def accepts_logits_to_keep(model) -> bool:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a PEFT wrapper
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def completion_logits_only(inputs: dict) -> dict:
    """The batch with LM-head logits kept only from the first learned position on.

    With prompt masking, most positions of a qgen_es/instruct row are prompt: their logits
    (576 x 49k per token for SmolLM2) and the fp32 cross-entropy over them were ~15% of a
    training step and are never used. Labels are cut to the same positions, so the loss (and
    the token count HF divides by) is the same: the logit at position p-1 predicts label p, and
    every label before the batch's first learned position p is -100.
    """
    labels = inputs.get("labels")
    if labels is None or "logits_to_keep" in inputs or labels.dim() != 2:
        return inputs
    learned = (labels != -100).any(dim=0).nonzero()
    if len(learned) == 0:
        return inputs
    keep = labels.shape[1] - int(learned[0]) + 1
    if keep >= labels.shape[1]:
        return inputs
    return {**inputs, "labels": labels[:, -keep:], "logits_to_keep": keep}


def sft_trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    class PerplexitySFTTrainer(SFTTrainer):
        """Logs eval perplexity (exp of the completion-token loss) next to eval loss.

        The loss is the model's own cross-entropy on our labels (Trainer.compute_loss), not TRL's
        chunked log-prob LM head: that kernel's torch fallback (no Triton on CPU) made backward
        steps after the first evaluation take minutes instead of ~2 s here. Logits are computed only
        where labels are learned (`completion_logits_only`)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not hasattr(self, "_keeps_logits"):
                self._keeps_logits = accepts_logits_to_keep(self.accelerator.unwrap_model(model))
            if self._keeps_logits:
                inputs = completion_logits_only(inputs)
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def evaluate(self, *args, **kwargs):
            metrics = super().evaluate(*args, **kwargs)
            prefix = kwargs.get("metric_key_prefix", "eval")
            if f"{prefix}_loss" in metrics:
                ppl = math.exp(min(metrics[f"{prefix}_loss"], 50.0))
                metrics[f"{prefix}_perplexity"] = ppl
                self.log({f"{prefix}_perplexity": ppl})
            return metrics

    return PerplexitySFTTrainer


def dry_run(cfg: DictConfig) -> dict:
    from .training import dry_run_model

    check_format(cfg.prompt.format)
    info = dry_run_model(cfg, "AutoModelForCausalLM", "CAUSAL_LM")
    print(f"[dry-run] prompt format {cfg.prompt.format}, train_on_inputs={cfg.prompt.train_on_inputs}, "
          f"max_length {cfg.sft.max_length}, packing={cfg.sft.packing}, "
          f"gradient_checkpointing={cfg.sft.gradient_checkpointing}")
    return info




@tracking.tracked("finetune")
def finetune(cfg: DictConfig, run=None) -> None:
    """Train on `<data>/tokenized` (train/val) with TRL; writes models/<task>/final etc."""
    from .paths import TaskPaths

    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        dry_run(cfg)
        return

    from datasets import load_from_disk
    from trl import SFTConfig

    from .finetuned import save_finetuned
    from .runtime import seed_everything
    from .training import fit

    check_format(cfg.prompt.format)
    seed_everything(cfg.runtime.seed)
    path = tp.data / "tokenized"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the tokenize stage first)")
    ds = load_from_disk(str(path), keep_in_memory=True)
    tok = load_tokenizer(cfg, str(path / "tokenizer"))  # the tokenizer (and pad token) used to encode
    model, src = load_base_lm(cfg, for_training=True)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model, summary = apply_adapter(cfg, model, src)
    print(f"[finetune] {cfg.model.key} {summary['method']}: trainable {summary['trainable_params']:,} of "
          f"{summary['total_params']:,} ({summary['trainable_pct']}%), format {cfg.prompt.format}, "
          f"train_on_inputs={cfg.prompt.train_on_inputs}")

    cols = ["input_ids", "labels"]
    train = ds["train"].select_columns(cols)
    val = ds["val"].select_columns(cols)
    trainer, secs = fit(cfg, run, lambda args, callbacks: sft_trainer_class()(
        model=model, args=args, train_dataset=train, eval_dataset=val, processing_class=tok, callbacks=callbacks),
        args_cls=SFTConfig, max_length=None, packing=cfg.sft.packing,
        activation_checkpointing=cfg.sft.gradient_checkpointing, eos_token=None, prediction_loss_only=True)
    args, best = trainer.args, trainer.state.best_metric
    if args.load_best_model_at_end and args.metric_for_best_model in ("loss", "eval_loss") and best is not None:
        # the loaded best checkpoint was scored on val during training: no second pass over val
        final_eval = {"eval_loss": best, "eval_perplexity": math.exp(min(best, 50.0))}
    else:
        final_eval = trainer.evaluate()  # the final weights' validation loss
    run.summary.update({"trainable_params": summary["trainable_params"], "val_loss": final_eval.get("eval_loss")})
    pad = json.loads((path / "tokenizer" / "tunedag_pad.json").read_text())
    save_finetuned(cfg, trainer, tok, src, summary, secs, final_meta={"pad": pad, "prompt_format": cfg.prompt.format},
                   train_examples=len(train), val_loss=final_eval.get("eval_loss"),
                   val_perplexity=final_eval.get("eval_perplexity"), prompt_format=cfg.prompt.format,
                   train_on_inputs=bool(cfg.prompt.train_on_inputs), pad=pad)


def tokenize_stage(cfg: DictConfig, read_examples, splits: Sequence[str] = ("train", "val", "test")) -> None:
    """The tokenize stage of an SFT task: `read_examples(split)` gives dicts with
    instruction/input/output[/system]; writes <data>/tokenized and tokenize_stats.json."""
    from .io import write_json
    from .paths import TaskPaths

    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        print(f"[dry-run] tokenize: {tp.data / 'split'} with {cfg.model.key}, format {cfg.prompt.format}, "
              f"train_on_inputs={cfg.prompt.train_on_inputs}, max_length {cfg.sft.max_length}")
        return
    check_format(cfg.prompt.format)
    tok = load_tokenizer(cfg)
    pad = ensure_pad_token(tok, distinct=cfg.sft.distinct_pad_token)
    rows, counts = {}, {}
    for name in splits:
        rows[name], counts[name] = encode_examples(tok, read_examples(name), cfg.prompt, cfg.sft.max_length)
    stats = save_tokenized(tp.data / "tokenized", tok, rows, pad)
    for name in splits:
        stats[name].update(counts[name])
    write_json(tp.data / "tokenize_stats.json", {"pad": pad, "format": cfg.prompt.format, **stats})
    print(f"[{cfg.task.name}:tokenize] pad {pad['pad_token']} (was {pad.get('was', pad['pad_token'])}); " + "; ".join(
        f"{k}: {v['examples']} ex, {v['mean_tokens']} tok (max {v['max_tokens']}), learned "
        f"{v['learned_token_share']:.0%}, dropped {v['dropped_too_long']} > {cfg.sft.max_length}"
        for k, v in stats.items() if k in splits))



def save_tokenized(out_dir: Path, tok, splits: dict[str, list[dict]], pad_info: dict) -> dict:
    """Write train/val/test rows as a DatasetDict plus the tokenizer that encoded them; returns stats.

    Refuses rows whose labels are all -100: such an example trains nothing, silently."""
    from datasets import Dataset, DatasetDict

    from .io import atomic_path

    stats = {}
    for name, rows in splits.items():
        dead = [r["id"] for r in rows if all(x == -100 for x in r["labels"])]
        if dead:
            raise PipelineError(f"tokenize: {len(dead)} {name} example(s) have no learned token (e.g. {dead[0]})")
        if not rows:
            raise PipelineError(f"tokenize: split {name!r} has no example within sft.max_length")
        n_tok = sum(len(r["input_ids"]) for r in rows)
        n_lab = sum(sum(x != -100 for x in r["labels"]) for r in rows)
        stats[name] = {"examples": len(rows), "mean_tokens": round(n_tok / len(rows), 1),
                       "max_tokens": max(len(r["input_ids"]) for r in rows),
                       "learned_token_share": round(n_lab / n_tok, 4)}
    with atomic_path(out_dir) as tmp:
        DatasetDict({k: Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(tmp))
        tok.save_pretrained(tmp / "tokenizer")
        (tmp / "tokenizer" / "tunedag_pad.json").write_text(json.dumps(pad_info, sort_keys=True))
    return stats


def load_tokenized_split(path: Path, name: str) -> list[dict]:
    from datasets import load_from_disk

    if not path.exists():
        raise PipelineError(f"{path}: not found (run the tokenize stage first)")
    return load_from_disk(str(path), keep_in_memory=True)[name].to_list()
