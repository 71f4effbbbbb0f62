"""tokenize -> finetune -> evaluate for extractive QA (span start/end heads on an encoder)."""
from __future__ import annotations

import json
import time

import numpy as np
from omegaconf import DictConfig

from pipelines.core import encoder, tracking
from pipelines.core.io import atomic_path, write_json, write_jsonl
from pipelines.core.paths import TaskPaths, project_relative
from pipelines.core.runtime import seed_everything
from pipelines.core.training import count_params, dry_run_model, model_overrides, ordered_eval_trainer

from .data import SPLITS, read_split
from .features import prepare_features
from .metrics import score_predictions
from .postprocess import postprocess

HEAD = encoder.Head("AutoModelForQuestionAnswering", "QUESTION_ANS")
# columns that describe a feature but are not model inputs
META = ("example_id", "offset_mapping", "cls_index", "length")


tokenizer = encoder.tokenizer


def features(cfg: DictConfig, tok, rows: list[dict], with_labels: bool = True) -> dict:
    d = cfg.data
    return prepare_features(tok, rows, d.max_length, d.doc_stride, d.max_query_length, with_labels)


def tokenize(cfg: DictConfig, run=None) -> None:
    from datasets import Dataset, DatasetDict

    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        d = cfg.data
        print(f"[dry-run] tokenize: {tp.data / 'split'} with {cfg.model.key}, max_length={d.max_length}, "
              f"doc_stride={d.doc_stride}, truncation=only_second, dynamic padding")
        return
    tok = tokenizer(cfg)
    parts = {}
    for name in SPLITS:
        rows = read_split(tp, name)
        feats = features(cfg, tok, rows)
        parts[name] = Dataset.from_dict(feats)
        lens = np.array(feats["length"])
        no_ans = int(sum(s == c for s, c in zip(feats["start_positions"], feats["cls_index"])))
        print(f"[tokenize] {name}: {len(rows)} questions -> {len(lens)} features "
              f"({len(lens) - len(rows)} extra windows), tokens mean {lens.mean():.0f} max {lens.max()}, "
              f"{no_ans} features without the answer")
    with atomic_path(tp.data / "tokenized") as tmp:
        DatasetDict(parts).save_to_disk(str(tmp))


def predict_logits(model, tok, feats, batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start/end logits per feature; length-sorted batches, each padded to its own longest."""
    import torch

    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in feats.column_names]
    cols = {k: feats[k] for k in inputs}
    lengths = [len(x) for x in cols["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    starts: list = [None] * len(lengths)
    ends: list = [None] * len(lengths)
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch = tok.pad({k: [cols[k][j] for j in idx] for k in inputs}, return_tensors="pt")
            out = model(**batch)
            s, e = out.start_logits.float().numpy(), out.end_logits.float().numpy()
            for r, j in enumerate(idx):
                starts[j], ends[j] = s[r, :lengths[j]], e[r, :lengths[j]]
    return starts, ends


def answer(cfg: DictConfig, rows: list[dict], feats, starts, ends, version_2: bool) -> dict[str, dict]:
    ev = cfg.evaluate
    return postprocess(rows, {"example_id": feats["example_id"], "offset_mapping": feats["offset_mapping"],
                              "cls_index": feats["cls_index"]}, starts, ends, ev.n_best, ev.max_answer_length,
                       version_2, ev.null_score_diff_threshold)


def is_v2(tp: TaskPaths) -> bool:
    stats = tp.data / "clean_stats.json"
    return stats.exists() and json.loads(stats.read_text()).get("format") == "v2"


def _compute_metrics_fn(cfg: DictConfig, rows: list[dict], feats, version_2: bool):
    """EM/F1 of the validation set from the Trainer's (start, end) logits, padded with -100."""
    def compute(eval_pred) -> dict:
        start, end = eval_pred.predictions[:2] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        preds = answer(cfg, rows, feats, list(start), list(end), version_2)
        summary, _ = score_predictions(rows, {k: v["prediction"] for k, v in preds.items()}, cfg.evaluate)
        return {"exact_match": summary["exact_match"], "f1": summary["f1"]}

    return compute


@tracking.tracked("finetune")
def finetune(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        dry_run_model(cfg, HEAD.auto_class, HEAD.peft_task)
        split = tp.data / "split"
        src = project_relative(cfg.data.root) / cfg.data.file if cfg.data.source == "local" else cfg.data.hub_name
        print(f"[dry-run] data: {cfg.data.source} {src}; split files {'present' if split.exists() else 'not built yet'} "
              f"at {split}; max_length {cfg.data.max_length}, doc_stride {cfg.data.doc_stride}, dynamic padding")
        return

    def datasets(ds):
        val = ds["val"].sort("length")  # length-sorted: far less padding; metrics do not depend on order
        return {"train_dataset": ds["train"].remove_columns([c for c in META if c != "length"]),
                "eval_dataset": val.remove_columns(list(META)),
                "compute_metrics": _compute_metrics_fn(cfg, read_split(tp, "val"), val, is_v2(tp))}, \
            {"train_features": len(ds["train"]), "bf16": bool(cfg.train.bf16)}

    def adjust(model, summary: dict) -> dict:
        if cfg.peft.get("freeze_embeddings") and cfg.peft.method == "full":  # LoRA keeps every base weight fixed anyway
            return freeze_word_embeddings(model, summary)
        return summary

    encoder.finetune(cfg, run, HEAD, datasets, model_kwargs=model_overrides(cfg), adjust=adjust,
                     trainer_cls=ordered_eval_trainer(), label_names=["start_positions", "end_positions"])


def freeze_word_embeddings(model, summary: dict) -> dict:
    model.get_input_embeddings().weight.requires_grad_(False)
    trainable, total = count_params(model)
    return {**summary, "trainable_params": trainable, "trainable_pct": round(100.0 * trainable / total, 4),
            "frozen": "word embeddings"}


def load_finetuned(cfg: DictConfig):
    return encoder.load_finetuned(cfg, HEAD)


def run_extractive(cfg: DictConfig, model, tok, rows: list[dict], version_2: bool) -> dict[str, dict]:
    """Tokenise `rows`, predict, post-process: {id: prediction record}."""
    from datasets import Dataset

    feats = Dataset.from_dict(features(cfg, tok, rows, with_labels=False))
    starts, ends = predict_logits(model, tok, feats, cfg.evaluate.batch_size)
    return answer(cfg, rows, feats, starts, ends, version_2)


@tracking.tracked("evaluate")
def evaluate(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    seed_everything(cfg.runtime.seed)
    rows = read_split(tp, "test")
    model, tok = load_finetuned(cfg)
    t0 = time.time()
    preds = run_extractive(cfg, model, tok, rows, is_v2(tp))
    summary, per_q = score_predictions(rows, {k: v["prediction"] for k, v in preds.items()}, cfg.evaluate)
    for r in per_q:
        r["nbest"] = [{k: c[k] for k in ("text", "prob")} for c in preds[r["id"]]["nbest"][:3]]
    run.log({"test/exact_match": summary["exact_match"], "test/f1": summary["f1"]})
    write_jsonl(tp.metrics / "predictions.jsonl", per_q)
    write_json(tp.metrics / "eval.json", {"model": cfg.model.key, "method": cfg.peft.method, "test": summary})
    print(f"[evaluate] test: n={summary['n']} EM={summary['exact_match']:.2f} F1={summary['f1']:.2f} "
          f"({summary['primary']} normalisation; {time.time() - t0:.0f}s)")
