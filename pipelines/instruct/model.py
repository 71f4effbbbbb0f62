"""tokenize -> finetune -> evaluate for instruction tuning (the shared SFT logic is core.sft;
generation and prompts: core.causal_lm, core.prompts).

evaluate scores the fine-tuned model on the test split: completion-token loss/perplexity over
all test examples, and generation on a seeded sample (ROUGE-L, token-F1 against the reference
output, EOS rate). The baselines stage runs the same on the base model, same prompts.
"""
from __future__ import annotations

import time

import numpy as np
from omegaconf import DictConfig

from pipelines.core import causal_lm, prompts, sft, tracking
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.runtime import seed_everything

from .data import SPLITS, read_split

finetune = sft.finetune


def examples(rows: list[dict]) -> list[dict]:
    return [{"id": r["id"], "instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in rows]


def tokenize(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    sft.tokenize_stage(cfg, lambda name: examples(read_split(tp, name)), SPLITS)


def generation_sample(cfg: DictConfig, rows: list[dict]) -> list[dict]:
    """The seeded test sample that both the base and the fine-tuned model answer."""
    n = cfg.evaluate.generation.max_examples
    if not n or n >= len(rows):
        return rows
    idx = np.random.default_rng(cfg.runtime.seed).choice(len(rows), size=n, replace=False)
    return [rows[i] for i in sorted(idx)]


def score(cfg: DictConfig, model, tok, label: str) -> tuple[dict, list[dict]]:
    """Test loss/perplexity + generation metrics for one model; (summary, per-example rows)."""
    from pipelines.core.textmetrics import rouge_l, token_f1

    tp = TaskPaths(cfg)
    t0 = time.time()
    loss = causal_lm.completion_loss(model, tok, sft.load_tokenized_split(tp.data / "tokenized", "test"),
                               cfg.evaluate.generation.batch_size)
    rows = generation_sample(cfg, read_split(tp, "test"))
    fmt = cfg.prompt.format
    texts = [prompts.render(fmt, tok, r["instruction"], r["input"], system=cfg.prompt.system_prompt)[0] for r in rows]
    outs = causal_lm.generate(model, tok, texts, fmt, cfg.evaluate.generation)
    per = []
    for r, o in zip(rows, outs):
        per.append({"id": r["id"], "instruction": r["instruction"], "input": r["input"], "reference": r["output"],
                    "prediction": o["text"], "eos": o["eos"], "new_tokens": o["new_tokens"],
                    "rouge_l": rouge_l(o["text"], r["output"]), "token_f1": token_f1(o["text"], r["output"])})
    summary = {
        "n_generated": len(per),
        "rouge_l": float(np.mean([p["rouge_l"] for p in per])),
        "token_f1": float(np.mean([p["token_f1"] for p in per])),
        "eos_rate": float(np.mean([p["eos"] for p in per])),
        "mean_new_tokens": float(np.mean([p["new_tokens"] for p in per])),
        "loss": loss["loss"], "perplexity": loss["perplexity"], "loss_tokens": loss["tokens"],
    }
    print(f"[instruct:{label}] test ROUGE-L {summary['rouge_l']:.3f} token-F1 {summary['token_f1']:.3f} "
          f"EOS rate {summary['eos_rate']:.2f} loss {summary['loss']:.3f} ppl {summary['perplexity']:.2f} "
          f"({len(per)} generated, {time.time() - t0:.0f}s)")
    return summary, per


@tracking.tracked("evaluate")
def evaluate(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    seed_everything(cfg.runtime.seed)
    model, tok = sft.load_finetuned_lm(cfg, tp.models / "final")
    summary, per = score(cfg, model, tok, "evaluate")
    run.log({f"test/{k}": v for k, v in summary.items()})
    write_jsonl(tp.metrics / "predictions.jsonl", per)
    write_json(tp.metrics / "eval.json", {"model": cfg.model.key, "method": cfg.peft.method,
                                          "format": cfg.prompt.format, "test": summary})
