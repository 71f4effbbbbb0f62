"""QLoRA on CPU: real SmolLM2-135M in 4-bit NF4 (bitsandbytes) under LoRA adapters.

The bug this guards against: on CPUs with AVX512-BF16, an eval-mode no-grad forward repacks the
4-bit weights for a fused inference kernel that has no autograd, and later training steps then
give wrong LoRA gradients with no error. `disable_cpu_bf16_fastpath` must prevent that.
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import base_model

from pipelines.core.errors import PipelineError
from pipelines.core.qlora import bnb_config, disable_cpu_bf16_fastpath, load_quantized_causal_lm

NF4 = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
       "bnb_4bit_compute_dtype": "float32"}


def test_bnb_config_rejects_unknown_key_and_bad_dtype():
    with pytest.raises(PipelineError, match=r"model.quantization.bnb_4bit_quant_tipe: unknown key"):
        bnb_config({"load_in_4bit": True, "bnb_4bit_quant_tipe": "nf4"})
    with pytest.raises(PipelineError, match=r"bnb_4bit_compute_dtype: 'bfloat17'"):
        bnb_config({"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat17"})
    c = bnb_config(NF4)
    assert c.load_in_4bit and c.bnb_4bit_quant_type == "nf4" and c.bnb_4bit_use_double_quant
    assert c.bnb_4bit_compute_dtype == torch.float32


def _lora_model():
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = load_quantized_causal_lm(str(base_model("smollm2-135m")), NF4, torch.float32, gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    n = disable_cpu_bf16_fastpath(model)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    return model, n, layers


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def test_qlora_trains_with_correct_gradients_after_an_eval_pass():
    model, n, layers = _lora_model()
    # every projection of all 30 blocks is 4-bit (7 per block), and every one has the fast path off
    assert n == len(layers) == 30 * 7
    assert all(m.support_avx512bf16_for_cpu is False for m in layers)
    assert all(m.weight.quant_state.quant_type == "nf4" for m in layers)

    x = torch.randint(100, 20000, (2, 24))
    # reference gradients before any eval-mode forward
    model.train()
    model(input_ids=x, labels=x).loss.backward()
    before = _grads(model)
    model.zero_grad()

    model.eval()  # what the Trainer's evaluation does between training steps
    with torch.no_grad():
        model(input_ids=x, labels=x)
    disable_cpu_bf16_fastpath(model)
    model.train()
    model(input_ids=x, labels=x).loss.backward()
    after = _grads(model)

    lora_b = [k for k in before if "lora_B" in k]  # B starts at zero, so A's first gradient is zero
    assert len(lora_b) == 30 * 4 and set(before) == set(after)
    # gradients reach the adapters of the first block too (not only the last layers)
    first = [k for k in lora_b if ".layers.0." in k]
    assert first and all(float(before[k].abs().sum()) > 0 for k in first)
    for k in before:
        assert torch.isfinite(after[k]).all(), k
        torch.testing.assert_close(after[k], before[k], rtol=1e-3, atol=1e-6, msg=k)


def test_qlora_loss_decreases_on_a_tiny_budget():
    model, _, _ = _lora_model()
    x = torch.randint(100, 20000, (2, 16))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    losses = []
    for step in range(6):
        if step == 3:  # an eval pass mid-training, as with eval_steps
            model.eval()
            with torch.no_grad():
                model(input_ids=x)
            model.train()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.5, losses


def test_qlora_through_the_instruct_stages(tmp_path):
    """peft=qlora end to end through the real stages (tokenize -> finetune -> evaluate), tiny budget."""
    import json

    from conftest import make_params, run_stage

    params = make_params(tmp_path, "instruct", [
        "peft=qlora", "data.limit=8", "train.max_steps=2", "train.eval_steps=1", "train.logging_steps=1",
        "train.batch_size=2", "evaluate.generation.max_examples=2", "evaluate.generation.max_new_tokens=8"])
    for stage in ("download", "clean", "split", "tokenize", "finetune", "evaluate"):
        run_stage(stage, params, task="instruct", check=True)
    summary = json.loads((tmp_path / "models/instruct/train_summary.json").read_text())
    assert summary["method"] == "qlora" and summary["linear4bit_layers"] == 30 * 7 and summary["steps"] == 2
    log = json.loads((tmp_path / "models/instruct/train_log.json").read_text())
    assert all(math.isfinite(e["loss"]) for e in log if "loss" in e)
    assert any("eval_loss" in e for e in log)
    ev = json.loads((tmp_path / "metrics/instruct/eval.json").read_text())
    assert ev["method"] == "qlora" and ev["test"]["n_generated"] == 2 and math.isfinite(ev["test"]["loss"])
