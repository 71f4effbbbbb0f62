"""Schema of the rag task (validated by Hydra and by every stage that reads params.yaml).

Vocabulary: a *corpus* is cleaned text (a file or folder, or SQuAD paragraphs); a *collection*
is a corpus cut by one chunking; an *embedding* is a collection encoded by one embedder (a DVC
output of its own, so it is computed once per (corpus, chunking, embedder)). The retrieve stage
scores every embedding with every similarity plus BM25 and the hybrid; `run` picks the one
variant whose top-k chunks the generator answers from (the experiment's headline metrics).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from pipelines.core.schema import (
    PROMPT_FORMATS,
    GenerationConfig,
    ModelConfig,
    PathsConfig,
    RuntimeConfig,
    TaskInfo,
    TrackingConfig,
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


@dataclass
class RagDataConfig:
    source: str = choice("local", "local")  # the corpora are files
    root: str = "../shared/data"
    corpora: Dict[str, CorpusSpec] = field(default_factory=dict)
    question_sets: Dict[str, QuestionSetSpec] = field(default_factory=dict)


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
    alphas: List[float] = bounded(factory=lambda: [0.3, 0.5, 0.7], ge=0.0, le=1.0)
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
class RunConfig:
    """The headline variant: eval.json's retrieval metrics and the chunks given to the generator."""
    collection: str = "bash-w500"
    embedder: str = "mpnet"
    similarity: str = choice("cosine", *SIMILARITIES)
    retriever: str = choice("hybrid", "dense", "bm25", "hybrid")
    alpha: float = bounded(0.5, ge=0.0, le=1.0)  # hybrid: weight of the dense score (one of retrieve.hybrid.alphas)
    top_k: int = bounded(3, gt=0)  # chunks in the generator's prompt (the study: 7 / 10 / 20 with larger models)


@dataclass
class RagPromptConfig:
    format: str = choice("chat", *PROMPT_FORMATS)  # chat: the generator's chat template
    system_prompt: str = (
        "Eres un asistente que responde preguntas sobre el manual de Bash. Responde solo con la información "
        "de los fragmentos numerados y cita los fragmentos que uses con su número entre corchetes, por ejemplo [2]. "
        "Si la respuesta no está en los fragmentos, responde exactamente: "
        "\"No encuentro esa información en los fragmentos.\"")
    user_template: str = "Fragmentos:\n{context}\n\nPregunta: {question}"
    chunk_template: str = "[{n}] ({section}) {text}"
    refusal: str = "No encuentro esa información en los fragmentos"
    max_chunk_words: int = bounded(160, ge=0)  # each chunk cut to this many words in the prompt (CPU budget); 0 = whole


@dataclass
class RagGenerateConfig:
    prompt: RagPromptConfig = field(default_factory=RagPromptConfig)
    # 48 answers x 64 tokens from ~1,150-token prompts: ~4 min with SmolLM2 on 2 cores
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_new_tokens=64, batch_size=4))


@dataclass
class RagTrainConfig:
    dry_run: bool = False  # print the plan (corpora, grid, models) without loading weights


@dataclass
class RagConfig:
    task: TaskInfo = field(default_factory=lambda: TaskInfo(name="rag"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: RagDataConfig = field(default_factory=RagDataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    collections: Dict[str, CollectionConfig] = field(default_factory=dict)
    embedders: Dict[str, ModelConfig] = field(default_factory=dict)
    # which (collection, embedder) pairs get embedded (one DVC stage each, named by the key)
    embeddings: Dict[str, EmbeddingSpec] = field(default_factory=dict)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(key="smollm2-135m"))  # the generator
    generate: RagGenerateConfig = field(default_factory=RagGenerateConfig)
    evaluate: Dict[str, int] = bounded(factory=lambda: {"n_examples": 5}, ge=0)
    train: RagTrainConfig = field(default_factory=RagTrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # restricts a fan-out stage (chunk: a collection, embed: an embedding) to one named item;
    # dvc.yaml sets it per stage with `--set select=<name>`, unset = all items
    select: Optional[str] = None
