"""tokenize -> finetune -> evaluate for Spanish question generation (SFT logic is core.sft).

Every mode generates for the same inputs (held-out SQuAD-es paragraphs + Wikipedia
biographies) with the same request (N questions, K of them true/false):
  zero_shot      bare request, no system prompt, no examples (base model)
  system_prompt  the task's system prompt + the training request (base model)
  few_shot       system prompt + k worked training examples as earlier turns (base model)
  fine_tuned     system prompt + the training request (fine-tuned model; the evaluate stage)
"""
from __future__ import annotations

import time

from omegaconf import DictConfig

from pipelines.core import causal_lm, prompts, sft, tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.runtime import seed_everything

from .data import SPLITS, read_split
from .quality import aggregate, score_output

finetune = sft.finetune
MODES = ("zero_shot", "system_prompt", "few_shot", "fine_tuned")


def sft_example(ex: dict) -> dict:
    """A chat example (system, user, assistant) as core.sft's (system, instruction, output)."""
    roles = {m["role"]: m["content"] for m in ex["messages"]}
    return {"id": ex["id"], "system": roles.get("system", ""), "instruction": roles["user"], "input": "",
            "output": roles["assistant"]}


def tokenize(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    sft.tokenize_stage(cfg, lambda name: [sft_example(e) for e in read_split(tp, name)], SPLITS)


def request(inp: dict, template: str) -> str:
    return template.format(text=inp["context"], n=inp["n"], k=inp["k"], n_short=inp["n"] - inp["k"])


def few_shot_examples(cfg: DictConfig, tp: TaskPaths) -> list[dict]:
    """The k shortest training examples (short prompts matter on a CPU), in a fixed order."""
    k = cfg.evaluate.few_shot_k
    train = sorted(read_split(tp, "train"), key=lambda e: (len(e["context"]), e["id"]))
    if k > len(train):
        raise PipelineError(f"evaluate.few_shot_k: {k} > {len(train)} training examples")
    return train[:k]


def messages_for(cfg: DictConfig, mode: str, inp: dict, shots: list[dict]) -> list[dict]:
    p = cfg.prompt
    if mode == "zero_shot":
        return [{"role": "user", "content": request(inp, p.zero_shot_template)}]
    system = [{"role": "system", "content": p.system_prompt}] if p.system_prompt else []
    user = {"role": "user", "content": request(inp, p.user_template)}
    if mode in ("system_prompt", "fine_tuned"):
        return [*system, user]
    if mode == "few_shot":
        turns = [m for ex in shots for m in ex["messages"] if m["role"] != "system"]
        return [*system, *turns, user]
    raise PipelineError(f"evaluate.modes: unknown mode {mode!r} (expected one of {', '.join(MODES)})")


def run_mode(cfg: DictConfig, model, tok, mode: str, inputs: list[dict], shots: list[dict]) -> tuple[dict, list[dict]]:
    """Generate for every input in one mode and score the replies: (summary, per-input rows)."""
    t0 = time.time()
    texts = [prompts.render_messages(cfg.prompt.format, tok, messages_for(cfg, mode, i, shots)) for i in inputs]
    outs = causal_lm.generate(model, tok, texts, cfg.prompt.format, cfg.evaluate.generation)
    rows = []
    for inp, out in zip(inputs, outs):
        m = score_output(out["text"], inp["context"], inp["n"], inp["k"], out["eos"], inp.get("reference_questions"),
                         dup_threshold=cfg.evaluate.dup_threshold)
        rows.append({"mode": mode, "id": inp["id"], "title": inp["title"], "source": inp["source"],
                     "n": inp["n"], "k": inp["k"], "output": out["text"], "eos": out["eos"],
                     "new_tokens": out["new_tokens"], **m})
    summary = {"all": aggregate(rows), **{src: aggregate([r for r in rows if r["source"] == src])
                                          for src in sorted({r["source"] for r in rows})}}
    summary["seconds"] = round(time.time() - t0, 1)
    a = summary["all"]
    print(f"[qgen_es:{mode}] count ok {a['count_ok']:.2f}, T/F ok {a['tf_ok']:.2f} (share err {a['tf_share_error']:.2f}), "
          f"terminated {a['terminated']:.2f}, format {a['format_valid']:.2f}, grounding {a['grounding']:.2f}, "
          f"dup {a['near_duplicate_rate']:.2f}, leakage {a['leakage']:.2f} ({len(rows)} inputs, {summary['seconds']}s)")
    return summary, rows


def read_inputs(tp: TaskPaths) -> list[dict]:
    return read_split(tp, "inputs")


@tracking.tracked("evaluate")
def evaluate(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    seed_everything(cfg.runtime.seed)
    model, tok = sft.load_finetuned_lm(cfg, tp.models / "final")
    test_loss = causal_lm.completion_loss(model, tok, sft.load_tokenized_split(tp.data / "tokenized", "test"),
                                    cfg.evaluate.generation.batch_size)
    summary, rows = run_mode(cfg, model, tok, "fine_tuned", read_inputs(tp), [])
    run.log({f"fine_tuned/{k}": v for k, v in summary["all"].items()})
    write_jsonl(tp.metrics / "predictions.jsonl", rows)
    write_json(tp.metrics / "eval.json", {"model": cfg.model.key, "method": cfg.peft.method, "format": cfg.prompt.format,
                                          "test": {**summary["all"], "loss": test_loss["loss"],
                                                   "perplexity": test_loss["perplexity"]},
                                          "by_source": {k: v for k, v in summary.items() if k not in ("all", "seconds")}})

