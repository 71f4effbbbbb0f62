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
    run = tracking.Run(cfg, "evaluate")
    assert not run.opened  # lazy: nothing is opened before the first use
    run.log({"test/macro_f1": 0.5})
    assert run.records
    wb = run.wandb
    assert wb.job_type == "evaluate" and wb.group == "exp-42" and wb.offline
    run_dir = Path(wb.dir).parent
    run.finish()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files, "offline run wrote nothing"
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


def test_disabled_tracking_is_a_noop(params_factory):
    cfg = load_task_block("sentiment", params_factory(["tracking.mode=disabled"]))
    run = tracking.Run(cfg, "finetune")
    run.log({"x": 1})
    run.summary.update({"y": 2})
    assert not run.records and run.wandb is None
    run.finish()
    assert os.environ["WANDB_MODE"] == "disabled"


def test_every_stage_run_is_an_offline_run_grouped_by_dvc_experiment(tmp_path, params_factory):
    """Real stages with tracking on: one offline W&B run per stage execution (data stages included),
    grouped by the DVC experiment the stage runs in, with the stage's statistics; no secret."""
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    secret = "sk-test-" + "7c" * 16
    params = params_factory(["tracking.mode=offline"])
    env = {**os.environ, "WANDB_MODE": "offline", "DVC_EXP_NAME": "brisk-fern", "WANDB_API_KEY": secret}
    for stage in ("download", "clean"):
        proc = subprocess.run([sys.executable, "-m", f"stages.{stage}", "sentiment", "--params", str(params)],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert secret not in proc.stdout + proc.stderr
    runs = sorted((tmp_path / "wandb_runs/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs
    download, clean = (p.read_bytes() for p in runs)
    for data in (download, clean):
        assert b"sentiment-exp-brisk-fern" in data and b"stage_seconds" in data
    assert b"stats/" in clean and b"stats/" not in download  # clean_stats.json went to the clean run's summary
    for p in (tmp_path / "wandb_runs").rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p


def test_the_runner_passes_its_run_and_finishes_it(params_factory):
    """A stage function logs into the run it is given (the runner's, finished by the runner);
    called without one (tests, notebooks) it gets its own for the call."""
    cfg = load_task_block("sentiment", params_factory(["tracking.mode=offline"]))
    seen = []

    @tracking.tracked("evaluate")
    def stage(cfg, run=None):
        run.log({"test/x": 1.0})
        seen.append((run, run.wandb))

    with tracking.stage_run(cfg, "evaluate") as run:
        stage(cfg, run)
        assert seen[0][0] is run and run.records and run.wandb is not None  # not finished by the stage
    assert run.wandb is None and seen[0][1].offline  # finished when the stage was done
    stage(cfg)
    own, wb = seen[1]
    assert own is not run and own.stage == "evaluate" and own.wandb is None and wb is not None
