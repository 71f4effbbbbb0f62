"""evaluate stage of the rag task: retrieval metrics of every variant, answer metrics of the run.

metrics/rag/eval.json        headline: the chosen retriever on every reported question set, the answers
                             of every system (raft, prompted, reader) with 95% bootstrap intervals,
                             and what was chosen on which tuning set
metrics/rag/retrieval.json   every variant x question set (the report's comparison table)
metrics/rag/answers/<system>/<set>.jsonl   per answer: citations, refusal, F1, language

Tuning sets (role: tune) are scored in retrieval.json only: the headline was chosen on them.
"""
from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

from pipelines.core import tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_json, write_jsonl
from pipelines.core.paths import TaskPaths

from .answer import SYSTEMS
from .answer_checks import answer_metrics
from .choose import read_choice
from .index import headline_variant, load_rankings, read_variants
from .metrics import judge, ranking_metrics


@tracking.tracked("evaluate")
def evaluate(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    variants = read_variants(paths)
    choice = read_choice(paths)
    ks = sorted(set(cfg.retrieve.ks))
    if max(ks) > cfg.retrieve.keep:
        raise PipelineError(f"retrieve.ks: {max(ks)} > retrieve.keep ({cfg.retrieve.keep})")
    grid: list[dict] = []
    headline: dict = {"variant": {}, "retrieval": {}, "answers": {}}
    judgements: dict[str, dict[str, dict]] = {}
    for qs, spec in cfg.data.question_sets.items():
        head = headline_variant(cfg, spec.corpus, choice)
        rows = read_jsonl(paths.data / "clean" / "questions" / f"{qs}.jsonl")
        ranked = load_rankings(paths, qs)
        chunk_cache: dict[str, list[dict]] = {}
        for name, ids in ranked.items():
            v = variants[name]
            col = v["collection"]
            if col not in chunk_cache:
                chunk_cache[col] = read_jsonl(paths.data / "chunks" / f"{col}.jsonl")
                judgements[f"{qs}|{col}"] = {j["id"]: j for j in judge(rows, chunk_cache[col], cfg.clean.collapse_dots)}
            js = [judgements[f"{qs}|{col}"][r["id"]] for r in rows]
            m = ranking_metrics(ids, js, ks)
            grid.append({"question_set": qs, "role": spec.role, "variant": name, **v, **m})
            if name == head and spec.role == "test":
                headline["retrieval"][qs] = m
                headline["variant"][qs] = head
        if spec.role != "test":
            continue
        for system in SYSTEMS:
            f = paths.data / "answers" / system / f"{qs}.jsonl"
            if system not in cfg.generate.systems or not spec.generate or not f.exists():
                continue
            answers = read_jsonl(f)
            col = head.split("|", 1)[0]
            rel = {i: set(j["relevant"]) for i, j in judgements.get(f"{qs}|{col}", {}).items()}
            summary, per = answer_metrics(answers, rel, cfg.prompt.refusal)
            headline["answers"].setdefault(system, {})[qs] = summary
            write_jsonl(paths.metrics / "answers" / system / f"{qs}.jsonl", per)
    headline["best"] = _best([g for g in grid if g["role"] == "test"])
    headline["choice"] = {k: v for k, v in choice.items() if k not in ("candidates", "alpha_curve")}
    headline["run"] = OmegaConf.to_container(cfg.run)
    headline["generator"] = cfg.model.key
    write_json(paths.metrics / "retrieval.json", grid)
    write_json(paths.metrics / "eval.json", headline)
    _track(run, headline, grid)
    for qs, m in headline["retrieval"].items():
        if not m.get("n"):
            continue
        print(f"[rag:evaluate] {qs}: {headline['variant'][qs]}: hit@5 {m.get('hit@5', 0):.3f} "
              f"mrr@10 {m.get('mrr@10', 0):.3f}", file=sys.stderr)


def _track(run, headline: dict, grid: list[dict]) -> None:
    flat = {f"{qs}/{k}": v for qs, m in headline["retrieval"].items() for k, v in m.items()}
    flat.update({f"answers/{sy}/{qs}/{k}": v for sy, sets in headline["answers"].items() for qs, m in sets.items()
                 for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    run.log(flat)
    if grid and run.records:  # the whole comparison as one W&B table
        import wandb

        cols = sorted({k for r in grid for k in r})
        run.log({"retrieval_grid": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in grid])})


def _best(grid: list[dict]) -> dict:
    """Per question set and retriever: the variant with the best hit@5 (ties: MRR@10)."""
    best: dict = {}
    for row in grid:
        if "hit@5" not in row:
            continue
        key = f"{row['question_set']}/{row['retriever']}"
        cur = best.get(key)
        if cur is None or (row["hit@5"], row["mrr@10"]) > (cur["hit@5"], cur["mrr@10"]):
            best[key] = {"variant": row["variant"], "hit@5": row["hit@5"], "mrr@10": row["mrr@10"]}
    return best
