"""baselines stage: what the fine-tuned model has to beat, on the same test split and extra sets.

* TF-IDF (word + char_wb n-grams) + logistic regression, trained on the train split.
* Zero/few-shot prompting of a small instruction-tuned causal LM: each label word is scored as
  the start of the assistant's reply (pipelines.core.lm.score_continuations) and the argmax is
  the prediction. Raw argmax, no calibration: the numbers show what prompting gives as is.

Outputs (metrics dir): baselines.json (metrics only, deterministic), baseline_predictions.jsonl
(one row per method x set x item; label/pred are indices into data.labels) and
baselines_timing.json (wall-clock, kept apart so baselines.json stays byte-stable).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_json, write_jsonl
from pipelines.core.metrics import classification_metrics
from pipelines.core.paths import TaskPaths


def baselines(cfg: DictConfig) -> None:
    from pipelines.core.runtime import seed_everything

    seed_everything(cfg.runtime.seed)
    paths = TaskPaths(cfg)
    labels = list(cfg.data.labels)
    # prob_positive is P(label "positive"); a task without one reports its last label
    pos = labels.index("positive") if "positive" in labels else len(labels) - 1
    split = paths.data / "split"
    train = _read_split(split / "train.jsonl", labels)
    sets = {"test": _read_split(split / "test.jsonl", labels), **_read_extras(cfg.evaluate.extra_sets, labels)}

    results: dict[str, dict] = {}
    preds: list[dict] = []
    timing: dict[str, dict] = {}

    def record(method: str, set_name: str, rows: list[dict], pred: np.ndarray, prob_pos: np.ndarray) -> None:
        m = classification_metrics([r["label"] for r in rows], pred.tolist(), labels)
        entry = results.setdefault(method, {"test": None, "extra": {}})
        if set_name == "test":
            entry["test"] = m
        else:
            entry["extra"][set_name] = m
        preds.extend({"id": r["id"], "set": set_name, "method": method, "label": r["label"],
                      "pred": int(p), "prob_positive": round(float(q), 6)}
                     for r, p, q in zip(rows, pred, prob_pos))

    if cfg.baselines.tfidf.enabled:
        _tfidf(cfg, train, sets, pos, record, timing)
    if cfg.baselines.prompting.enabled:
        _prompting(cfg, paths, train, sets, labels, pos, record, timing)

    write_json(paths.metrics / "baselines.json", results)
    write_jsonl(paths.metrics / "baseline_predictions.jsonl", preds)
    write_json(paths.metrics / "baselines_timing.json", timing)

    from pipelines.core.tracking import start

    run = start(cfg, "baselines")
    try:
        run.log({f"{method}/{name}/{k}": m[k]
                 for method, r in results.items()
                 for name, m in [("test", r["test"]), *r["extra"].items()]
                 for k in ("accuracy", "macro_f1")})
    finally:
        run.finish()


# ----------------------------------------------------------------------------- inputs

def _numbered_rows(path: Path) -> list[tuple[int, dict]]:
    """Rows with their 1-based line numbers (read_jsonl skips blank lines the same way)."""
    rows = read_jsonl(path)  # PipelineError for a missing file, bad UTF-8 or JSON
    with open(path, "rb") as f:
        lines = [i for i, raw in enumerate(f, 1) if raw.decode("utf-8").strip()]
    if not rows:
        raise PipelineError(f"{path}: no rows")
    return list(zip(lines, rows))


def _read_split(path: Path, labels: list[str]) -> list[dict]:
    out = []
    for line, row in _numbered_rows(path):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str):
            raise PipelineError(f"{path}:{line}: field 'text': expected a string, got {text!r}")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(labels):
            raise PipelineError(f"{path}:{line}: field 'label': expected an index into {labels}, got {label!r}")
        out.append({"id": row.get("id", f"{path.stem}:{line}"), "text": text, "label": label})
    return out


def _read_extras(files: list[str], labels: list[str]) -> dict[str, list[dict]]:
    """Extra labelled sets ({review, label name}), keyed by file stem."""
    sets: dict[str, list[dict]] = {}
    for f in files:
        path = Path(f)
        name = path.stem
        if name == "test" or name in sets:
            raise PipelineError(f"evaluate.extra_sets: {f}: set name {name!r} (the file stem) is already used")
        rows = []
        for line, row in _numbered_rows(path):
            for field in ("review", "label"):
                if field not in row:
                    raise PipelineError(f"{path}:{line}: missing field {field!r}")
            if not isinstance(row["review"], str) or not row["review"].strip():
                raise PipelineError(f"{path}:{line}: field 'review': expected a non-empty string")
            if row["label"] not in labels:
                raise PipelineError(
                    f"{path}:{line}: field 'label': unknown label {row['label']!r}; expected one of {', '.join(labels)}")
            rows.append({"id": f"{name}:{line}", "text": row["review"], "label": labels.index(row["label"])})
        sets[name] = rows
    return sets


# ----------------------------------------------------------------------------- TF-IDF

def _ngrams(value, key: str) -> tuple[int, int]:
    v = list(value)
    if len(v) != 2 or not 1 <= v[0] <= v[1]:
        raise PipelineError(f"baselines.tfidf.{key}: expected [min, max] with 1 <= min <= max, got {v}")
    return v[0], v[1]


def _tfidf(cfg, train, sets, pos, record, timing) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    t = cfg.baselines.tfidf
    y = np.array([r["label"] for r in train])
    if len(np.unique(y)) < 2:
        raise PipelineError("train split: TF-IDF baseline needs at least two classes")
    features = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=_ngrams(t.word_ngrams, "word_ngrams"), sublinear_tf=True)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=_ngrams(t.char_ngrams, "char_ngrams"),
                                 sublinear_tf=True)),
    ])
    clf = make_pipeline(features, LogisticRegression(C=t.C, max_iter=5000, random_state=cfg.runtime.seed))
    t0 = time.perf_counter()
    clf.fit([r["text"] for r in train], y)
    timing["tfidf"] = {"fit_s": round(time.perf_counter() - t0, 3), "n_train": len(train)}
    classes = clf.classes_.tolist()
    for name, rows in sets.items():
        proba = clf.predict_proba([r["text"] for r in rows])
        pred = clf.classes_[proba.argmax(1)]
        prob_pos = proba[:, classes.index(pos)] if pos in classes else np.zeros(len(rows))
        record("tfidf", name, rows, pred, prob_pos)


# ----------------------------------------------------------------------------- prompting

def _truncate(text: str, n: int) -> str:
    text = " ".join(text.split())  # newlines/tabs in reviews would blur the chat turn layout
    if len(text) <= n:
        return text
    cut = text[:n]
    sp = cut.rfind(" ")
    return (cut[:sp] if sp > n // 2 else cut) + " ..."


def _or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _few_shot(train: list[dict], k: int, n_labels: int, seed: int) -> list[dict]:
    """k class-balanced train examples (remainder spread over random classes), shuffled."""
    rng = np.random.default_rng([seed, k])
    per = [k // n_labels] * n_labels
    for c in rng.choice(n_labels, k % n_labels, replace=False):
        per[c] += 1
    picked = []
    for c, n in enumerate(per):
        pool = [i for i, r in enumerate(train) if r["label"] == c]
        if len(pool) < n:
            raise PipelineError(f"baselines.prompting.shots: {k}-shot needs {n} train examples of class {c}, "
                                f"the train split has {len(pool)}")
        picked += rng.choice(pool, n, replace=False).tolist()
    # shuffled so that one class is not always the most recent example (recency bias)
    return [train[i] for i in rng.permutation(picked)]


def _prompting(cfg, paths, train, sets, labels, pos, record, timing) -> None:
    import torch

    from pipelines.core.lm import load_causal_lm, score_continuations

    p = cfg.baselines.prompting
    words = list(p.label_words)
    if len(words) != len(labels) or len(set(words)) != len(words):
        raise PipelineError(f"baselines.prompting.label_words: need one distinct word per label in data.labels "
                            f"{labels}, got {words}")
    shots = sorted(set(p.shots))
    if any(k < 0 for k in shots):
        raise PipelineError(f"baselines.prompting.shots: must be >= 0, got {list(p.shots)}")
    if p.max_examples is not None and p.max_examples > 0 and len(sets["test"]) > p.max_examples:
        rng = np.random.default_rng(cfg.runtime.seed)
        keep = np.sort(rng.choice(len(sets["test"]), p.max_examples, replace=False))
        sets = {**sets, "test": [sets["test"][i] for i in keep]}

    t0 = time.perf_counter()
    model, tok = load_causal_lm(p.model, paths.base_models)
    if not tok.chat_template:
        raise PipelineError(f"baselines.prompting.model: {p.model.key} has no chat template (use an instruct model)")
    timing["prompting_model"] = {"load_s": round(time.perf_counter() - t0, 3), "threads": torch.get_num_threads()}

    system = (f"You classify the sentiment of video game reviews from Steam. "
              f"Reply with exactly one word: {_or_list(words)}.")
    question = f"Is this review {_or_list(words)}?"

    def user(text: str) -> dict:
        return {"role": "user", "content": f"Review: {_truncate(text, p.max_review_chars)}\n{question}"}

    for k in shots:
        method = "zero_shot" if k == 0 else f"few_shot_{k}"
        turns = [{"role": "system", "content": system}]
        for ex in _few_shot(train, k, len(labels), cfg.runtime.seed):
            turns += [user(ex["text"]), {"role": "assistant", "content": words[ex["label"]]}]
        timing[method] = {}
        for name, rows in sets.items():
            prompts = [tok.apply_chat_template(turns + [user(r["text"])], add_generation_prompt=True, tokenize=False)
                       for r in rows]
            t0 = time.perf_counter()
            # label words exactly as given: the assistant turn starts right after "assistant\n",
            # so no leading space, and the few-shot answers are the very same tokens
            scores = score_continuations(model, tok, prompts, words, p.batch_size)
            dt = time.perf_counter() - t0
            timing[method][name] = {"n": len(rows), "s": round(dt, 3), "s_per_review": round(dt / len(rows), 4)}
            z = np.exp(scores - scores.max(1, keepdims=True))
            record(method, name, rows, scores.argmax(1), (z / z.sum(1, keepdims=True))[:, pos])
