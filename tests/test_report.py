"""report stage: self-contained HTML + Markdown summary from small fake-but-well-formed inputs."""
from __future__ import annotations

import re

import pytest
from conftest import run_stage

from pipelines.core import report as H
from pipelines.core.config import load_task_block
from pipelines.core.errors import PipelineError
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.metrics import classification_metrics
from pipelines.core.paths import TaskPaths
from pipelines.sentiment.report import report

LABELS = ["negative", "positive"]


def metrics(n_wrong: int, n: int = 40) -> dict:
    y = [i % 2 for i in range(n)]
    pred = [1 - t if i < n_wrong else t for i, t in enumerate(y)]
    return classification_metrics(y, pred, LABELS)


def write_inputs(tp: TaskPaths, optional: bool = True) -> None:
    write_json(tp.metrics / "eval.json",
               {"model": "minilm", "test": metrics(5), "extra": {"probe_reviews": metrics(2, 10)}})
    if not optional:
        return
    write_json(tp.metrics / "baselines.json", {
        "tfidf": {"test": metrics(8), "extra": {"probe_reviews": metrics(4, 10)}},
        "zero_shot": {"test": metrics(14), "extra": {"probe_reviews": metrics(3, 10)}},
        "few_shot_4": {"test": metrics(11)},  # no extra set: shown as n/a
    })
    log = [{"loss": 0.7 - 0.05 * i, "learning_rate": 5e-4, "grad_norm": 1.0, "epoch": i / 4, "step": 10 * i}
           for i in range(1, 13)]
    log += [{"eval_loss": 0.5 - 0.05 * e, "eval_macro_f1": 0.8 + 0.02 * e, "eval_accuracy": 0.81 + 0.02 * e,
             "epoch": float(e), "step": 40 * e} for e in (1, 2, 3)]
    log.append({"train_loss": 0.45, "epoch": 3.0, "step": 120})  # timings live in train_timing.json
    write_json(tp.models / "train_log.json", log)
    write_json(tp.models / "train_summary.json", {
        "model": "minilm", "method": "lora", "trainable_params": 74_500, "total_params": 22_787_074,
        "trainable_pct": 0.327, "target_modules": ["query", "key", "value"], "best_checkpoint_metric": 0.86})
    rows = [{"id": f"t{i}", "set": "test", "text": f"test review {i} <b>bold</b> | pipe", "label": LABELS[i % 2],
             "pred": LABELS[(i + (i < 5)) % 2], "prob_positive": round(0.1 + 0.02 * i, 3)} for i in range(40)]
    rows += [{"id": f"p{i}", "set": "probe_reviews", "text": f"probe review {i}", "label": LABELS[i % 2],
              "pred": LABELS[(i + (i < 2)) % 2], "prob_positive": 0.5} for i in range(10)]
    write_jsonl(tp.metrics / "predictions.jsonl", rows)
    # shapes as written by pipelines/sentiment/data.py
    write_json(tp.data / "clean_stats.json", {
        "file": "steam_reviews.csv",
        "steps": [{"step": "read", "removed": 0, "remaining": 1000},
                  {"step": "normalise", "removed": 0, "remaining": 1000, "changed": 77},
                  {"step": "min_chars", "removed": 12, "remaining": 988},
                  {"step": "dedup", "removed": 30, "remaining": 958},
                  {"step": "lang", "removed": 41, "remaining": 917}],
        "classes": {"negative": 400, "positive": 517}, "lang_rescued_short_ascii": 3,
        "lang_dropped_by_language": {"ru": 30, "es": 11},
        "lang_dropped_sample": [{"id": "r7", "lang": "ru", "text": "очень хорошо"},
                                {"id": "r9", "lang": "es", "text": "muy bueno"}]})
    write_json(tp.data / "split_stats.json", {
        name: {"rows": n, "classes": {"negative": n // 2, "positive": n - n // 2}}
        for name, n in (("train", 641), ("val", 92), ("test", 184))})


@pytest.fixture
def setup(params_factory):
    params = params_factory(["report.n_examples=3"])
    cfg = load_task_block("sentiment", params)
    return params, cfg, TaskPaths(cfg)


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


def test_report_page_and_summary(setup, capsys):
    params, cfg, tp = setup
    write_inputs(tp)
    report(cfg)
    out = capsys.readouterr().out
    page = (tp.reports / "index.html").read_text(encoding="utf-8")
    md = (tp.reports / "summary.md").read_text(encoding="utf-8")
    assert out == md

    for anchor in ("results", "training", "confusion", "parameters", "data", "examples", "config"):
        assert f'<section id="{anchor}">' in page and f'href="#{anchor}"' in page
    for text in ("minilm LoRA", "TF-IDF", "zero-shot (smollm2-135m)", "few-shot-4 (smollm2-135m)", "probe_reviews",
                 "F1 negative", "74,500", "22,787,074", "query, key, value", "min_chars", "917",
                 "changed=77", "muy bueno",
                 "lang_rescued_short_ascii", "<td>ru</td>", "classes.positive", ">321</td>",
                 "train_loss", "n_examples: 3", "<details>"):
        assert text in page, text
    assert "not available" not in page
    # verdict: fine-tuned 35/40 correct beats TF-IDF 32/40
    assert "Best on test macro-F1: minilm LoRA (0.875). minilm LoRA beats TF-IDF (0.875 vs 0.800, +0.075)." in page
    # data is escaped, never interpreted
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    # n_examples misclassified test rows (5 exist), most confident first; probe rows errors first
    assert len(re.findall(r"<td>t\d+</td>", page)) == 3
    assert "<td>t0</td>" in page and "<td>t4</td>" not in page
    assert len(re.findall(r"<td>p\d+</td>", page)) == 3

    assert not EXTERNAL.search(page)
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert len(imgs) == 3  # bars, curves, confusion matrices
    assert all(re.search(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', i) for i in imgs)

    assert "| minilm LoRA | test | 40 | 0.875 | 0.875 |" in md
    assert "| TF-IDF | probe_reviews | 10 | 0.600 | 0.600 |" in md
    assert "Trainable parameters: 74,500 of 22,787,074 (0.327%)." in md


def test_stage_is_deterministic_and_matches_in_process(setup, capsys):
    params, cfg, tp = setup
    write_inputs(tp)
    report(cfg)
    first = (tp.reports / "index.html").read_bytes()
    proc = run_stage("report", params, check=True)
    assert (tp.reports / "index.html").read_bytes() == first
    assert proc.stdout == (tp.reports / "summary.md").read_text(encoding="utf-8")


def test_optional_inputs_missing(setup, capsys):
    params, cfg, tp = setup
    write_inputs(tp, optional=False)
    report(cfg)
    page = (tp.reports / "index.html").read_text(encoding="utf-8")
    for what in ("training log", "training summary", "cleaning stats", "split stats", "predictions"):
        assert re.search(rf'class="na">{what}[^<]*: not available', page), what
    assert "TF-IDF baseline not available." in page
    assert len(re.findall(r"<img\b", page)) == 2  # bars, confusion of the fine-tuned model


def test_malformed_eval_names_field(setup):
    params, cfg, tp = setup
    write_json(tp.metrics / "eval.json", {"model": "minilm", "test": {"accuracy": 0.9}})
    with pytest.raises(PipelineError, match=r"eval\.json\.test: missing or non-numeric 'macro_f1'"):
        report(cfg)


def test_helpers_escape_and_format():
    html = H.table(["a", "b"], [["<x>", 0.5], [H.Raw("<i>ok</i>"), 1234]])
    assert "&lt;x&gt;" in html and "<i>ok</i>" in html and '<td class="num">0.500</td>' in html and "1,234" in html
    assert H.markdown_table(["k", "v"], [["a|b", None]]).splitlines()[2] == "| a\\|b | — |"
    page = H.Page("T")
    page.add("Same")
    page.add("Same")
    assert 'id="same"' in page.render() and 'id="same-2"' in page.render()
