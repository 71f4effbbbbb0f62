"""Bad config/model input: one clear line, exit 2, and no half-written output."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import PROJECT_ROOT, run_stage


@pytest.fixture
def split_ready(tmp_path, params_factory):
    """A params file whose data/split exists (copied from a tiny hand-made split)."""
    split = tmp_path / "data" / "sentiment" / "split"
    split.mkdir(parents=True)
    for name in ("train", "val", "test"):
        rows = [{"id": f"{name}{i}", "text": t, "label": l, "label_name": ["negative", "positive"][l]}
                for i, (t, l) in enumerate([("great game", 1), ("awful, refund", 0)] * 3)]
        (split / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return params_factory


@pytest.mark.parametrize("override,needle", [
    (["model.key=no-such-model"], "model.key: unknown packaged model 'no-such-model'"),
    (["model.source=path", "model.path=/nonexistent/model"], "model.path: /nonexistent/model is not a directory"),
    (["model.source=carrier-pigeon"], "model.source: 'carrier-pigeon'"),
])
def test_unknown_model_is_one_line_and_writes_nothing(split_ready, tmp_path, override, needle):
    params = split_ready(override)
    proc = run_stage("tokenize", params)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert not (tmp_path / "data" / "sentiment" / "tokenized").exists()


def test_model_dir_without_weights(split_ready, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(PROJECT_ROOT / "models/base/minilm", broken)
    (broken / "model.safetensors").unlink()
    params = split_ready(["model.source=path", f"model.path={broken}"])
    proc = run_stage("finetune", params)
    assert proc.returncode == 2 and "has no weights" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "models" / "sentiment" / "final").exists()


def test_unknown_lora_target_preset(split_ready, tmp_path):
    params = split_ready(["peft.targets=qz"])
    run_stage("tokenize", params, check=True)
    proc = run_stage("finetune", params)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "peft.targets: unknown preset 'qz'" in line
    assert not (tmp_path / "models" / "sentiment" / "final").exists()
