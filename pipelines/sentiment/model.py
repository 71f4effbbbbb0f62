"""tokenize -> finetune -> evaluate for LoRA sequence classification of reviews."""
from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from pipelines.core import encoder, tracking
from pipelines.core.io import atomic_path, read_jsonl, write_json, write_jsonl
from pipelines.core.metrics import classification_metrics
from pipelines.core.paths import TaskPaths, project_relative
from pipelines.core.runtime import seed_everything
from pipelines.core.training import dry_run_model

from .data import read_extra_sets, read_split

SPLITS = ("train", "val", "test")
HEAD = encoder.Head("AutoModelForSequenceClassification", "SEQ_CLS")


_tokenizer = encoder.tokenizer


def _encode(tok, texts: list[str], max_length: int) -> dict:
    enc = tok(texts, truncation=True, max_length=max_length)  # no padding: collate pads per batch
    enc["length"] = [len(x) for x in enc["input_ids"]]
    return dict(enc)


def tokenize(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    if cfg.train.dry_run:
        print(f"[dry-run] tokenize: {tp.data / 'split'} with {cfg.model.key}, max_length={cfg.data.max_length}, dynamic padding")
        return
    tok = _tokenizer(cfg)  # model config problems first, before the datasets import
    from datasets import Dataset, DatasetDict

    parts = {}
    for name in SPLITS:
        rows = read_jsonl(tp.data / "split" / f"{name}.jsonl")
        enc = _encode(tok, [r["text"] for r in rows], cfg.data.max_length)
        parts[name] = Dataset.from_dict({"id": [r["id"] for r in rows], "labels": [int(r["label"]) for r in rows], **enc})
        lens = np.array(enc["length"])
        print(f"[tokenize] {name}: {len(rows)} rows, tokens mean {lens.mean():.1f} max {lens.max()} "
              f"truncated {(lens >= cfg.data.max_length).sum()}")
    with atomic_path(tp.data / "tokenized") as tmp:
        DatasetDict(parts).save_to_disk(str(tmp))


def _compute_metrics(eval_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    return {"accuracy": float(accuracy_score(labels, preds)), "macro_f1": float(f1_score(labels, preds, average="macro"))}


def _label_maps(cfg: DictConfig) -> dict:
    labels = list(cfg.data.labels)
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}}


@tracking.tracked("finetune")
def finetune(cfg: DictConfig, run=None) -> None:
    if cfg.train.dry_run:
        tp = TaskPaths(cfg)
        dry_run_model(cfg, HEAD.auto_class, HEAD.peft_task, num_labels=len(cfg.data.labels))
        split = tp.data / "split"
        print(f"[dry-run] data: {cfg.data.source} {project_relative(cfg.data.root) / cfg.data.file}; split files "
              f"{'present' if split.exists() else 'not built yet'} at {split}; truncation {cfg.data.max_length}, dynamic padding")
        return

    def datasets(ds):
        return {"train_dataset": ds["train"].remove_columns(["id"]),
                # length-sorted eval batches pad far less; the order does not change the metrics
                "eval_dataset": ds["val"].sort("length").remove_columns(["id"]),
                "compute_metrics": _compute_metrics}, {}

    encoder.finetune(cfg, run, HEAD, datasets, model_kwargs=_label_maps(cfg))


def load_finetuned(cfg: DictConfig):
    """The fine-tuned classifier (LoRA adapter merged for speed, or the full model)."""
    return encoder.load_finetuned(cfg, HEAD, **_label_maps(cfg))


def predict(model, tok, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """Class probabilities; length-sorted batches with dynamic padding (~5x faster than padding to max)."""
    import torch

    enc = tok(texts, truncation=True, max_length=max_length)
    order = np.argsort([len(x) for x in enc["input_ids"]], kind="stable")
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float64)
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch = tok.pad({k: [enc[k][j] for j in idx] for k in enc.keys()}, return_tensors="pt")
            logits = model(**batch).logits.float()
            probs[idx] = torch.softmax(logits, -1).numpy()
    return probs


@tracking.tracked("evaluate")
def evaluate(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    labels = list(cfg.data.labels)
    seed_everything(cfg.runtime.seed)
    model, tok = load_finetuned(cfg)
    sets = {"test": read_split(tp.data / "split" / "test.jsonl", labels), **read_extra_sets(cfg.evaluate.extra_sets, labels)}
    result = {"model": cfg.model.key, "method": cfg.peft.method, "extra": {}}
    pred_rows = []
    for name, rows in sets.items():
        probs = predict(model, tok, [r["text"] for r in rows], cfg.data.max_length, cfg.evaluate.batch_size)
        y_true = [int(r["label"]) for r in rows]
        y_pred = probs.argmax(-1).tolist()
        m = classification_metrics(y_true, y_pred, labels)
        if name == "test":
            result["test"] = m
        else:
            result["extra"][name] = m
        run.log({f"{name}/macro_f1": m["macro_f1"], f"{name}/accuracy": m["accuracy"]})
        pred_rows += [{"id": r["id"], "set": name, "text": r["text"], "label": labels[t], "pred": labels[p],
                       "prob_positive": round(float(pr[-1]), 6)} for r, t, p, pr in zip(rows, y_true, y_pred, probs)]
        print(f"[evaluate] {name}: n={m['n']} accuracy={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f}")
    write_jsonl(tp.metrics / "predictions.jsonl", pred_rows)
    write_json(tp.metrics / "eval.json", result)
