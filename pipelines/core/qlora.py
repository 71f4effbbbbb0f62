"""QLoRA plumbing: 4-bit NF4 base weights (bitsandbytes) under LoRA adapters, CPU included.

`bnb_config` turns the `model.quantization` block into a BitsAndBytesConfig, rejecting unknown
keys (transformers would only warn and ignore them). `disable_cpu_bf16_fastpath` must run on
every 4-bit model that is both evaluated and trained: see its docstring.
"""
from __future__ import annotations

import inspect
from typing import Any

from .errors import PipelineError

DTYPE_KEYS = ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage")


def _dtype(key: str, value: Any):
    import torch

    if value is None or isinstance(value, torch.dtype):
        return value
    dtype = getattr(torch, str(value), None)
    if not isinstance(dtype, torch.dtype):
        raise PipelineError(f"model.quantization.{key}: {value!r} is not a torch dtype (e.g. bfloat16, float32)")
    return dtype


def bnb_config(q: dict[str, Any]):
    """BitsAndBytesConfig from a quantisation dict; dtypes may be given by name ("bfloat16")."""
    from transformers import BitsAndBytesConfig

    known = [p for p in inspect.signature(BitsAndBytesConfig.__init__).parameters if p not in ("self", "kwargs")]
    kw: dict[str, Any] = {}
    for key, value in q.items():
        if key not in known:
            raise PipelineError(f"model.quantization.{key}: unknown key (expected one of {', '.join(known)})")
        kw[key] = _dtype(key, value) if key in DTYPE_KEYS else value
    try:
        return BitsAndBytesConfig(**kw)
    except (TypeError, ValueError) as e:  # e.g. both 4- and 8-bit, a bad quant type
        raise PipelineError(f"model.quantization: {str(e).splitlines()[0]}") from e


def load_quantized_causal_lm(path: str, q: dict[str, Any], dtype, gradient_checkpointing: bool, **kw):
    """A 4-bit causal LM ready for k-bit training (frozen base, fp32 norms, optional checkpointing)."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb_config(q), dtype=dtype, **kw)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    disable_cpu_bf16_fastpath(model)
    return model


def disable_cpu_bf16_fastpath(model) -> int:
    """Turn off bitsandbytes' CPU AVX512-BF16 inference path on every Linear4bit; returns their count.

    On such CPUs a no-grad eval-mode forward repacks each 4-bit weight in place for a fused
    kernel that has no autograd; later training forwards reuse the packed weight, so no gradient
    flows back through the frozen base layers and the LoRA gradients of all but the last layers
    are wrong. Call after building the model and again after get_peft_model (PEFT keeps the
    original Linear4bit as `base_layer`, which model.modules() also visits). Weights already
    packed by an earlier eval pass are unpacked again.
    """
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            weight = module.weight
            if getattr(weight.quant_state, "packing_format_for_cpu", False):
                weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, weight.quant_state)
                module.quant_state = weight.quant_state
            n += 1
    return n
