"""Causal language models: loading (tokenizer, base model, optionally 4-bit) and generation.

Generation is batched, left-padded and stops on the format's end-of-turn token(s); whether a
reply reached one is recorded (EOS rate). `completion_loss` scores fixed completions (the
learned tokens of pre-tokenized rows). Nothing here trains: rag's generator uses it too.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from .errors import PipelineError
from .models import load_kwargs, local_kwargs, resolve
from .prompts import PHI3_END, add_special_tokens, stop_token_ids


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



def load_causal_lm(model_cfg: Any, base_models: str | Path, where: str = "model") -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for a model config (source package|hub|path); `where` is
    the config key of that model block, for messages."""
    path = resolve(model_cfg, base_models, where)  # a config problem fails before the heavy imports
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch_dtype(model_cfg.dtype, f"{where}.dtype")
    kw = load_kwargs(model_cfg, where)
    tok = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kw)
    model.eval()
    if tok.pad_token_id is None:  # pads are always masked out, so any id will do
        tok.pad_token = tok.eos_token
    return model, tok


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

