"""Schema of the rag task (validated by Hydra and by every stage that reads params.yaml).

Vocabulary: a *corpus* is cleaned text (a file or folder, or SQuAD paragraphs); a *collection*
is a corpus cut by one chunking; an *embedding* is a collection encoded by one embedder (a DVC
output of its own, so it is computed once per (corpus, chunking, embedder)). The retrieve stage
scores every embedding with every similarity plus BM25 and the hybrid; the choose stage picks the
headline retriever (and top-k) on the *tuning* question set only; `run` can pin any of its fields.
The generator is fine-tuned on cited answers (RAFT: `raft`, `prompt`, `sft`, `peft`, `train`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pipelines.core.schema import (
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

SIMILARITIES = ("cosine", "euclidean", "dot")  # pipelines/rag/retrieve.py
POOLINGS = ("max", "mean", "first")


@dataclass
class CorpusSpec:
    path: str = ""  # a UTF-8 text/Markdown file or a folder of them, relative to data.root
    format: str = choice("text", "text", "squad")  # squad: SQuAD JSON, one document per paragraph


@dataclass
class QuestionSetSpec:
    corpus: str = ""
    # JSONL with id, question, evidence (verbatim strings; [] = not answerable from the corpus),
    # answer; relative to `root` (default data.root). format=squad takes the corpus file's own questions.
    file: str = ""
    root: Optional[str] = None
    format: str = choice("jsonl", "jsonl", "squad")
    limit: Optional[int] = bounded(None, ge=1)  # seeded sample
    generate: bool = True  # answer these questions with the generator (retrieval is always scored)
    generate_limit: Optional[int] = bounded(None, ge=1)  # seeded sample of the questions answered (CPU budget)
    # format=squad: the questions of these articles of data.squad_split (extractive_qa's article split)
    split: str = choice("all", "all", "train", "val", "test")
    # format=squad: ask each question with its own article removed from the corpus -> unanswerable
    without_own_article: bool = False
    # tune: used to choose the headline retriever (choose stage) and never reported as a result
    role: str = choice("test", "test", "tune")


@dataclass
class RagDataConfig:
    source: str = choice("local", "local")  # the corpora are files
    root: str = "../shared/data"
    corpora: Dict[str, CorpusSpec] = field(default_factory=dict)
    question_sets: Dict[str, QuestionSetSpec] = field(default_factory=dict)
    # titles per split of the SQuAD-es articles: extractive_qa's split, so the tuning/training articles
    # here are extractive_qa's training articles and its reader never saw the test ones
    squad_split: str = "data/extractive_qa/split_stats.json"


@dataclass
class CleanConfig:
    dehyphenate: bool = True  # "compro-\n bar" -> "comprobar"
    drop_furniture: bool = True  # man page header/footer lines
    collapse_dots: bool = True  # runs of 4+ dots -> "." (as the study); "..." is man syntax and stays
    furniture_patterns: List[str] = field(default_factory=list)  # extra regexes of lines to drop


@dataclass
class CollectionConfig:
    corpus: str = ""
    # words (sliding windows) | structure (sections/paragraphs, packed) | paragraph
    method: str = choice("words", "words", "structure", "paragraph")
    size: int = bounded(300, ge=1)  # words per chunk
    overlap: int = bounded(100, ge=0)  # < size; words shared by consecutive windows
    # retrieval reads "<section>: <chunk>" (BM25 and embeddings); answers and relevance use the chunk
    prefix_section: bool = False


@dataclass
class EmbedderConfig(ModelConfig):
    # E5 was trained with "query: " / "passage: " prefixes; every window of a chunk gets the passage prefix
    query_prefix: str = ""
    passage_prefix: str = ""


@dataclass
class EmbeddingSpec:
    collection: str = ""
    embedder: str = ""


@dataclass
class EmbedConfig:
    batch_size: int = bounded(16, ge=1)
    max_tokens: Optional[int] = bounded(None, ge=3)  # window length; None = the model's own max_seq_length
    window_stride: int = bounded(64, ge=0)  # tokens shared by consecutive windows of one chunk
    # bfloat16 autocast: mpnet 16x384 tokens 8.2 s -> 4.8 s on these CPUs (avx512_bf16); off by
    # default: not every CPU has it, and it changes the vectors slightly
    bf16: bool = False


@dataclass
class Bm25Config:
    stopwords: str = "es"  # bm25s stopword list ("es", "en", ...); "" = none
    stemmer: Optional[str] = "spanish"  # Snowball (PyStemmer); null = no stemming
    k1: float = bounded(1.5, ge=0.0)
    b: float = bounded(0.75, ge=0.0, le=1.0)
    method: str = choice("lucene", "robertson", "lucene", "atire", "bm25l", "bm25+")


@dataclass
class HybridConfig:
    method: str = choice("linear", "linear", "rrf")  # linear: alpha * minmax dense + (1 - alpha) * minmax BM25
    # dense weights compared in the grid (linear only); run.alpha picks the headline's
    alphas: List[float] = bounded(factory=lambda: [0.3, 0.5, 0.6, 0.7, 0.8, 0.9], ge=0.0, le=1.0)
    rrf_k: int = bounded(60, ge=0)


@dataclass
class RetrieveConfig:
    similarities: List[str] = choices(lambda: ["cosine", "euclidean", "dot"], *SIMILARITIES)
    # how a chunk's window scores become its score: max (best window), mean (mean vector),
    # first (first window only = plain truncation, what the encoder alone would see)
    poolings: List[str] = choices(lambda: ["max", "mean", "first"], *POOLINGS)
    pooling: str = choice("max", *POOLINGS)  # the one used by the hybrid and the headline run
    bm25: Bm25Config = field(default_factory=Bm25Config)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    ks: List[int] = bounded(factory=lambda: [1, 3, 5, 7, 10, 20], ge=1)
    keep: int = bounded(20, ge=1)  # ranked chunks stored per question and variant


@dataclass
class ChooseConfig:
    """How the headline retriever is chosen: on `tune_set` only (never a reported set)."""
    tune_set: str = "squad_tune"
    metric: str = "hit@5"  # ties: mrr@10
    # top-k: the smallest of `top_ks` whose tuning hit@k reaches `min_hit` (else the largest)
    top_ks: List[int] = bounded(factory=lambda: [3, 4, 5], ge=1)
    min_hit: float = bounded(0.9, ge=0.0, le=1.0)


@dataclass
class RunConfig:
    """The headline variant: eval.json's retrieval metrics and the chunks given to the generator.
    null = the choose stage's pick on the tuning set; a value pins that field (sweeps)."""
    # the chunking per corpus: fixed by config (there is no tuning set of bash questions to choose it on)
    collections: Dict[str, str] = field(default_factory=lambda: {"bash": "bash-w300", "squad_es": "squad-para"})
    embedder: Optional[str] = None
    similarity: Optional[str] = choice(None, *SIMILARITIES)
    retriever: Optional[str] = choice(None, "dense", "bm25", "hybrid")
    alpha: Optional[float] = bounded(None, ge=0.0, le=1.0)  # hybrid: weight of the dense score (one of retrieve.hybrid.alphas)
    top_k: Optional[int] = bounded(None, gt=0)  # chunks in the generator's prompt


@dataclass
class RagPromptConfig(PromptConfig):
    """One prompt for training (RAFT examples) and inference: numbered chunks, the question, rules."""
    system_prompt: str = (
        "Responde solo con la información de los fragmentos numerados y cita el fragmento que uses con su "
        "número entre corchetes, por ejemplo [2]. Si la respuesta no está en los fragmentos, responde exactamente: "
        "\"No encuentro esa información en los fragmentos.\"")
    user_template: str = "Fragmentos:\n{context}\n\nPregunta: {question}"
    chunk_template: str = "[{n}] ({section}) {text}"
    citation: str = "[{n}]"  # how an answer cites chunk n (answers are checked for "[n]")
    # the training target of an answerable question. Citation first: the first token then decides
    # "answer" ([) against "refuse" (No), instead of one refusal token against many answer openings
    # (answer first, greedy decoding refused 70% of answerable SQuAD-es test questions)
    answer_template: str = "{citation} {answer}."
    refusal: str = "No encuentro esa información en los fragmentos"
    # each chunk is shown as its `snippet_words`-word window that shares most words with the question
    # (0 = the chunk's first max_chunk_words words): a 300-word manual chunk fits a small model's budget
    snippet_words: int = bounded(50, ge=0)
    max_chunk_words: int = bounded(160, ge=0)  # snippet_words = 0: each chunk cut to this many words; 0 = whole


@dataclass
class RaftConfig:
    """Retrieval-augmented fine-tuning examples (pipelines/rag/raft.py) from SQuAD-es training articles."""
    corpus: str = "squad_es"
    collection: str = "squad-para"
    # distractors: the BM25 ranking (retrieve.bm25) over the training articles' paragraphs, computed in the
    # tokenize stage itself, so that the retrieval knobs (alpha, top-k, embedders) never re-train the generator
    k: int = bounded(3, ge=2)  # chunks per example prompt
    no_gold_share: float = bounded(0.25, ge=0.0, lt=1.0)  # share of examples with the gold removed -> refusal
    train_examples: int = bounded(240, ge=1)
    val_examples: int = bounded(24, ge=1)


@dataclass
class ReaderConfig:
    """The extractive reader baseline: extractive_qa's fine-tuned model (a DVC dep) reads the chunks."""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="me5-small"))  # its base (extractive_qa.model)
    final: str = "models/extractive_qa/final"
    max_length: int = bounded(256, ge=16)  # extractive_qa's features
    doc_stride: int = bounded(64, ge=0)
    max_answer_length: int = bounded(30, ge=1)
    batch_size: int = bounded(32, ge=1)
    # which chunk's span answers: null = the chunk whose no-answer (CLS) score is lowest (picked the
    # gold chunk 0.84 of the time on 100 val-article questions; span logits 0.62: they sit at 3-4.5 anywhere)
    rank_by: str = choice("null", "null", "span", "span_minus_null")
    # the refusal threshold on that score: chosen on this many questions of each tuning set
    tune_questions: int = bounded(100, ge=1)


@dataclass
class RagGenerateConfig:
    # answers: raft (the fine-tuned generator), prompted (the same base model, not fine-tuned),
    # reader (the fine-tuned extractive_qa model reading the chunks); one DVC stage each
    systems: List[str] = choices(lambda: ["raft", "prompted", "reader"], "raft", "prompted", "reader")
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_new_tokens=40, batch_size=8))
    reader: ReaderConfig = field(default_factory=ReaderConfig)


@dataclass
class RagConfig:
    task: TaskInfo = field(default_factory=lambda: TaskInfo(name="rag"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: RagDataConfig = field(default_factory=RagDataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    collections: Dict[str, CollectionConfig] = field(default_factory=dict)
    embedders: Dict[str, EmbedderConfig] = field(default_factory=dict)
    # which (collection, embedder) pairs get embedded (one DVC stage each, named by the key)
    embeddings: Dict[str, EmbeddingSpec] = field(default_factory=dict)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    run: RunConfig = field(default_factory=RunConfig)
    choose: ChooseConfig = field(default_factory=ChooseConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="smollm2-135m"))  # the generator
    prompt: RagPromptConfig = field(default_factory=RagPromptConfig)
    raft: RaftConfig = field(default_factory=RaftConfig)
    sft: SftConfig = field(default_factory=lambda: SftConfig(max_length=768))
    peft: PeftConfig = field(default_factory=lambda: PeftConfig(targets="qkvo", r=16, lora_alpha=32))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        metric_for_best="eval_loss", epochs=1.0, max_steps=-1, learning_rate=1e-3, batch_size=4, eval_batch_size=8,
        warmup_ratio=0.05, eval_strategy="steps", eval_steps=30, weight_decay=0.0, logging_steps=5,
        early_stopping_patience=2, bf16=True))
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    generate: RagGenerateConfig = field(default_factory=RagGenerateConfig)
    evaluate: Dict[str, int] = bounded(factory=lambda: {"n_examples": 5}, ge=0)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # restricts a fan-out stage (chunk: a collection, embed: an embedding) to one named item;
    # dvc.yaml sets it per stage with `--set select=<name>`, unset = all items
    select: Optional[str] = None
