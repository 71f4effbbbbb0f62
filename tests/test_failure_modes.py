"""Failures of the machine, not of the input, under the bad-input contract (issue 17, item 5):
disk full, read-only output folder, a tracking dir that cannot be created, an unknown hub id
offline; and the Hydra route (`python -m pipelines.run`) keeping the same contract.

Each case runs the real stage (or the real Hydra runner) in a subprocess: exit 2, stderr's last
line the one `error:` line naming the path, no traceback, no outputs and no `.*.tmp` left, the
fake W&B key nowhere. A full disk is a real tmpfs of 64 KiB when this process may mount one
(root in a container), and RLIMIT_FSIZE (EFBIG, works unprivileged) in any case; a read-only
folder is a read-only bind mount as root (chmod does not stop root), chmod 555 otherwise.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT
from test_bad_inputs import _set, assert_no_key_anywhere, env_with_key, files, params, sentiment_split

DOWNLOAD_OUTPUTS = ("data/sentiment/raw", "data/sentiment/raw/*")


def stage(tmp: Path, name: str, params_file: Path, preexec=None, task: str = "sentiment") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{name}", task, "--params", str(params_file)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, env=env_with_key(tmp),
                          preexec_fn=preexec, timeout=300)


def assert_contract(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-4000:]
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def assert_nothing_left(root: Path, before: set[str], patterns=DOWNLOAD_OUTPUTS) -> None:
    for pattern in patterns:
        assert not [p for p in root.glob(pattern) if p.is_file()], f"output {pattern} left behind"
    assert not list(root.rglob(".*.tmp")), "atomic_path temp dir left behind"
    assert files(root) - before == set(), "the failed stage created files"


@contextlib.contextmanager
def mounted(target: Path, *args: str):
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", *args, str(target)], capture_output=True).returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def _fsize_limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


# --------------------------------------------------------------------- disk full / read-only
@pytest.mark.parametrize("how", ["tmpfs-enospc", "rlimit-efbig"])
def test_disk_full_is_one_line_naming_the_output(tmp_path, how):
    """The download stage copies the 1 MB Steam CSV into a disk that cannot hold it."""
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        preexec = None
        if how == "tmpfs-enospc":
            if not stack.enter_context(mounted(out, "-t", "tmpfs", "-o", "size=64k", "tmpfs")):
                pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN); the rlimit case covers EFBIG")
        else:
            preexec = _fsize_limit
        p = params(tmp_path, "sentiment", [f"paths.root={out}"],
                   lambda b: _set(b, "tracking.dir", str(tmp_path / "wandb_runs")))
        before = files(out)
        proc = stage(tmp_path, "download", p, preexec)
        line = assert_contract(proc, str(out / "data/sentiment"))
        assert ("No space left on device" if how == "tmpfs-enospc" else "File too large") in line
        assert_nothing_left(out, before)
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


def test_read_only_output_folder_is_one_line_naming_it(tmp_path):
    out, src = tmp_path / "out", tmp_path / "ro-src"
    src.mkdir()
    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:
            if not stack.enter_context(mounted(out, "--bind", str(src))):
                pytest.skip("cannot bind-mount here (needs CAP_SYS_ADMIN), and chmod does not stop root")
            assert subprocess.run(["mount", "-o", "remount,bind,ro", str(out)]).returncode == 0
        else:
            out.mkdir()
            out.chmod(0o555)
            stack.callback(out.chmod, 0o755)
        p = params(tmp_path, "sentiment", [f"paths.root={out}"],
                   lambda b: _set(b, "tracking.dir", str(tmp_path / "wandb_runs")))
        proc = stage(tmp_path, "download", p)
        line = assert_contract(proc, str(out / "data"))
        assert ("Read-only file system" if os.geteuid() == 0 else "Permission denied") in line
        assert files(out) == set()
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


# ----------------------------------------------------------------------------- tracking dir
def test_tracking_dir_that_is_a_file_fails_before_any_output(tmp_path):
    """baselines used to write its metrics and only then fail in wandb.init."""
    sentiment_split(tmp_path)
    (tmp_path / "not-a-dir").write_text("x")
    p = params(tmp_path, "sentiment", ["baselines.prompting.enabled=false"],
               lambda b: _set(b, "tracking.dir", "not-a-dir"))
    before = files(tmp_path)
    proc = stage(tmp_path, "baselines", p)
    assert_contract(proc, str(tmp_path / "not-a-dir"), "tracking.dir: not a folder")
    assert_nothing_left(tmp_path, before, ("metrics/sentiment/baselines*", "data/sentiment/baselines*"))
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


def test_unknown_hub_id_offline_fails_fast(tmp_path):
    sentiment_split(tmp_path)
    p = params(tmp_path, "sentiment", ["model.source=hub", "model.hub_id=nope/nope"])
    before = files(tmp_path)
    t0 = time.time()
    proc = stage(tmp_path, "tokenize", p)
    assert time.time() - t0 < 10
    assert_contract(proc, "model.hub_id", "'nope/nope' is not in the local Hugging Face cache")
    assert_nothing_left(tmp_path, before, ("data/sentiment/tokenized*",))


# ------------------------------------------------------------------------------ Hydra route
def hydra_run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.run", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, env=env_with_key(tmp), timeout=300)


def test_hydra_unknown_config_group_option_is_one_line(tmp_path):
    proc = hydra_run(tmp_path, "task=sentiment", "model=nope", f"hydra.run.dir={tmp_path}/run")
    line = assert_contract(proc, "Could not find 'model/nope'", "minilm")
    assert "Config search path" not in line
    assert not (tmp_path / "run").exists()


def test_hydra_failing_stage_ends_with_its_error_line_and_removes_the_run_dir(tmp_path):
    (tmp_path / "other").mkdir()  # a sibling run dir: only the failed job's own dir goes
    proc = hydra_run(tmp_path, "task=sentiment", f"data.root={tmp_path}/nodata", f"hydra.run.dir={tmp_path}/run",
                     "tracking.mode=offline")
    assert_contract(proc, f"{tmp_path}/nodata/steam_reviews.csv", "file not found")
    assert "Error executing job" not in proc.stderr
    assert not (tmp_path / "run").exists() and (tmp_path / "other").is_dir()


def test_hydra_run_dir_holds_the_interpolation_not_the_key(tmp_path):
    """A dry run (plan only): params.yaml keeps `${oc.env:WANDB_API_KEY}` unresolved, which the
    stage resolves again from its environment; no file of the run dir holds the key."""
    proc = hydra_run(tmp_path, "task=sentiment", "task.description=owner ${oc.env:WANDB_API_KEY}",
                     "train.dry_run=true", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "run" / "params.yaml").read_text()
    assert "description: owner ${oc.env:WANDB_API_KEY}" in text
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


# ------------------------------------------------------------------------------ DVC route
def test_key_through_interpolation_is_masked_in_run_info_and_report(tmp_path):
    """What the evaluate and report stages do, in the order that leaked: the stage runner loaded,
    an offline W&B run started (which drops WANDB_API_KEY from the environment), then
    run_info.json and an HTML report page with the config are written."""
    p = params(tmp_path, "sentiment", edit=lambda b: _set(b, "task.description", "owner ${oc.env:WANDB_API_KEY}"))
    code = f"""
import os
from pipelines.core import stage, tracking, report as H
from pipelines.core.config import load_task_block
from pipelines.core.io import write_text
cfg = load_task_block("sentiment", {str(p)!r})
assert cfg.task.description == "owner " + os.environ["WANDB_API_KEY"]
run = tracking.Run(cfg, "evaluate").open()
assert "WANDB_API_KEY" not in os.environ  # offline: dropped before the writers run
stage.record_run_info(cfg)
page = H.Page("Report", cfg.task.description)
page.add("Config", H.config_block(cfg))
write_text({str(tmp_path / 'report.html')!r}, page.render())
run.finish()
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=env_with_key(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "metrics/sentiment/run_info.json").read_text())
    assert info["config"]["task"]["description"] == "owner ***"
    assert "owner ***" in (tmp_path / "report.html").read_text()
    assert list((tmp_path / "wandb_runs" / "wandb").glob("offline-run-*"))
    # run_info's reproducibility fields (issue 17, item 9)
    assert info["machine"]["cpu"] and info["machine"]["threads"]["torch"] >= 1
    threads = yaml.safe_load(p.read_text())["sentiment"]["runtime"]["threads"]
    assert info["machine"]["threads"]["configured"] == threads.get("evaluate", threads["default"])
    assert info["dtypes"]["model.dtype"] == "float32" and info["dtypes"]["train.bf16"] is False
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


# ------------------------------------------------------------------------- killed and resumed
RESUME = ["data.limit=160", "train.max_steps=16", "train.eval_strategy=steps", "train.eval_steps=4",
          "train.logging_steps=3", "train.batch_size=8", "train.save_total_limit=10", "tracking.mode=disabled"]


def test_resumed_run_logs_the_loss_curve_of_an_uninterrupted_one(tmp_path):
    """Sentiment MiniLM, 16 steps, a loss logged every 3 steps, a checkpoint every 4: SIGKILL after
    checkpoint-8 (between the logs of steps 6 and 9), resume; train_log.json (loss of every log
    and the final train_loss) is byte-identical to the uninterrupted run's."""
    from conftest import make_params, run_stage

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    pa = make_params(a, "sentiment", RESUME)
    for name in ("download", "clean", "split", "tokenize"):
        run_stage(name, pa, check=True)
    shutil.copytree(a / "data", b / "data")
    pb = make_params(b, "sentiment", RESUME)
    run_stage("finetune", pa, check=True)

    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "stages.finetune", "sentiment", "--params", str(pb)]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = b / "models/sentiment/checkpoints/checkpoint-8/tunedag_loss-0.json"
    try:
        deadline = time.time() + 300
        while not saved.exists():
            assert proc.poll() is None and time.time() < deadline, "finetune ended before checkpoint-8"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (b / "models/sentiment/train_log.json").exists(), "killed too late: the run had finished"
    resumed = run_stage("finetune", pb, check=True)
    assert "resuming from" in resumed.stdout and "(step 8)" in resumed.stdout, resumed.stdout[-2000:]
    log_a, log_b = (p / "models/sentiment/train_log.json" for p in (a, b))
    assert log_b.read_bytes() == log_a.read_bytes()
    losses = [e["step"] for e in json.loads(log_a.read_text()) if "loss" in e]
    assert losses == [1, 3, 6, 9, 12, 15]  # logging_first_step, then every 3
