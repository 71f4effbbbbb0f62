"""baselines stage: what fine-tuning has to beat, on the same test split.

* untrained: the same encoder before fine-tuning: pretrained body, span head freshly
  initialised (seeded), through the same features and post-processing as the fine-tuned model.
* generative: a small instruction-tuned causal LM (SmolLM2-135M-Instruct) prompted with the
  context and the question in its chat template, greedy decoding; the first line of its reply
  is the answer. Generation dominates the task's run time on a CPU, so it runs on a seeded
  sample of the test split (`max_examples`); the report scores the fine-tuned model on the
  same questions for a like-for-like comparison.

Outputs (metrics dir): baselines.json (EM/F1 per method, deterministic),
baseline_predictions.jsonl (per question and method) and baselines_timing.json.
"""
from __future__ import annotations

import re
import time

import numpy as np
from omegaconf import DictConfig

from pipelines.core import tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.runtime import seed_everything

from .data import read_split
from .metrics import score_predictions


def sample(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded sample of n rows in their original order (all rows when n is None)."""
    if n is None or n >= len(rows):
        return rows
    if n < 1:
        raise PipelineError(f"baselines: max_examples must be >= 1 or null, got {n}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:n])
    return [rows[i] for i in keep]


_PREFIX = re.compile(r"^\s*(respuesta|answer)\s*(\([^)]*\))?\s*:\s*", re.I)


def clean_generation(text: str) -> str:
    """The answer part of a reply: first non-empty line, no "Respuesta:" prefix, no quotes."""
    line = next((l for l in text.strip().splitlines() if l.strip()), "")
    line = _PREFIX.sub("", line).strip()
    return line.strip("\"'«»“”").strip()


def generate_answers(cfg: DictConfig, rows: list[dict]) -> list[str]:
    import torch

    from pipelines.core.causal_lm import load_causal_lm

    g = cfg.baselines.generative
    model, tok = load_causal_lm(g.model, cfg.paths.base_models, "baselines.generative.model")
    tok.padding_side = "left"  # generation appends on the right: every row must end at the same place
    prompts = []
    for r in rows:
        ctx = r["context"][: g.max_context_chars]
        messages = [{"role": "system", "content": g.system_prompt},
                    {"role": "user", "content": g.user_template.format(context=ctx, question=r["question"])}]
        prompts.append(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths: little padding
    out: list[str] = [""] * len(rows)
    with torch.inference_mode():
        for i in range(0, len(order), g.batch_size):
            idx = order[i:i + g.batch_size]
            batch = tok([prompts[j] for j in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**batch, max_new_tokens=g.max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            for r, j in enumerate(idx):
                out[j] = tok.decode(gen[r, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


@tracking.tracked("baselines")
def baselines(cfg: DictConfig, run=None) -> None:
    from .model import is_v2, run_extractive, tokenizer

    tp = TaskPaths(cfg)
    b = cfg.baselines
    test = read_split(tp, "test")
    seed = int(cfg.runtime.seed)
    results: dict = {}
    pred_rows: list[dict] = []
    timing: dict = {}

    def record(method: str, rows: list[dict], preds: dict[str, str], extra: dict, raw: dict | None = None) -> None:
        summary, per_q = score_predictions(rows, preds, cfg.evaluate)
        results[method] = {**extra, "test": summary, "sampled": len(rows) < len(test)}
        for r in per_q:
            pred_rows.append({"method": method, **r, **({"raw": raw[r["id"]]} if raw else {})})
        print(f"[baselines] {method}: n={summary['n']} EM={summary['exact_match']:.2f} F1={summary['f1']:.2f}")

    if b.untrained.enabled:
        seed_everything(seed)  # the fresh span head is initialised from the seed
        from transformers import AutoModelForQuestionAnswering

        from pipelines.core.models import load_kwargs, resolve

        t0 = time.time()
        rows = sample(test, b.untrained.max_examples, seed)
        model = AutoModelForQuestionAnswering.from_pretrained(resolve(cfg.model, cfg.paths.base_models),
                                                              **load_kwargs(cfg.model)).eval()
        preds = run_extractive(cfg, model, tokenizer(cfg), rows, is_v2(tp))
        record("untrained", rows, {k: v["prediction"] for k, v in preds.items()}, {"model": cfg.model.key})
        timing["untrained"] = {"seconds": round(time.time() - t0, 1), "n": len(rows)}

    if b.generative.enabled:
        seed_everything(seed)
        t0 = time.time()
        rows = sample(test, b.generative.max_examples, seed)
        raw = generate_answers(cfg, rows)
        preds = {r["id"]: clean_generation(t) for r, t in zip(rows, raw)}
        record("generative", rows, preds, {"model": b.generative.model.key},
               raw={r["id"]: t for r, t in zip(rows, raw)})
        dt = time.time() - t0
        timing["generative"] = {"seconds": round(dt, 1), "n": len(rows), "seconds_per_question": round(dt / len(rows), 2)}

    write_json(tp.metrics / "baselines.json", results)
    write_jsonl(tp.metrics / "baseline_predictions.jsonl", pred_rows)
    write_json(tp.metrics / "baselines_timing.json", timing)

    run.log({f"{m}/test/{k}": r["test"][k] for m, r in results.items() for k in ("exact_match", "f1")})
