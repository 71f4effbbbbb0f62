"""Shared fixtures: composed configs with outputs redirected to a temp dir, stage runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.core.config import PROJECT_ROOT, compose, to_plain

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on the 2 cores: one thread per process (stages included, via
    # TUNEDAG_MAX_THREADS) instead of four spinning OpenMP threads fighting over two cores
    os.environ.setdefault("TUNEDAG_MAX_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
BASE_MODELS = PROJECT_ROOT / "models" / "base"


def make_params(tmp_path: Path, task: str = "sentiment", overrides: list[str] | None = None) -> Path:
    """Compose `task` with overrides, send all outputs under tmp_path, write a params file."""
    cfg = compose(task, [
        f"paths.root={tmp_path}",
        f"paths.base_models={BASE_MODELS}",
        "tracking.mode=disabled",
        *(overrides or []),
    ])
    block = to_plain(cfg)
    # data root is relative to the project in conf/; make it absolute for runs from tmp dirs
    root = Path(block["data"]["root"])
    if not root.is_absolute():
        block["data"]["root"] = str((PROJECT_ROOT / root).resolve())
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({task: block}, sort_keys=False))
    return path


def run_stage(stage: str, params: Path, task: str = "sentiment", check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m stages.<stage>` as DVC would, from the project root."""
    proc = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", task, "--params", str(params)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"stage {stage} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture
def params_factory(tmp_path):
    def factory(overrides: list[str] | None = None, task: str = "sentiment") -> Path:
        return make_params(tmp_path, task, overrides)

    return factory


def base_model(key: str) -> Path:
    """Path of a materialised packaged model; the test command materialises them first
    (`dvc repro download_models`), so a missing one is a failure, not a skip."""
    path = BASE_MODELS / key
    assert (path / "config.json").exists(), f"{path} missing: run `make test` (it materialises models first)"
    return path


# The tiny-DVC module is the suite's long pole (~13 min on one xdist worker, its tests share one
# scratch repo): collect it first so a worker starts on it while the other takes the rest.
LONG_POLE = "test_pipeline_dvc.py"


# `make test-fast`: unit modules (no training, no generation; each well under a minute on one core).
# A module may also mark itself with `pytestmark = pytest.mark.fast`.
FAST_MODULES = {"test_config.py", "test_qa_postprocess.py", "test_qgen_data.py", "test_qgen_quality.py",
                "test_rag_units.py", "test_squad_metric.py", "test_textmetrics.py", "test_qa_features.py",
                "test_sentiment_data.py", "test_stage_errors.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in FAST_MODULES:
            item.add_marker(pytest.mark.fast)
    items.sort(key=lambda item: item.path.name != LONG_POLE)  # stable: each file keeps its order
