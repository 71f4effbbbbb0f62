"""Schema of the sentiment task (validated by Hydra and by every stage that reads params.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

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
class LangFilter:
    enabled: bool = True
    keep: List[str] = field(default_factory=lambda: ["en"])
    # Restrict py3langid to languages that plausibly occur in the data: with all 97 of its
    # languages, short English reviews ("good", "nice") come out as Afrikaans or Somali.
    candidates: Optional[List[str]] = field(default_factory=lambda: [  # None = all of py3langid's
        "en", "ru", "es", "pt", "de", "fr", "pl", "tr", "zh", "ja", "ko", "id", "tl", "uk", "it", "th", "vi", "cs",
        "hu", "nl", "sv", "fi", "ro", "ms", "ar"])
    # Reviews with at most this many words are kept when they are pure ASCII letters/punct:
    # language ID is unreliable there, and dropping them biases the data towards long texts.
    short_ascii_max_words: int = bounded(2, ge=0)


@dataclass
class CleanConfig:
    min_chars: int = bounded(2, ge=0)
    dedup: bool = True
    lang: LangFilter = field(default_factory=LangFilter)
    balance: bool = True  # downsample every class to the smallest one, as in the study
    max_per_class: Optional[int] = bounded(None, ge=1)


@dataclass
class SplitConfig:
    val: float = bounded(0.1, **SHARE)
    test: float = bounded(0.2, **SHARE)


@dataclass
class DataConfig:
    source: str = choice("local", "local", "hub")
    root: str = "../shared/data"
    file: str = "steam_reviews.csv"
    hub_name: str = ""  # datasets.load_dataset name when source=hub
    hub_split: str = "train"
    text_field: str = "review"
    label_field: str = "voted_up"
    labels: List[str] = field(default_factory=lambda: ["negative", "positive"])
    limit: Optional[int] = bounded(None, ge=1)  # subsample after cleaning (tiny-budget runs); null = all
    clean: CleanConfig = field(default_factory=CleanConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    max_length: int = bounded(256, ge=1)  # truncation length at tokenize time (no padding to it)


@dataclass
class EvaluateConfig:
    batch_size: int = bounded(64, ge=1)
    # extra labelled JSONL files ({review, label}), each reported separately
    extra_sets: List[str] = field(default_factory=lambda: ["pipelines/sentiment/probe_reviews.jsonl"])


@dataclass
class PromptingConfig:
    enabled: bool = True
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="smollm2-135m"))
    shots: List[int] = bounded(factory=lambda: [0, 4], ge=0)  # 0 = zero-shot, k = few-shot
    # scored by comparing the model's likelihood of each label word, not by parsing text
    label_words: List[str] = field(default_factory=lambda: ["negative", "positive"])
    max_examples: Optional[int] = bounded(None, ge=1)  # cap on test examples (tiny-budget runs)
    max_review_chars: int = bounded(600, ge=1)
    batch_size: int = bounded(8, ge=1)


@dataclass
class TfidfConfig:
    enabled: bool = True
    C: float = bounded(4.0, gt=0.0)
    word_ngrams: List[int] = bounded(factory=lambda: [1, 2], ge=1)  # (min n, max n)
    char_ngrams: List[int] = bounded(factory=lambda: [2, 5], ge=1)


@dataclass
class BaselinesConfig:
    prompting: PromptingConfig = field(default_factory=PromptingConfig)
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)


@dataclass
class ReportConfig:
    n_examples: int = bounded(8, ge=0)


@dataclass
class SentimentConfig:
    task: TaskInfo = field(default_factory=lambda: TaskInfo(name="sentiment"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="minilm"))
    peft: PeftConfig = field(default_factory=PeftConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
