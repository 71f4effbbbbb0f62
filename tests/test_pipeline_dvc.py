"""The real pipeline on a tiny budget, run by DVC in a scratch copy of the project:
every stage runs end to end on a subset of the real data with the real packaged models,
DVC re-runs only what a param change affects, and the same seed gives identical metrics."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.core.config import PROJECT_ROOT, to_plain, compose
from pipelines.core.params import render

from conftest import BASE_MODELS, base_model

TINY = [
    "data.limit=160",
    "train.max_steps=6",
    "train.eval_strategy=steps",
    "train.eval_steps=3",
    "train.logging_steps=2",
    "train.batch_size=8",
    "baselines.prompting.max_examples=12",
    "baselines.prompting.shots=[0,2]",
    "tracking.mode=disabled",
]
COPY = ["dvc.yaml", "stages", "pipelines", "conf", "requirements-models.txt", "pyproject.toml"]


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=repo,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _set_param(repo: Path, dotted: str, value) -> None:
    path = repo / "params.yaml"
    doc = yaml.safe_load(path.read_text())
    node = doc
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    for key in ("minilm", "smollm2-135m"):
        base_model(key)
    repo = tmp_path_factory.mktemp("tinyrepo")
    for name in COPY:
        src = PROJECT_ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / name,
                                                           **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    # params: the committed defaults with a tiny budget; only the models this run needs
    doc = yaml.safe_load(render().split("\n", 3)[-1])
    block = to_plain(compose("sentiment", TINY))
    block["data"]["root"] = str((PROJECT_ROOT / block["data"]["root"]).resolve())
    doc = {"download": {"models": ["minilm", "smollm2-135m"]}, "sentiment": block}
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    # reuse the materialised models (hard links: instant) and record them without re-running
    for key in doc["download"]["models"]:
        shutil.copytree(BASE_MODELS / key, repo / "models" / "base" / key, copy_function=os.link)
    _dvc(repo, "commit", "-f", "download_models")
    return repo


def test_tiny_pipeline_runs_end_to_end(repo):
    out = _dvc(repo, "repro")
    ran = _ran(out)
    assert {"sentiment_download", "sentiment_clean", "sentiment_split", "sentiment_tokenize",
            "sentiment_finetune", "sentiment_evaluate", "sentiment_baselines", "sentiment_report"} <= ran
    assert not any(s.startswith("download_models") for s in ran), "materialised models must be reused"
    ev = json.loads((repo / "metrics/sentiment/eval.json").read_text())
    assert ev["test"]["n"] == 32 and 0.0 <= ev["test"]["macro_f1"] <= 1.0
    assert ev["extra"]["probe_reviews"]["n"] >= 40
    bl = json.loads((repo / "metrics/sentiment/baselines.json").read_text())
    assert {"tfidf", "zero_shot", "few_shot_2"} <= set(bl)
    summary = json.loads((repo / "models/sentiment/train_summary.json").read_text())
    assert 0 < summary["trainable_params"] < summary["total_params"] and summary["steps"] == 6
    html = (repo / "reports/sentiment/index.html").read_text()
    assert "macro" in html.lower() and "data:image/png;base64," in html
    assert "Data and pipelines are up to date" in _dvc(repo, "repro")


def test_evaluate_knob_reruns_only_evaluate(repo):
    _set_param(repo, "sentiment.evaluate.batch_size", 7)
    ran = _ran(_dvc(repo, "repro"))
    assert "sentiment_evaluate" in ran
    assert ran <= {"sentiment_evaluate", "sentiment_report"}, ran


def test_lora_rank_reruns_finetune_onward(repo):
    _set_param(repo, "sentiment.peft.r", 4)
    ran = _ran(_dvc(repo, "repro"))
    assert {"sentiment_finetune", "sentiment_evaluate"} <= ran
    assert ran <= {"sentiment_finetune", "sentiment_evaluate", "sentiment_report"}, ran
    summary = json.loads((repo / "models/sentiment/train_summary.json").read_text())
    assert summary["trainable_params"] > 0


def test_same_seed_identical_metrics(repo):
    before = {p: (repo / p).read_bytes() for p in ("metrics/sentiment/eval.json", "metrics/sentiment/baselines.json")}
    _dvc(repo, "repro", "-f", "-s", "sentiment_finetune")
    _dvc(repo, "repro", "-f", "-s", "sentiment_evaluate")
    _dvc(repo, "repro", "-f", "-s", "sentiment_baselines")
    for p, content in before.items():
        assert (repo / p).read_bytes() == content, f"{p} changed between two runs with the same seed"
