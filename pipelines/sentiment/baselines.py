"""baselines stage: what the fine-tuned model has to beat, on the same test split and extra sets.

* TF-IDF (word + char_wb n-grams) + logistic regression, trained on the train split.
* Zero/few-shot prompting of a small instruction-tuned causal LM: each label word is scored as
  the start of the assistant's reply (pipelines.core.lm.score_continuations) and the argmax is
  the prediction. Raw argmax, no calibration: the numbers show what prompting gives as is.
  A label's score is the total probability of the reply starting with its word in either case
  ("positive" or "Positive"): zero-shot, SmolLM2 starts replies capitalised and puts ~3x more
  mass on "Positive" than "positive" but more on "negative" than "Negative", so either case
  alone scores one class with an unfair prior (measured: ~95% resp. ~1% predicted positive on
  a balanced split). Few-shot answers are lowercase words, and then ~99% of the mass is on
  them, so the sum changes nothing there. Leading-space variants get <0.1%: the reply starts
  right after "assistant\n".

Outputs (metrics dir): baselines.json (metrics only, deterministic), baseline_predictions.jsonl
(one row per method x set x item; label/pred are indices into data.labels) and
baselines_timing.json (wall-clock, kept apart so baselines.json stays byte-stable).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from omegaconf import DictConfig

from pipelines.core import tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.metrics import classification_metrics
from pipelines.core.paths import TaskPaths

from .data import read_extra_sets, read_split


@tracking.tracked("baselines")
def baselines(cfg: DictConfig, run=None) -> None:
    from pipelines.core.runtime import seed_everything

    paths = TaskPaths(cfg)
    labels = list(cfg.data.labels)
    # prob_positive is P(label "positive"); a task without one reports its last label
    pos = labels.index("positive") if "positive" in labels else len(labels) - 1
    # all input checks before anything slow (torch import, model load)
    split = paths.data / "split"
    train = read_split(split / "train.jsonl", labels)
    sets = {"test": read_split(split / "test.jsonl", labels), **read_extra_sets(cfg.evaluate.extra_sets, labels)}
    if cfg.baselines.prompting.enabled:
        _prompting_settings(cfg, labels)
    seed_everything(cfg.runtime.seed)

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

    run.log({f"{method}/{name}/{k}": m[k]
             for method, r in results.items()
             for name, m in [("test", r["test"]), *r["extra"].items()]
             for k in ("accuracy", "macro_f1")})


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


def _case_variants(word: str) -> list[str]:
    return list(dict.fromkeys([word, word[:1].lower() + word[1:], word[:1].upper() + word[1:]]))


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


def _prompting_settings(cfg, labels: list[str]) -> tuple[list[str], list[int]]:
    p = cfg.baselines.prompting
    words = list(p.label_words)
    if len(words) != len(labels) or len({w.lower() for w in words}) != len(words):
        raise PipelineError(f"baselines.prompting.label_words: need one distinct word per label in data.labels "
                            f"{labels} (case-insensitively distinct), got {words}")
    if any(k < 0 for k in p.shots):
        raise PipelineError(f"baselines.prompting.shots: must be >= 0, got {list(p.shots)}")
    return words, sorted(set(p.shots))


def _prompting(cfg, paths, train, sets, labels, pos, record, timing) -> None:
    import torch

    from pipelines.core.causal_lm import load_causal_lm

    p = cfg.baselines.prompting
    words, shots = _prompting_settings(cfg, labels)
    if p.max_examples is not None and p.max_examples > 0 and len(sets["test"]) > p.max_examples:
        rng = np.random.default_rng(cfg.runtime.seed)
        keep = np.sort(rng.choice(len(sets["test"]), p.max_examples, replace=False))
        sets = {**sets, "test": [sets["test"][i] for i in keep]}

    t0 = time.perf_counter()
    model, tok = load_causal_lm(p.model, paths.base_models, "baselines.prompting.model")
    if not tok.chat_template:
        raise PipelineError(f"baselines.prompting.model: {p.model.key} has no chat template (use an instruct model)")
    timing["prompting_model"] = {"load_s": round(time.perf_counter() - t0, 3), "threads": torch.get_num_threads()}

    for k in shots:
        method = "zero_shot" if k == 0 else f"few_shot_{k}"
        chosen = _few_shot(train, k, len(labels), cfg.runtime.seed)
        if chosen:
            print(f"[baselines] {method} examples: {[ex['id'] for ex in chosen]}", file=sys.stderr)
        examples = [(ex["text"], ex["label"]) for ex in chosen]
        timing[method] = {}
        for name, rows in sets.items():
            prompts = build_prompts(tok, [r["text"] for r in rows], words, examples, p.max_review_chars)
            t0 = time.perf_counter()
            scores = label_scores(model, tok, prompts, words, p.batch_size)
            dt = time.perf_counter() - t0
            timing[method][name] = {"n": len(rows), "s": round(dt, 3), "s_per_review": round(dt / len(rows), 4)}
            z = np.exp(scores - scores.max(1, keepdims=True))
            record(method, name, rows, scores.argmax(1), (z / z.sum(1, keepdims=True))[:, pos])


def build_prompts(tok, texts: list[str], words: list[str], examples: list[tuple[str, int]],
                  max_chars: int) -> list[str]:
    """Chat prompts ending in the generation prompt; few-shot examples are earlier turns whose
    assistant answer is the bare label word (the format we then score).

    Wording chosen on val + train reviews (never test) among 8 variants: same ranking quality
    as the best (AUC 0.76) and the least lopsided prior; asking a question ("Is this review
    negative or positive?") made SmolLM2 answer "Positive" even for "I hate it. Do not buy it."
    """
    system = (f"You classify the sentiment of video game reviews from Steam as {_or_list(words)}. "
              f"Reply with that one word only.")

    def user(text: str) -> dict:
        return {"role": "user", "content": f"Review: {_truncate(text, max_chars)}"}

    turns = [{"role": "system", "content": system}]
    for text, label in examples:
        turns += [user(text), {"role": "assistant", "content": words[label]}]
    return [tok.apply_chat_template(turns + [user(t)], add_generation_prompt=True, tokenize=False) for t in texts]


def label_scores(model, tok, prompts: list[str], words: list[str], batch_size: int) -> np.ndarray:
    """[n_prompts, n_labels] log-probability that the reply starts with each label word, summed
    over its case variants (see module doc)."""
    from pipelines.core.lm import score_continuations

    variants = [_case_variants(w) for w in words]
    s = score_continuations(model, tok, prompts, [v for vs in variants for v in vs], batch_size)
    owner = np.array([c for c, vs in enumerate(variants) for _ in vs])
    return np.stack([np.logaddexp.reduce(s[:, owner == c], axis=1) for c in range(len(words))], 1)
