"""download / clean / chunk stages of the rag task.

data/rag/raw/        corpora/<corpus>/<files>, questions/<set>/<file>, manifest.json
data/rag/clean/      corpora/<corpus>.jsonl (documents), questions/<set>.jsonl, stats.json
data/rag/chunks/     <collection>.jsonl, <collection>.stats.json
"""
from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from pipelines.core.download import verify_checksum
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_json, read_jsonl, sha256_file, write_json, write_jsonl
from pipelines.core.paths import TaskPaths, project_relative

from . import chunking
from .corpus import check_evidence, clean_corpus, corpus_files, squad_documents, validate_questions


def _source(root: str | None, default_root: str, rel: str, what: str) -> Path:
    if not rel:
        raise PipelineError(f"{what}: empty path")
    p = Path(rel)
    return p if p.is_absolute() else project_relative(root or default_root) / p


def _copy_verified(src: Path, dst: Path) -> dict:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    # shared data comes with SHA256SUMS beside it; files of our own (negatives) or a user's folder may not
    verified = verify_checksum(src, dst) if (src.parent / "SHA256SUMS").exists() else False
    return {"file": str(dst.name), "sha256": sha256_file(dst), "checksum_verified": verified}


def download(cfg: DictConfig, run=None) -> None:
    if cfg.data.source != "local":
        raise PipelineError(f"data.source: {cfg.data.source!r}: the rag corpora are local files (use data.root)")
    if not cfg.data.corpora:
        raise PipelineError("data.corpora: no corpus configured")
    raw = TaskPaths(cfg).data / "raw"
    manifest: dict = {"corpora": {}, "question_sets": {}}
    with atomic_path(raw) as tmp:
        for name, spec in cfg.data.corpora.items():
            src = _source(None, cfg.data.root, spec.path, f"data.corpora.{name}.path")
            if not src.exists():
                raise PipelineError(f"{src}: corpus not found (data.corpora.{name}.path)")
            files = corpus_files(src)
            base = src if src.is_dir() else src.parent
            manifest["corpora"][name] = [
                {**_copy_verified(f, tmp / "corpora" / name / f.relative_to(base)), "file": str(f.relative_to(base))}
                for f in files]
        for name, qs in cfg.data.question_sets.items():
            if qs.corpus not in cfg.data.corpora:
                raise PipelineError(f"data.question_sets.{name}.corpus: unknown corpus {qs.corpus!r}")
            if qs.format == "squad":
                continue  # the corpus file's own questions
            if qs.format != "jsonl":
                raise PipelineError(f"data.question_sets.{name}.format: {qs.format!r} is not one of jsonl, squad")
            src = _source(qs.root, cfg.data.root, qs.file, f"data.question_sets.{name}.file")
            if not src.is_file():
                raise PipelineError(f"{src}: question file not found (data.question_sets.{name}.file)")
            manifest["question_sets"][name] = _copy_verified(src, tmp / "questions" / name / src.name)
        write_json(tmp / "manifest.json", manifest)
    print(f"[rag:download] {len(manifest['corpora'])} corpora, {len(manifest['question_sets'])} question files",
          file=sys.stderr)


def clean(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    raw = paths.data / "raw"
    manifest = read_json(raw / "manifest.json")
    stats: dict = {"corpora": {}, "question_sets": {}}
    squad_questions: dict[str, list[dict]] = {}
    corpus_docs: dict[str, list[dict]] = {}
    with atomic_path(paths.data / "clean") as out:
        for name, spec in cfg.data.corpora.items():
            files = manifest["corpora"].get(name)
            if files is None:
                raise PipelineError(f"{raw}: corpus {name!r} missing; re-run the download stage")
            if spec.format == "squad":
                if len(files) != 1:
                    raise PipelineError(f"data.corpora.{name}: a squad corpus is one JSON file")
                f = raw / "corpora" / name / files[0]["file"]
                docs, squad_questions[name] = squad_documents(f)
            elif spec.format == "text":
                src = raw / "corpora" / name
                docs = clean_corpus(src if len(files) > 1 else src / files[0]["file"], cfg.clean)
            else:
                raise PipelineError(f"data.corpora.{name}.format: {spec.format!r} is not one of text, squad")
            write_jsonl(out / "corpora" / f"{name}.jsonl", docs)
            if spec.format == "squad":  # every question with its article title (RAFT training examples)
                write_jsonl(out / "squad_questions" / f"{name}.jsonl", squad_questions[name])
            corpus_docs[name] = docs
            stats["corpora"][name] = {"documents": len(docs), "words": sum(len(d["text"].split()) for d in docs),
                                      "paragraphs": sum(len(d["paragraphs"]) for d in docs),
                                      "dropped_furniture_lines": sum(d["stats"].get("furniture_lines", 0) for d in docs)}
        for name, qs in cfg.data.question_sets.items():
            if qs.format == "squad":
                if qs.corpus not in squad_questions:
                    raise PipelineError(f"data.question_sets.{name}: format squad needs a squad corpus")
                rows = squad_questions[qs.corpus]
                if qs.split != "all":
                    titles = split_titles(cfg)[qs.split]
                    rows = [r for r in rows if article_title(r["title"]) in titles]
                if qs.without_own_article:  # asked against the corpus minus its own article: unanswerable
                    rows = [{**r, "id": f"{r['id']}#without-article", "answerable": False, "relevant_docs": [],
                             "answer": "", "exclude_title": r["title"]} for r in rows]
            else:
                if qs.split != "all" or qs.without_own_article:
                    raise PipelineError(f"data.question_sets.{name}: split/without_own_article need format squad")
                entry = manifest["question_sets"].get(name)
                if entry is None:
                    raise PipelineError(f"{raw}: question set {name!r} missing; re-run the download stage")
                f = raw / "questions" / name / entry["file"]
                rows = validate_questions(read_jsonl(f), str(f))
                if qs.corpus in corpus_docs:  # an unknown corpus name is reported where it is used
                    check_evidence(rows, corpus_docs[qs.corpus], f"data.question_sets.{name} ({f.name})", qs.corpus,
                                   cfg.clean.collapse_dots)
            if qs.limit is not None and qs.limit < len(rows):
                rows = random.Random(cfg.runtime.seed).sample(rows, qs.limit)
            write_jsonl(out / "questions" / f"{name}.jsonl", rows)
            stats["question_sets"][name] = {"questions": len(rows),
                                           "answerable": sum(bool(r["answerable"]) for r in rows)}
        write_json(out / "stats.json", stats)
    print(f"[rag:clean] {stats}", file=sys.stderr)


def article_title(title: str) -> str:
    """A SQuAD-es title as extractive_qa's split names it ("Nikola _ Tesla" -> "Nikola Tesla")."""
    from pipelines.core.squad import clean_title

    return clean_title(title, drop_language_note=False)


def split_titles(cfg: DictConfig) -> dict[str, set[str]]:
    """SQuAD-es article titles per split (train/val/test) as extractive_qa split them."""
    # a pipeline output (a DVC dep): this run's own, else the project's (a Hydra run dir reuses it)
    path = Path(cfg.paths.root) / cfg.data.squad_split
    if not path.is_file() and not Path(cfg.data.squad_split).is_absolute():
        path = project_relative(cfg.data.squad_split)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (data.squad_split; run `dvc repro extractive_qa_split`)")
    stats = read_json(path)
    try:
        return {name: set(stats[name]["titles"]) for name in ("train", "val", "test")}
    except (KeyError, TypeError):
        raise PipelineError(f"{path}: not a split_stats.json with train/val/test titles (data.squad_split)") from None


def selected(cfg: DictConfig, items: dict, what: str) -> list[str]:
    """Names a fan-out stage works on: `select` when set (from dvc.yaml), else all."""
    if cfg.select is None:
        return list(items)
    if cfg.select not in items:
        raise PipelineError(f"select: unknown {what} {cfg.select!r}; known: {', '.join(items)}")
    return [cfg.select]


def chunk(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    for name in selected(cfg, cfg.collections, "collection"):
        col = cfg.collections[name]
        chunking.check(col, f"collections.{name}")
        if col.corpus not in cfg.data.corpora:
            raise PipelineError(f"collections.{name}.corpus: unknown corpus {col.corpus!r}")
        docs = read_jsonl(paths.data / "clean" / "corpora" / f"{col.corpus}.jsonl")
        chunks = chunking.chunk_documents(docs, col)
        if not chunks:
            raise PipelineError(f"collections.{name}: no chunks (empty corpus {col.corpus!r})")
        out = paths.data / "chunks"
        write_jsonl(out / f"{name}.jsonl", chunks)
        words = [c["n_words"] for c in chunks]
        write_json(out / f"{name}.stats.json", {"chunks": len(chunks), "mean_words": sum(words) / len(words),
                                                "max_words": max(words)})
        print(f"[rag:chunk] {name}: {len(chunks)} chunks", file=sys.stderr)
