"""Causal-LM supervised fine-tuning shared by the instruct and qgen_es tasks.

An example is (system, instruction, input, output). `render` turns it into a prompt and a
completion in one of three formats; `encode` tokenises them *separately* (the prompt exactly as
it will be fed at generation time) and builds labels: -100 on the prompt when
`train_on_inputs` is off (prompt masking), the completion always learned, including its
end-of-sequence token. Examples longer than `sft.max_length` are dropped and counted rather
than cut: a cut completion would lose its EOS and teach the model never to stop.

Training is TRL's SFTTrainer on these pre-tokenized rows (its `labels` column is used as is;
TRL pads labels with -100). Generation is batched, left-padded and stops on the format's
end-of-turn token(s); whether a reply reached one is recorded (EOS rate).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from .errors import PipelineError
from .models import load_kwargs, local_kwargs, read_model_type, resolve

FORMATS = ("alpaca", "chat", "phi3")

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")
ALPACA_PREAMBLE_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                         "further context. Write a response that appropriately completes the request.")
PHI3_END = "<|end|>"

# existing tokens that can serve as a padding token distinct from EOS, in order of preference
PAD_CANDIDATES = ("<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<unk>")


# --------------------------------------------------------------------------- formats
def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise PipelineError(f"prompt.format: {fmt!r} is not one of {', '.join(FORMATS)}")


def render(fmt: str, tok: Any, instruction: str, input: str = "", output: str | None = None,
           system: str = "") -> tuple[str, str | None]:
    """(prompt, completion) as strings; completion is None when no output is given."""
    check_format(fmt)
    if fmt == "alpaca":
        head = ALPACA_PREAMBLE_INPUT if input else ALPACA_PREAMBLE
        instr = f"{system}\n\n{instruction}" if system else instruction
        prompt = f"{head}\n\n### Instruction:\n{instr}\n\n"
        if input:
            prompt += f"### Input:\n{input}\n\n"
        prompt += "### Response:\n"
        return prompt, None if output is None else output + tok.eos_token
    user = f"{instruction}\n\n{input}" if input else instruction
    if fmt == "phi3":
        prompt = (f"<|system|>\n{system}{PHI3_END}\n" if system else "") + f"<|user|>\n{user}{PHI3_END}\n<|assistant|>\n"
        if output is None:
            return prompt, None
        # Phi-3 stops at <|end|>; a model without that token also needs its own EOS to stop
        end = PHI3_END if tok.eos_token == PHI3_END else PHI3_END + tok.eos_token
        return prompt, output + end
    # chat: the tokenizer's own template; the completion is whatever the template adds after the prompt
    if not getattr(tok, "chat_template", None):
        raise PipelineError("prompt.format: chat needs a tokenizer with a chat template; use alpaca or phi3")
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    if output is None:
        return prompt, None
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": output}], tokenize=False)
    if not full.startswith(prompt):
        raise PipelineError("prompt.format: chat template renders the prompt differently with and without the "
                            "reply; use alpaca or phi3 with this tokenizer")
    completion = full[len(prompt):]
    if tok.eos_token not in completion and not _end_marker_ids(tok, completion, output):
        completion += tok.eos_token
    return prompt, completion


def render_messages(fmt: str, tok: Any, messages: Sequence[dict]) -> str:
    """A generation prompt for a whole conversation (system?, then user/assistant turns, ending
    with a user turn), e.g. a few-shot prompt whose worked examples are earlier turns."""
    check_format(fmt)
    if not messages or messages[-1]["role"] != "user":
        raise PipelineError("prompt: a conversation must end with a user turn")
    if fmt == "chat":
        if not getattr(tok, "chat_template", None):
            raise PipelineError("prompt.format: chat needs a tokenizer with a chat template; use alpaca or phi3")
        return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if fmt == "phi3":
        out = f"<|system|>\n{system}{PHI3_END}\n" if system else ""
        for m in turns:
            out += f"<|{m['role']}|>\n{m['content']}{PHI3_END}\n"
        return out + "<|assistant|>\n"
    out = f"{ALPACA_PREAMBLE}\n\n" + (f"{system}\n\n" if system else "")
    for m in turns:
        out += (f"### Instruction:\n{m['content']}\n\n### Response:\n" if m["role"] == "user"
                else f"{m['content']}\n\n")
    return out


def _end_marker_ids(tok: Any, completion: str, output: str) -> list[int]:
    """Special tokens the template puts after the reply (<|im_end|>, <end_of_turn>, ...)."""
    tail = completion[len(output):] if completion.startswith(output) else ""
    ids = tok(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []
    special = set(tok.all_special_ids)
    return [i for i in ids if i in special]


def add_special_tokens(fmt: str) -> bool:
    # the chat template writes its own BOS/special tokens; plain-text formats let the tokenizer add BOS
    return fmt != "chat"


def stop_token_ids(tok: Any, fmt: str, model: Any = None) -> list[int]:
    ids = {tok.eos_token_id}
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.eos_token_id is not None:
        ids.update(gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id])
    if fmt == "chat":
        _, comp = render("chat", tok, "x", output="y")
        ids.update(_end_marker_ids(tok, comp, "y"))
    elif fmt == "phi3" and PHI3_END in tok.get_vocab():
        ids.add(tok.convert_tokens_to_ids(PHI3_END))
    ids.discard(None)
    if tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id:
        ids.discard(tok.pad_token_id)
    return sorted(ids)


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


# --------------------------------------------------------------------------- models
def load_tokenizer(cfg: DictConfig, path: str | None = None):
    # `path`: a folder this pipeline wrote (tokenized data, fine-tuned model): no hub revision
    if path and not Path(path).is_dir():  # the tokenizer saved with the tokenized data
        raise PipelineError(f"{path}: not found (run the tokenize stage first)")
    src = path or resolve(cfg.model, cfg.paths.base_models)  # config problems before the heavy import
    kw = local_kwargs(cfg.model) if path else load_kwargs(cfg.model)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(src, **kw)


def torch_dtype(name: str, field: str = "model.dtype"):
    import torch

    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise PipelineError(f"{field}: {name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return dtype


def load_base_lm(cfg: DictConfig, for_training: bool):
    """The base causal LM: 4-bit (QLoRA) when peft.method=qlora, else in model.dtype."""
    from transformers import AutoModelForCausalLM

    src = resolve(cfg.model, cfg.paths.base_models)
    if cfg.peft.method == "qlora":
        from . import qlora

        q = cfg.model.quantization
        if not q:
            raise PipelineError("model.quantization: required for peft.method=qlora (use peft=qlora)")
        model = qlora.load_quantized_causal_lm(src, dict(q), torch_dtype(cfg.model.dtype),
                                               gradient_checkpointing=for_training and cfg.sft.gradient_checkpointing,
                                               **load_kwargs(cfg.model))
    else:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype(cfg.model.dtype), **load_kwargs(cfg.model))
    return model, src


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
    meta_file = final / "tunedag.json"
    if not meta_file.exists():
        raise PipelineError(f"{final}: no fine-tuned model (run the finetune stage first)")
    meta = json.loads(meta_file.read_text())
    tok = load_tokenizer(cfg, str(final))
    if meta["method"] == "full":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(final, dtype=torch_dtype(cfg.model.dtype), **local_kwargs(cfg.model))
    else:
        from peft import PeftModel

        base, _ = load_base_lm(cfg, for_training=False)
        if len(tok) != base.get_input_embeddings().weight.shape[0] and meta.get("pad", {}).get("added"):
            base.resize_token_embeddings(len(tok))
        model = PeftModel.from_pretrained(base, final)
        if meta["method"] == "qlora":
            from . import qlora

            qlora.disable_cpu_bf16_fastpath(model)
        else:
            model = model.merge_and_unload()  # plain weights: faster generation
    return model.eval(), tok


# --------------------------------------------------------------------------- generation
def generation_model(model, dtype: str | None):
    """`model` in `dtype` for decoding: a cast copy, so the caller's model (used for losses) is untouched."""
    import copy

    if not dtype:
        return model
    want = torch_dtype(dtype, "generation.dtype")
    quantized = getattr(getattr(model, "config", None), "quantization_config", None) is not None
    if quantized or next(model.parameters()).dtype == want:
        return model
    return copy.deepcopy(model).to(want)


def generate(model, tok, prompts: Sequence[str], fmt: str, gen: DictConfig) -> list[dict]:
    """Greedy (or sampled) replies for `prompts`: [{text, eos, new_tokens}], in input order."""
    import torch

    stops = stop_token_ids(tok, fmt, model)
    model = generation_model(model, gen.get("dtype"))
    enc = [tok(p, add_special_tokens=add_special_tokens(fmt))["input_ids"] for p in prompts]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))  # similar lengths together
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[dict | None] = [None] * len(enc)
    kw: dict[str, Any] = dict(max_new_tokens=gen.max_new_tokens, do_sample=gen.do_sample,
                              repetition_penalty=gen.repetition_penalty, eos_token_id=stops, pad_token_id=pad)
    if gen.get("no_repeat_ngram_size"):
        kw["no_repeat_ngram_size"] = gen.no_repeat_ngram_size
    if gen.do_sample:
        kw.update(temperature=gen.temperature, top_p=gen.top_p)
    else:  # silence "generation flags are not valid" warnings from the model's sampling defaults
        kw.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        for s in range(0, len(order), gen.batch_size):
            idx = order[s:s + gen.batch_size]
            L = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), L), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), L), dtype=torch.long)
            for r, i in enumerate(idx):  # left padding: every prompt ends at the same position
                ids[r, L - len(enc[i]):] = torch.tensor(enc[i])
                mask[r, L - len(enc[i]):] = 1
            seqs = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), **kw)
            for r, i in enumerate(idx):
                new = seqs[r, L:].tolist()
                cut = next((j for j, t in enumerate(new) if t in stops), None)
                body = new if cut is None else new[:cut]
                text = tok.decode(body, skip_special_tokens=True)
                if fmt == "phi3":
                    text = text.split(PHI3_END)[0]
                out[i] = {"text": text.strip(), "eos": cut is not None, "new_tokens": len(body)}
    return out  # type: ignore[return-value]


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


def finetune(cfg: DictConfig) -> None:
    """Train on `<data>/tokenized` (train/val) with TRL; writes models/<task>/final etc."""
    from .paths import TaskPaths

    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        dry_run(cfg)
        return

    from datasets import load_from_disk
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig

    from . import tracking
    from .runtime import seed_everything
    from .training import resume_checkpoint, save_finetuned, train_resumable, training_arguments

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

    run = tracking.start(cfg, "finetune")
    ckpt = tp.models / "checkpoints"
    resume = resume_checkpoint(cfg, ckpt, tp.data / "tokenized")  # after a kill: go on from there
    args = training_arguments(cfg, ckpt, report_to=["wandb"] if cfg.tracking.mode != "disabled" else [],
                              args_cls=SFTConfig, max_length=None, packing=cfg.sft.packing,
                              activation_checkpointing=cfg.sft.gradient_checkpointing,
                              eos_token=None, prediction_loss_only=True)
    cols = ["input_ids", "labels"]
    train = ds["train"].select_columns(cols)
    val = ds["val"].select_columns(cols)
    callbacks = ([EarlyStoppingCallback(cfg.train.early_stopping_patience)]
                 if cfg.train.early_stopping_patience > 0 else [])
    trainer = sft_trainer_class()(model=model, args=args, train_dataset=train, eval_dataset=val,
                                  processing_class=tok, callbacks=callbacks)
    t0 = time.time()
    train_resumable(trainer, resume)  # resumed: the same loss curve as uninterrupted
    secs = time.time() - t0
    best = trainer.state.best_metric
    if args.load_best_model_at_end and args.metric_for_best_model in ("loss", "eval_loss") and best is not None:
        # the loaded best checkpoint was scored on val during training: no second pass over val
        final_eval = {"eval_loss": best, "eval_perplexity": math.exp(min(best, 50.0))}
    else:
        final_eval = trainer.evaluate()  # the final weights' validation loss
    run.summary.update({"trainable_params": summary["trainable_params"], "val_loss": final_eval.get("eval_loss")})
    run.finish()
    pad = json.loads((path / "tokenizer" / "tunedag_pad.json").read_text())
    save_finetuned(cfg, trainer, tok, src, summary, secs, ckpt, final_meta={"pad": pad, "prompt_format": cfg.prompt.format},
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


def completion_loss(model, tok, rows: Sequence[dict], batch_size: int = 8) -> dict:
    """Mean NLL per learned token (labels != -100) over pre-tokenized rows, and its perplexity."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    total, count = 0.0, 0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[s:s + batch_size]]
            L = max(len(r["input_ids"]) for r in batch)
            ids = torch.full((len(batch), L), pad, dtype=torch.long)
            labels = torch.full((len(batch), L), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), L), dtype=torch.long)
            for j, r in enumerate(batch):
                n = len(r["input_ids"])
                ids[j, :n], labels[j, :n], mask[j, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            tgt = labels[:, 1:].to(model.device)
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                    ignore_index=-100, reduction="sum")
            total += float(nll)
            count += int((tgt != -100).sum())
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": count}


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
