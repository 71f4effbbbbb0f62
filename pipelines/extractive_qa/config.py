"""Schema of the extractive_qa task (validated by Hydra and by every stage that reads params.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pipelines.core.schema import (
    SHARE,
    LauncherConfig,
    ModelConfig,
    PathsConfig,
    PeftConfig,
    RuntimeConfig,
    TaskInfo,
    TrackingConfig,
    TrainConfig,
    bounded,
    choice,
)


@dataclass
class QaCleanConfig:
    # An answer whose text is not at its answer_start but occurs within this many characters
    # of it gets its offset repaired (nearest occurrence); farther away it is dropped.
    repair_window: int = bounded(50, ge=0)
    # " Denver Broncos " -> "Denver Broncos" with answer_start moved accordingly
    strip_answers: bool = True


@dataclass
class QaSplitConfig:
    # shares of questions; whole articles (titles) go to one split, so no test paragraph is seen
    val: float = bounded(0.1, **SHARE)
    test: float = bounded(0.2, **SHARE)


@dataclass
class QaDataConfig:
    source: str = choice("local", "local", "hub")
    root: str = "../shared/data"
    file: str = "squad_es_v1.1_dev_small.json"
    hub_name: str = ""  # datasets.load_dataset name when source=hub (squad, squad_v2, ...)
    hub_config: Optional[str] = None
    hub_split: str = "validation"  # any datasets split expression, e.g. "train+validation"
    format: str = choice("auto", "auto", "v1", "v2")  # (v2: questions without answers are kept as impossible)
    limit: Optional[int] = bounded(None, ge=1)  # max questions per split after splitting (tiny-budget runs)
    clean: QaCleanConfig = field(default_factory=QaCleanConfig)
    split: QaSplitConfig = field(default_factory=QaSplitConfig)
    # tokenisation: SQuAD-es (data=squad_es, the default); data=squad / sqac set HF run_qa.py's 384 / 128
    max_length: int = bounded(256, ge=1)
    doc_stride: int = bounded(64, ge=0)  # tokens shared by consecutive windows of a long context
    max_query_length: int = bounded(64, ge=1)  # longer questions are cut (they would leave no room for context)


@dataclass
class NormalisationConfig:
    articles: List[str] = field(default_factory=lambda: ["a", "an", "the"])
    extra_punctuation: str = ""


@dataclass
class QaEvaluateConfig:
    batch_size: int = bounded(64, ge=1)
    n_best: int = bounded(20, ge=1)  # candidate spans kept per example
    max_answer_length: int = bounded(30, ge=1)  # tokens
    # SQuAD v2: predict "" when null score - best span score exceeds this
    null_score_diff_threshold: float = 0.0
    # EM/F1 are reported under every normalisation; `primary` is the headline number
    normalisation: Dict[str, NormalisationConfig] = field(default_factory=lambda: {
        "official": NormalisationConfig(),
        "es": NormalisationConfig(articles=["el", "la", "los", "las", "un", "una", "unos", "unas"],
                                  extra_punctuation="¿¡«»“”‘’"),
    })
    primary: str = "official"


@dataclass
class UntrainedBaselineConfig:
    # the same encoder before fine-tuning (pretrained body, freshly initialised span head)
    enabled: bool = True
    # a seeded sample: its F1 (~8 for me5-small, ~6 for MiniLM) needs no more precision
    max_examples: Optional[int] = bounded(200, ge=1)


@dataclass
class GenerativeBaselineConfig:
    enabled: bool = True
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="smollm2-135m"))
    # a seeded sample of the test split (generation is the slow part of the task on a CPU);
    # the report scores the fine-tuned model on the same sample
    max_examples: Optional[int] = bounded(48, ge=1)  # ~1 s per question on 2 cores
    max_new_tokens: int = bounded(24, ge=1)
    max_context_chars: int = bounded(2000, ge=1)
    batch_size: int = bounded(8, ge=1)
    system_prompt: str = ("Eres un sistema de comprensión lectora. Responde a la pregunta con el fragmento "
                          "exacto del texto que la contesta, lo más breve posible, sin explicaciones.")
    user_template: str = "Texto: {context}\n\nPregunta: {question}\n\nRespuesta (fragmento del texto):"


@dataclass
class QaBaselinesConfig:
    untrained: UntrainedBaselineConfig = field(default_factory=UntrainedBaselineConfig)
    generative: GenerativeBaselineConfig = field(default_factory=GenerativeBaselineConfig)


@dataclass
class QaReportConfig:
    n_examples: int = bounded(10, ge=0)


@dataclass
class QaPeftConfig(PeftConfig):
    # full fine-tuning: keep the input word embeddings fixed (LoRA leaves every base weight fixed anyway).
    # A multilingual vocabulary is most
    # of a small encoder (me5-small: 96M of 118M parameters); a few thousand questions touch few of
    # its rows, and AdamW would still update all of them every step
    freeze_embeddings: bool = False


@dataclass
class ExtractiveQaConfig:
    task: TaskInfo = field(default_factory=lambda: TaskInfo(name="extractive_qa"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: QaDataConfig = field(default_factory=QaDataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="me5-small"))
    peft: QaPeftConfig = field(default_factory=lambda: QaPeftConfig(method="full", freeze_embeddings=True))
    # conf/train/qa_cpu.yaml's values for the keys every train option sets (a key some option leaves
    # out keeps TrainConfig's default: it is what that option gets)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        metric_for_best="eval_f1", epochs=1.0, learning_rate=2e-4, warmup_ratio=0.1, eval_strategy="steps"))
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    evaluate: QaEvaluateConfig = field(default_factory=QaEvaluateConfig)
    baselines: QaBaselinesConfig = field(default_factory=QaBaselinesConfig)
    report: QaReportConfig = field(default_factory=QaReportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
