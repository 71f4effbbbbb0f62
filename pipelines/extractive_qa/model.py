"""tokenize -> finetune -> evaluate for extractive QA (span start/end heads on an encoder)."""
from __future__ import annotations

import json
import time

import numpy as np
from omegaconf import DictConfig

from pipelines.core import tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, write_json, write_jsonl
from pipelines.core.models import load_kwargs, local_kwargs, read_model_type, resolve
from pipelines.core.paths import TaskPaths, project_relative
from pipelines.core.runtime import seed_everything
from pipelines.core.training import (
    apply_peft,
    count_params,
    dry_run_model,
    model_overrides,
    ordered_eval_trainer,
    resume_checkpoint,
    save_finetuned,
    train_resumable,
    training_arguments,
)

from .data import SPLITS, read_split
from .features import prepare_features
from .metrics import score_predictions
from .postprocess import postprocess

FINAL = "final"
# columns that describe a feature but are not model inputs
META = ("example_id", "offset_mapping", "cls_index", "length")


def tokenizer(cfg: DictConfig, model_cfg: DictConfig | None = None):
    from transformers import AutoTokenizer

    m = model_cfg or cfg.model
    return AutoTokenizer.from_pretrained(resolve(m, cfg.paths.base_models), **load_kwargs(m))


def features(cfg: DictConfig, tok, rows: list[dict], with_labels: bool = True) -> dict:
    d = cfg.data
    return prepare_features(tok, rows, d.max_length, d.doc_stride, d.max_query_length, with_labels)


def tokenize(cfg: DictConfig) -> None:
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


def load_tokenized(tp: TaskPaths):
    from datasets import load_from_disk

    path = tp.data / "tokenized"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the tokenize stage first)")
    return load_from_disk(str(path), keep_in_memory=True)  # no cache files inside a DVC output


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


def finetune(cfg: DictConfig) -> None:
    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        dry_run_model(cfg, "AutoModelForQuestionAnswering", "QUESTION_ANS")
        split = tp.data / "split"
        src = project_relative(cfg.data.root) / cfg.data.file if cfg.data.source == "local" else cfg.data.hub_name
        print(f"[dry-run] data: {cfg.data.source} {src}; split files {'present' if split.exists() else 'not built yet'} "
              f"at {split}; max_length {cfg.data.max_length}, doc_stride {cfg.data.doc_stride}, dynamic padding")
        return

    seed_everything(cfg.runtime.seed)
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback

    src = resolve(cfg.model, cfg.paths.base_models)  # config problems first, before any data work
    ds = load_tokenized(tp)
    val_rows = read_split(tp, "val")
    tok = tokenizer(cfg)
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(src, **load_kwargs(cfg.model), **model_overrides(cfg))
    model_type = read_model_type(src, cfg.model)
    model, summary = apply_peft(model, cfg.peft, model_type, "QUESTION_ANS")
    if cfg.peft.get("freeze_embeddings") and cfg.peft.method == "full":  # LoRA keeps every base weight fixed anyway
        summary = freeze_word_embeddings(model, summary)
    print(f"[finetune] {cfg.model.key} ({model_type}) {summary['method']}: trainable {summary['trainable_params']:,} "
          f"of {summary['total_params']:,} ({summary['trainable_pct']}%)")

    run = tracking.start(cfg, "finetune")
    ckpt_dir = tp.models / "checkpoints"
    resume = resume_checkpoint(cfg, ckpt_dir, tp.data / "tokenized")  # after a kill: go on from there
    args = training_arguments(cfg, ckpt_dir, report_to=["wandb"] if cfg.tracking.mode != "disabled" else [],
                              label_names=["start_positions", "end_positions"])
    val = ds["val"].sort("length")  # length-sorted: far less padding; metrics do not depend on order
    callbacks = [EarlyStoppingCallback(cfg.train.early_stopping_patience)] if cfg.train.early_stopping_patience > 0 else []
    trainer = ordered_eval_trainer()(
        model=model, args=args,
        train_dataset=ds["train"].remove_columns([c for c in META if c != "length"]),
        eval_dataset=val.remove_columns(list(META)),
        data_collator=DataCollatorWithPadding(tok), processing_class=tok,
        compute_metrics=_compute_metrics_fn(cfg, val_rows, val, is_v2(tp)), callbacks=callbacks,
    )
    t0 = time.time()
    train_resumable(trainer, resume)  # resumed: the same loss curve as uninterrupted
    train_seconds = time.time() - t0
    run.summary.update({"trainable_params": summary["trainable_params"], "total_params": summary["total_params"]})
    run.finish()

    save_finetuned(cfg, trainer, tok, src, summary, train_seconds, ckpt_dir,
                   train_features=len(ds["train"]), bf16=bool(cfg.train.bf16))

def freeze_word_embeddings(model, summary: dict) -> dict:
    model.get_input_embeddings().weight.requires_grad_(False)
    trainable, total = count_params(model)
    return {**summary, "trainable_params": trainable, "trainable_pct": round(100.0 * trainable / total, 4),
            "frozen": "word embeddings"}


def load_finetuned(cfg: DictConfig):
    final = TaskPaths(cfg).models / FINAL
    meta_file = final / "tunedag.json"
    if not meta_file.exists():
        raise PipelineError(f"{final}: no fine-tuned model (run the finetune stage first)")
    meta = json.loads(meta_file.read_text())
    from transformers import AutoModelForQuestionAnswering as cls, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(final, **local_kwargs(cfg.model))
    if meta["method"] == "full":
        model = cls.from_pretrained(final, **local_kwargs(cfg.model))
    else:
        from peft import PeftModel

        base = cls.from_pretrained(resolve(cfg.model, cfg.paths.base_models), **load_kwargs(cfg.model))
        model = PeftModel.from_pretrained(base, final).merge_and_unload()
    return model.eval(), tok


def run_extractive(cfg: DictConfig, model, tok, rows: list[dict], version_2: bool) -> dict[str, dict]:
    """Tokenise `rows`, predict, post-process: {id: prediction record}."""
    from datasets import Dataset

    feats = Dataset.from_dict(features(cfg, tok, rows, with_labels=False))
    starts, ends = predict_logits(model, tok, feats, cfg.evaluate.batch_size)
    return answer(cfg, rows, feats, starts, ends, version_2)


def evaluate(cfg: DictConfig) -> None:
    tp = TaskPaths(cfg)
    seed_everything(cfg.runtime.seed)
    rows = read_split(tp, "test")
    model, tok = load_finetuned(cfg)
    t0 = time.time()
    preds = run_extractive(cfg, model, tok, rows, is_v2(tp))
    summary, per_q = score_predictions(rows, {k: v["prediction"] for k, v in preds.items()}, cfg.evaluate)
    for r in per_q:
        r["nbest"] = [{k: c[k] for k in ("text", "prob")} for c in preds[r["id"]]["nbest"][:3]]
    run = tracking.start(cfg, "evaluate")
    run.log({"test/exact_match": summary["exact_match"], "test/f1": summary["f1"]})
    run.finish()
    write_jsonl(tp.metrics / "predictions.jsonl", per_q)
    write_json(tp.metrics / "eval.json", {"model": cfg.model.key, "method": cfg.peft.method, "test": summary})
    print(f"[evaluate] test: n={summary['n']} EM={summary['exact_match']:.2f} F1={summary['f1']:.2f} "
          f"({summary['primary']} normalisation; {time.time() - t0:.0f}s)")
