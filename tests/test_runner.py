"""Hydra runner: dry runs of the hub (GPU) configs offline, and multirun sweeps into their
own run directories (never the DVC-tracked default outputs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import PROJECT_ROOT


def _run(args, cwd=PROJECT_ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "pipelines.run", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


@pytest.mark.parametrize("model,n_params", [
    ("deberta-v3-base", 184_000_000), ("roberta-base", 124_000_000), ("distilbert-base-uncased", 66_000_000)])
def test_gpu_configs_dry_run_offline(tmp_path, model, n_params):
    proc = _run([f"model={model}", "train=encoder_gpu", "train.dry_run=true", f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.split("[dry-run] model and adapter:\n", 1)[1].split("\n[", 1)[0])
    assert info["hub_id"] and info["method"] == "lora"
    assert n_params < info["total_params"] < n_params * 1.05
    assert 0 < info["trainable_params"] < info["total_params"] / 50
    assert info["memory_estimate"]["total_gib"] > 0
    # nothing trained, no weights fetched: only the run's params file (and Hydra's log) exist
    assert {p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")} <= {"params.yaml", "run.log"}


def test_qa_original_setup_dry_runs_offline(tmp_path):
    """run_qa.py's setup: distilbert-base-uncased on SQuAD (hub), full fine-tune, lr 3e-5."""
    proc = _run(["task=extractive_qa", "model=distilbert-base-uncased", "data=squad", "train=qa_gpu",
                 "train.dry_run=true", f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.split("[dry-run] model and adapter:\n", 1)[1].split("\n[", 1)[0])
    assert info["auto_class"] == "AutoModelForQuestionAnswering" and info["method"] == "full"
    assert 66_000_000 < info["total_params"] == info["trainable_params"] < 67_000_000
    block = yaml.safe_load((tmp_path / "run" / "params.yaml").read_text())["extractive_qa"]
    assert block["train"]["learning_rate"] == 3e-5 and block["train"]["batch_size"] == 12
    assert block["data"]["source"] == "hub" and block["data"]["hub_name"] == "rajpurkar/squad"
    assert (block["data"]["max_length"], block["data"]["doc_stride"]) == (384, 128)
    assert "rajpurkar/squad" in proc.stdout


def test_multirun_sweep_gets_one_dir_per_job(tmp_path):
    """A 4-job sweep through submitit's local executor (the cluster launcher's local twin, jobs
    side by side): one run dir per job, each with its own config."""
    proc = _run(["-m", "hydra/launcher=submitit_local", "peft.r=4,8", "peft.targets=qv,qkv", "train.dry_run=true",
                 f"hydra.sweep.dir={tmp_path}/sweep"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        block = yaml.safe_load((job / "params.yaml").read_text())["sentiment"]
        assert block["paths"]["root"] == str(job)  # outputs of a job stay inside its dir
        seen.add((block["peft"]["r"], block["peft"]["targets"]))
    assert seen == {(4, "qv"), (4, "qkv"), (8, "qv"), (8, "qkv")}
    logs = sorted((tmp_path / "sweep/.submitit").glob("*/*_log.out"))
    assert len(logs) == 4 and all("Job completed successfully" in p.read_text() for p in logs)
    # the LoRA size printed by each dry run follows its variant
    trainable = [int(x.split(": ")[1].rstrip(",")) for p in logs for x in p.read_text().splitlines()
                 if '"trainable_params"' in x]
    assert len(set(trainable)) == 4


def test_real_tiny_run_outside_dvc(tmp_path):
    """The runner's real path: every stage on a tiny budget, outputs only inside its run dir."""
    proc = _run(["data.limit=120", "train.max_steps=4", "train.eval_strategy=no", "train.batch_size=8",
                 "baselines.prompting.enabled=false",  # SmolLM2 prompting: covered by the DVC pipeline test
                 "evaluate.extra_sets=[]", f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = tmp_path / "run"
    ev = json.loads((run / "metrics/sentiment/eval.json").read_text())
    assert ev["test"]["n"] == 24 and ev["extra"] == {}
    assert "tfidf" in json.loads((run / "metrics/sentiment/baselines.json").read_text())
    assert (run / "reports/sentiment/index.html").exists()


@pytest.mark.parametrize("task", ["instruct", "qgen_es"])
def test_llama31_8b_qlora_dry_runs_offline(tmp_path, task):
    """The original GPU setup: composes, prints model / quantisation / LoRA / memory, downloads nothing."""
    proc = _run([f"task={task}", "experiment=llama31_8b_qlora", "train.dry_run=true", f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.split("[dry-run] model and adapter:\n", 1)[1].split("\n[", 1)[0])
    assert info["hub_id"] == "meta-llama/Llama-3.1-8B-Instruct" and info["method"] == "qlora"
    assert 8.0e9 < info["total_params"] < 8.1e9  # Llama-3.1-8B built on the meta device
    assert info["quantization"]["bnb_4bit_quant_type"] == "nf4" and info["quantization"]["bnb_4bit_use_double_quant"]
    assert sorted(info["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert 0 < info["trainable_params"] < info["total_params"] / 100
    # 4-bit weights: a few GiB, far below the 16 GB of bf16 weights
    assert 3 < info["memory_estimate"]["weights_gib"] < 8, info["memory_estimate"]
    assert "gradient_checkpointing=True" in proc.stdout
    assert {p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")} <= {"params.yaml", "run.log"}


def test_max_threads_env_caps_the_configured_threads():
    # a fresh interpreter: thread pools are sized when torch is imported
    code = ("import os; from pipelines.core.runtime import set_threads; set_threads(2); import torch; "
            "print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "TUNEDAG_MAX_THREADS")}
    run = lambda extra: subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env={**env, **extra},
                                       capture_output=True, text=True, check=True).stdout.split()
    assert run({}) == ["2", "2"]
    assert run({"TUNEDAG_MAX_THREADS": "1"}) == ["1", "1"]
