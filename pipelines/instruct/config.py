"""Schema of the instruct task (validated by Hydra and by every stage that reads params.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pipelines.core.schema import (
    SHARE,
    GenerationConfig,
    LauncherConfig,
    ModelConfig,
    PathsConfig,
    PeftConfig,
    PromptConfig,
    RuntimeConfig,
    SftConfig,
    TaskInfo,
    TrackingConfig,
    TrainConfig,
    bounded,
    choice,
)


@dataclass
class InstructSplitConfig:
    # shares of examples (seeded shuffle); the study this comes from used 85/10/5 train/test/val
    val: float = bounded(0.05, **SHARE)
    test: float = bounded(0.10, **SHARE)


@dataclass
class InstructDataConfig:
    source: str = choice("local", "local", "hub")
    root: str = "../shared/data"
    file: str = "instructions_en_1100.json"  # a JSON list of {instruction, input, output}
    hub_name: str = ""  # e.g. yahma/alpaca-cleaned (source=hub)
    hub_config: Optional[str] = None
    hub_split: str = "train"
    limit: Optional[int] = bounded(None, ge=1)  # max examples per split after splitting (tiny-budget runs); null = all
    split: InstructSplitConfig = field(default_factory=InstructSplitConfig)


@dataclass
class InstructEvaluateConfig:
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(
        max_new_tokens=64, max_examples=48, batch_size=16, dtype="bfloat16"))
    n_examples: int = bounded(6, ge=0)  # shown in the report


@dataclass
class InstructConfig:
    task: TaskInfo = field(default_factory=lambda: TaskInfo(name="instruct"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: InstructDataConfig = field(default_factory=InstructDataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="smollm2-135m"))
    prompt: PromptConfig = field(default_factory=lambda: PromptConfig(format="alpaca"))
    sft: SftConfig = field(default_factory=SftConfig)
    peft: PeftConfig = field(default_factory=lambda: PeftConfig(targets="qkvo"))
    # conf/task/instruct.yaml, and conf/train/sft_cpu.yaml's values for the keys every train option sets
    # (a key some option leaves out keeps TrainConfig's default: it is what that option gets)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        metric_for_best="eval_loss", epochs=1.0, max_steps=30, learning_rate=5e-4, batch_size=8, eval_batch_size=16,
        warmup_ratio=0.05, eval_strategy="steps", eval_steps=15))
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    evaluate: InstructEvaluateConfig = field(default_factory=InstructEvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
