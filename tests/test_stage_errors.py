"""Bad model config found only once training is set up: one clear line, exit 2, no output.

Unknown model key/source/path and a model folder without weights are cases of the bad-input
matrix in test_bad_inputs.py."""
from __future__ import annotations

import json

import pytest
from conftest import run_stage


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


def test_unknown_lora_target_preset(split_ready, tmp_path):
    # the preset names are declared in the schema (pipelines/core/schema.py), so any stage rejects it at load
    params = split_ready(["peft.targets=qz"])
    proc = run_stage("finetune", params)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "sentiment.peft.targets: 'qz' is not one of qv, qkv, qkvo, all-linear" in line
    assert not (tmp_path / "models" / "sentiment" / "final").exists()
