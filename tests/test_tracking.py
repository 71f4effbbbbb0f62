"""W&B offline tracking: one run per stage, grouped, no network, and no secrets logged."""
from __future__ import annotations

import os
from pathlib import Path

from pipelines.core import tracking
from pipelines.core.config import load_task_block


def test_offline_run_has_job_type_group_and_no_secret(tmp_path, params_factory, monkeypatch):
    secret = "sk-test-" + "9f" * 16
    monkeypatch.setenv("WANDB_API_KEY", secret)
    params = params_factory(["tracking.mode=offline", "tracking.group=exp-42"])
    cfg = load_task_block("sentiment", params)
    run = tracking.start(cfg, "evaluate")
    run.log({"test/macro_f1": 0.5})
    assert run.job_type == "evaluate" and run.group == "exp-42" and run.offline
    run_dir = Path(run.dir).parent
    run.finish()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files, "offline run wrote nothing"
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


def test_disabled_tracking_is_a_noop(params_factory):
    cfg = load_task_block("sentiment", params_factory(["tracking.mode=disabled"]))
    run = tracking.start(cfg, "finetune")
    run.log({"x": 1})
    run.finish()
    assert os.environ["WANDB_MODE"] == "disabled"
