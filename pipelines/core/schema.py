"""Structured-config schema shared by every task, split by concern (axolotl-style).

Hydra validates every composed config against these dataclasses, and stages validate the
`params.yaml` block they read against the same classes: a typo'd key or a wrong type fails
at start with a message naming the key.

The dataclasses are the one source of defaults and allowed values: `choice(...)` and
`bounded(...)` declare a field's words or range next to it (as dataclass field metadata, which
OmegaConf ignores); `pipelines.core.config.validate` checks them on every config a stage loads.
A constraint on a list or dict field applies to each element / value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

CHECK = "tunedag_check"  # the field-metadata key holding a field's constraint


@dataclass(frozen=True)
class Choice:
    allowed: tuple

    def problem(self, value: Any) -> str | None:
        if value in self.allowed:
            return None
        hint = ""
        # a YAML 1.1 boolean (no/off/yes/on) that OmegaConf already turned into the string "False"/"True"
        if value in ("True", "False") and (words := [a for a in self.allowed if a in YAML11_BOOLS]):
            hint = f" ({yaml_bool_hint(words)})"
        return f"{value!r} is not one of {', '.join(map(str, self.allowed))}{hint}"


@dataclass(frozen=True)
class Bounds:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        parts = [f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if v is not None]
        return " and ".join(parts)

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # a wrong type is OmegaConf's error
        ok = (math.isfinite(value)
              and (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
              and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        return None if ok else f"must be {self.describe() or 'finite'}, got {value}"


YAML11_BOOLS = ("no", "yes", "on", "off")  # what PyYAML (YAML 1.1) resolves to booleans besides true/false


def yaml_bool_hint(words: list[str] | None = None) -> str:
    quoted = f': quote it, "{words[0]}"' if words else ": quote it"
    return f"YAML reads no/off/yes/on as booleans{quoted}"


def choice(default: Any, *allowed: Any) -> Any:
    """A field whose value must be one of `allowed` (None passes for an Optional field)."""
    assert default is None or default in allowed, (default, allowed)
    return field(default=default, metadata={CHECK: Choice(tuple(allowed))})


def choices(default_factory, *allowed: Any) -> Any:
    """A list field each of whose elements must be one of `allowed`."""
    return field(default_factory=default_factory, metadata={CHECK: Choice(tuple(allowed))})


def bounded(default: Any = None, *, factory=None, ge=None, gt=None, le=None, lt=None) -> Any:
    """A numeric field (or list/dict of numbers, from `factory`) in a range; always finite (NaN and
    inf fail). None passes: for an Optional field it means "not set"."""
    meta = {CHECK: Bounds(ge, gt, le, lt)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


SHARE = dict(ge=0.0, lt=1.0)  # a split share
DTYPES = ("float32", "bfloat16", "float16", "float64")  # torch dtypes a model may be loaded in
# transformers.SchedulerType values (lr_scheduler_type)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
PROMPT_FORMATS = ("alpaca", "chat", "phi3")  # pipelines/core/sft.py


@dataclass
class TaskInfo:
    name: str = MISSING
    description: str = ""


@dataclass
class PathsConfig:
    # `root` is where this run's task outputs go: "." for `dvc repro`, a run directory for
    # Hydra runs/multiruns (so a sweep never overwrites the DVC-tracked default outputs).
    root: str = "."
    data: str = "data/${task.name}"
    models: str = "models/${task.name}"
    metrics: str = "metrics/${task.name}"
    reports: str = "reports/${task.name}"
    # packaged base models are materialised once per project, shared by all tasks and runs
    base_models: str = "models/base"


@dataclass
class ModelConfig:
    # key: registry name; for source=package it alone identifies the weights (see
    # pipelines/core/models.py), so `-S <task>.model.key=...` switches models in a DVC sweep.
    key: str = MISSING
    source: str = choice("package", "package", "hub", "path")
    hub_id: str = ""  # source=hub: the hub repo name
    path: str = ""  # source=path: a local directory
    revision: str = "main"
    trust_remote_code: bool = False
    dtype: str = choice("float32", *DTYPES)
    # Architecture facts used only by dry runs when the hub cannot be reached: enough to
    # build the model on the meta device, count parameters and estimate memory.
    arch: Dict[str, Any] = field(default_factory=dict)
    # Optional 4-bit quantisation (QLoRA); kept with the model since it is how it is loaded.
    quantization: Optional[Dict[str, Any]] = None


@dataclass
class PeftConfig:
    method: str = choice("lora", "lora", "qlora", "full")  # full: no adapter
    r: int = bounded(8, ge=1)
    lora_alpha: int = bounded(16, gt=0)
    lora_dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    # named preset mapped per architecture (qv, qkv, qkvo, all-linear) ...
    targets: str = choice("qkv", "qv", "qkv", "qkvo", "all-linear")
    # ... or explicit module names, which win over the preset
    target_modules: Optional[List[str]] = None
    bias: str = choice("none", "none", "all", "lora_only")
    # None = PEFT's task default (the classification head for sequence classification)
    modules_to_save: Optional[List[str]] = None
    # adapt only the last N transformer blocks (PEFT layers_to_transform); backward then stops
    # there. SmolLM2, 4x520 tokens: 4.4 s/step with the top 10 of 30 blocks vs 8.1 s with all.
    top_layers: Optional[int] = bounded(None, ge=1)


@dataclass
class TrainConfig:
    """Defaults = conf/train/encoder_cpu.yaml (sentiment's); each task schema sets its own preset's
    values in its `train` default (tests/test_schema_validation.py holds them equal to conf/)."""
    epochs: float = bounded(4.0, ge=0.0)  # 0 only with max_steps > 0 (else nothing is trained)
    max_steps: int = bounded(-1, ge=-1)  # >0 overrides epochs (tiny-budget runs)
    learning_rate: float = bounded(1e-3, gt=0.0)
    batch_size: int = bounded(16, ge=1)
    eval_batch_size: int = bounded(64, ge=1)
    grad_accum: int = bounded(1, ge=1)
    weight_decay: float = bounded(0.01, ge=0.0)
    warmup_ratio: float = bounded(0.06, ge=0.0, le=1.0)
    scheduler: str = choice("linear", *SCHEDULERS)
    max_grad_norm: float = bounded(1.0, ge=0.0)  # 0 = no clipping
    logging_steps: int = bounded(10, ge=1)
    eval_strategy: str = choice("epoch", "epoch", "steps", "no")
    eval_steps: int = bounded(50, ge=1)
    save_total_limit: int = bounded(2, ge=1)
    # length-sorted batches: same padding savings as the DESIGN-NOTES measurement (~5x)
    group_by_length: bool = True
    # select the checkpoint with the best validation metric rather than the last one
    load_best: bool = True
    metric_for_best: str = "eval_macro_f1"
    early_stopping_patience: int = bounded(0, ge=0)  # 0 = off
    # bfloat16 autocast (weights stay float32). On these CPUs (avx512_bf16) a MiniLM QA
    # step at 256 tokens took 1.28 s instead of 2.10 s; off by default: not every CPU has it.
    bf16: bool = False
    # Override the model's attention-probability dropout (None = the model's own). With
    # dropout > 0, CPU attention leaves its fused kernel: a MiniLM step on 16x384 tokens took
    # 6.8 s with BERT's 0.1 and 2.35 s with 0.0 (hidden-layer dropout is unaffected).
    attention_dropout: Optional[float] = bounded(None, ge=0.0, lt=1.0)
    # processes per node for launcher=torchrun/accelerate_*; batch_size stays the global batch per
    # optimizer step (each process takes batch_size / world size), so scaling out keeps the recipe
    nproc: int = bounded(1, ge=1)
    dry_run: bool = False


@dataclass
class LauncherConfig:
    """How `finetune` is launched (pipelines/core/launch.py). The stage re-executes itself under
    the launcher, so `dvc repro`, `dvc exp run` and Hydra runs use it unchanged."""
    name: str = choice("local", "local", "torchrun", "accelerate")
    # torch.distributed backend (TrainingArguments.ddp_backend); auto = gloo on CPU, nccl on GPU
    backend: str = choice("auto", "auto", "gloo", "nccl", "mpi", "ccl", "hccl", "cncl", "mccl")
    nnodes: int = bounded(1, ge=1)
    rdzv_endpoint: str = ""  # host:port of node 0 when nnodes > 1 (torchrun --rdzv-endpoint)
    # launcher=accelerate: the body of an `accelerate config` file (distributed_type, fsdp_config,
    # deepspeed_config, mixed_precision ...); num_processes comes from train.nproc x nnodes
    accelerate: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    # checked at load, so that a typo fails at start (not after a stage has written its outputs and
    # only then starts tracking)
    backend: str = choice("wandb", "wandb", "none")
    mode: str = choice("offline", "offline", "online", "disabled")  # offline (default): no network
    project: str = "tunedag"
    entity: Optional[str] = None
    group: str = "${task.name}"  # one group per experiment
    dir: str = "wandb_runs"
    tags: List[str] = field(default_factory=list)


@dataclass
class RuntimeConfig:
    seed: int = bounded(42, ge=0, lt=2**32)  # numpy seeds are 32-bit
    # torch intra-op threads per stage, set before torch is imported. Measured on the 2-core
    # machines (bench/threads.py): small encoders train fastest with 1 thread.
    threads: Dict[str, int] = bounded(factory=lambda: {"default": 2}, ge=1)


@dataclass
class PromptConfig:
    """How a causal-LM example becomes a prompt + completion (pipelines/core/sft.py)."""
    # alpaca ("### Instruction: ... ### Response:"), chat (the tokenizer's own chat template),
    # phi3 ("<|user|> ... <|end|> <|assistant|>"). Evaluation uses the format used in training.
    format: str = choice("chat", *PROMPT_FORMATS)
    system_prompt: str = ""  # chat/phi3 system turn; alpaca keeps its own preamble
    # False = prompt masking: prompt tokens get label -100 and only the response is learned
    train_on_inputs: bool = False


@dataclass
class SftConfig:
    """Causal-LM supervised fine-tuning knobs that the encoder tasks do not have."""
    max_length: int = bounded(512, ge=1)  # prompt + completion tokens; longer examples are dropped and counted
    packing: bool = False  # TRL packing (several examples per row)
    gradient_checkpointing: bool = False  # trades ~30% compute for activation memory (GPU setups)
    # When the tokenizer has no pad token or pads with EOS, use a distinct one, so EOS stays a
    # token the model is taught to emit (and pads never look like the end of a reply).
    distinct_pad_token: bool = True


@dataclass
class GenerationConfig:
    max_new_tokens: int = bounded(128, ge=1)
    batch_size: int = bounded(8, ge=1)
    do_sample: bool = False  # greedy: reproducible metrics
    temperature: float = bounded(1.0, gt=0.0)
    top_p: float = bounded(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = bounded(1.0, gt=0.0)
    # 0 = off; n > 0 forbids repeating any n-token sequence in a reply (small models loop under greedy
    # decoding; a large n still lets fixed phrases such as "¿Verdadero o falso?" recur)
    no_repeat_ngram_size: int = bounded(0, ge=0)
    max_examples: Optional[int] = bounded(None, ge=1)  # seeded sample of the inputs (generation is the slow part)
    # weights used for generation (a cast copy; losses are still computed in model.dtype). None = the
    # model's own. bfloat16: greedy decoding ~1.6x faster on this CPU (avx512_bf16); 4-bit models stay as they are
    dtype: Optional[str] = choice(None, *DTYPES)
