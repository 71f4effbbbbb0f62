"""Structured-config schema shared by every task, split by concern (axolotl-style).

Hydra validates every composed config against these dataclasses, and stages validate the
`params.yaml` block they read against the same classes: a typo'd key or a wrong type fails
at start with a message naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


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
    source: str = "package"  # package | hub | path
    hub_id: str = ""  # source=hub: the hub repo name
    path: str = ""  # source=path: a local directory
    revision: str = "main"
    trust_remote_code: bool = False
    dtype: str = "float32"
    # Architecture facts used only by dry runs when the hub cannot be reached: enough to
    # build the model on the meta device, count parameters and estimate memory.
    arch: Dict[str, Any] = field(default_factory=dict)
    # Optional 4-bit quantisation (QLoRA); kept with the model since it is how it is loaded.
    quantization: Optional[Dict[str, Any]] = None


@dataclass
class PeftConfig:
    method: str = "lora"  # lora | qlora | full (no adapter)
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # named preset mapped per architecture (qv, qkv, qkvo, all-linear) ...
    targets: str = "qkv"
    # ... or explicit module names, which win over the preset
    target_modules: Optional[List[str]] = None
    bias: str = "none"  # none | all | lora_only
    # None = PEFT's task default (the classification head for sequence classification)
    modules_to_save: Optional[List[str]] = None
    # adapt only the last N transformer blocks (PEFT layers_to_transform); backward then stops
    # there. SmolLM2, 4x520 tokens: 4.4 s/step with the top 10 of 30 blocks vs 8.1 s with all.
    top_layers: Optional[int] = None


@dataclass
class TrainConfig:
    epochs: float = 3.0
    max_steps: int = -1  # >0 overrides epochs (tiny-budget runs)
    learning_rate: float = 5e-4
    batch_size: int = 16
    eval_batch_size: int = 64
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    scheduler: str = "linear"
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    eval_strategy: str = "epoch"  # epoch | steps | no
    eval_steps: int = 50
    save_total_limit: int = 2
    # length-sorted batches: same padding savings as the DESIGN-NOTES measurement (~5x)
    group_by_length: bool = True
    # select the checkpoint with the best validation metric rather than the last one
    load_best: bool = True
    metric_for_best: str = "eval_macro_f1"
    early_stopping_patience: int = 0  # 0 = off
    # bfloat16 autocast (weights stay float32). On these CPUs (avx512_bf16) a MiniLM QA
    # step at 256 tokens took 1.28 s instead of 2.10 s; off by default: not every CPU has it.
    bf16: bool = False
    # Override the model's attention-probability dropout (None = the model's own). With
    # dropout > 0, CPU attention leaves its fused kernel: a MiniLM step on 16x384 tokens took
    # 6.8 s with BERT's 0.1 and 2.35 s with 0.0 (hidden-layer dropout is unaffected).
    attention_dropout: Optional[float] = None
    # processes per node for launcher=torchrun/accelerate_*; batch_size stays the global batch per
    # optimizer step (each process takes batch_size / world size), so scaling out keeps the recipe
    nproc: int = 1
    dry_run: bool = False


@dataclass
class LauncherConfig:
    """How `finetune` is launched (pipelines/core/launch.py). The stage re-executes itself under
    the launcher, so `dvc repro`, `dvc exp run` and Hydra runs use it unchanged."""
    name: str = "local"  # local | torchrun | accelerate
    backend: str = "auto"  # torch.distributed backend; auto = gloo on CPU, nccl on GPU
    nnodes: int = 1
    rdzv_endpoint: str = ""  # host:port of node 0 when nnodes > 1 (torchrun --rdzv-endpoint)
    # launcher=accelerate: the body of an `accelerate config` file (distributed_type, fsdp_config,
    # deepspeed_config, mixed_precision ...); num_processes comes from train.nproc x nnodes
    accelerate: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    backend: str = "wandb"  # wandb | none
    mode: str = "offline"  # offline (default: no network) | disabled | online
    project: str = "tunedag"
    entity: Optional[str] = None
    group: str = "${task.name}"  # one group per experiment
    dir: str = "wandb_runs"
    tags: List[str] = field(default_factory=list)


@dataclass
class RuntimeConfig:
    seed: int = 42
    # torch intra-op threads per stage, set before torch is imported. Measured on the 2-core
    # machines (bench/threads.py): small encoders train fastest with 1 thread.
    threads: Dict[str, int] = field(default_factory=lambda: {"default": 1})


@dataclass
class PromptConfig:
    """How a causal-LM example becomes a prompt + completion (pipelines/core/sft.py)."""
    # alpaca ("### Instruction: ... ### Response:"), chat (the tokenizer's own chat template),
    # phi3 ("<|user|> ... <|end|> <|assistant|>"). Evaluation uses the format used in training.
    format: str = "chat"
    system_prompt: str = ""  # chat/phi3 system turn; alpaca keeps its own preamble
    # False = prompt masking: prompt tokens get label -100 and only the response is learned
    train_on_inputs: bool = False


@dataclass
class SftConfig:
    """Causal-LM supervised fine-tuning knobs that the encoder tasks do not have."""
    max_length: int = 512  # prompt + completion tokens; longer examples are dropped and counted
    packing: bool = False  # TRL packing (several examples per row)
    gradient_checkpointing: bool = False  # trades ~30% compute for activation memory (GPU setups)
    # When the tokenizer has no pad token or pads with EOS, use a distinct one, so EOS stays a
    # token the model is taught to emit (and pads never look like the end of a reply).
    distinct_pad_token: bool = True


@dataclass
class GenerationConfig:
    max_new_tokens: int = 128
    batch_size: int = 8
    do_sample: bool = False  # greedy: reproducible metrics
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    # 0 = off; n > 0 forbids repeating any n-token sequence in a reply (small models loop under greedy
    # decoding; a large n still lets fixed phrases such as "¿Verdadero o falso?" recur)
    no_repeat_ngram_size: int = 0
    max_examples: Optional[int] = None  # seeded sample of the inputs (generation is the slow part)
    # weights used for generation (a cast copy; losses are still computed in model.dtype). None = the
    # model's own. bfloat16: greedy decoding ~1.6x faster on this CPU (avx512_bf16); 4-bit models stay as they are
    dtype: Optional[str] = None
