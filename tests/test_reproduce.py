"""The reproduce command's comparison: what counts as the same number, and what is named as moved."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines import reproduce as rp
from pipelines.core.config import PROJECT_ROOT

pytestmark = pytest.mark.fast


def _bad(rows):
    return {r["key"] for r in rows if not r["ok"]}


def test_within_tolerance_passes_and_a_moved_metric_is_named():
    committed = {"test": {"macro_f1": 0.8373, "n": 590, "confusion_matrix": [[248, 47], [49, 246]]}, "model": "minilm"}
    close = {"test": {"macro_f1": 0.8301, "n": 590, "confusion_matrix": [[246, 49], [50, 245]]}, "model": "minilm"}
    assert not _bad(rp.compare("sentiment", committed, close, "eval.json"))
    far = {"test": {"macro_f1": 0.80, "n": 589, "confusion_matrix": [[248, 47], [49, 246]]}, "model": "mpnet"}
    assert _bad(rp.compare("sentiment", committed, far, "eval.json")) == {"test.macro_f1", "test.n", "model"}


def test_qa_points_have_their_own_scale_and_missing_keys_fail():
    # the measured cross-machine case: F1 48.76 here, 48.00 on another CPU (bf16 training)
    committed = {"test": {"f1": 48.764436, "exact_match": 30.046948, "n": 1278}}
    assert not _bad(rp.compare("extractive_qa", committed, {"test": {"f1": 48.0, "exact_match": 29.26, "n": 1278}}, "e"))
    assert _bad(rp.compare("extractive_qa", committed, {"test": {"f1": 45.0, "n": 1278}}, "e")) == \
        {"test.f1", "test.exact_match"}
    # a [0, 1] metric called f1 elsewhere keeps the default tolerance
    assert _bad(rp.compare("rag", {"f1": 0.15}, {"f1": 0.2}, "e")) == {"f1"}


def test_final_stages_are_those_that_write_metrics():
    assert set(rp.final_stages("sentiment")) == {"sentiment_evaluate", "sentiment_baselines"}
    assert rp.final_stages("rag") == ["rag_evaluate"]


def test_bad_task_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "pipelines.reproduce", "sentimnt"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: tasks: unknown sentimnt; known: sentiment, extractive_qa, instruct, qgen_es, rag"]
