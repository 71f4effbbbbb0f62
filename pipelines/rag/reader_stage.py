"""The extractive reader as a rag answering system (generate stage, `select=reader`).

extractive_qa's fine-tuned model reads each of the top-k chunks; the best span over all of them
is the answer, cited by its chunk's number (valid by construction). It refuses when the span's
score is under a threshold chosen on the *tuning* sets only: questions of training articles
(should answer) and the same kind of questions asked without their article (should refuse).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from pipelines.core.errors import PipelineError
from pipelines.core.paths import TaskPaths

from . import reader as RD


def load_reader(cfg: DictConfig, paths: TaskPaths):
    from pipelines.core.finetuned import load_finetuned

    rc = cfg.generate.reader
    final = Path(rc.final)
    if not (final / "tunedag.json").exists():
        raise PipelineError(f"{final}: no fine-tuned extractive_qa model (generate.reader.final; "
                            f"run `dvc repro extractive_qa_finetune`)")
    qa_cfg = OmegaConf.create({"model": OmegaConf.to_container(rc.model), "paths": {"base_models": str(paths.base_models)}})
    return load_finetuned(qa_cfg, "AutoModelForQuestionAnswering", final)


def reader_system(cfg: DictConfig, paths: TaskPaths, choice: dict):
    from .answer import contexts

    rc = cfg.generate.reader
    model, tok = load_reader(cfg, paths)

    def predict(rows: Sequence[dict], ctx: Sequence[Sequence[dict]]) -> list[dict]:
        return RD.read(model, tok, [r["question"] for r in rows], [[c["text"] for c in cs] for cs in ctx],
                       max_length=rc.max_length, doc_stride=rc.doc_stride, max_answer_length=rc.max_answer_length,
                       batch_size=rc.batch_size, rank_by=rc.rank_by)

    tune = [n for n, q in cfg.data.question_sets.items() if q.role == "tune"]
    scores, answerable = [], []
    for qs in tune:
        rows, ctx, _ = contexts(cfg, paths, qs, choice, rc.tune_questions)
        scores += [p["score"] for p in predict(rows, ctx)]
        answerable += [bool(r["answerable"]) for r in rows]
    if len(set(answerable)) < 2:
        raise PipelineError(f"data.question_sets: the reader's threshold needs answerable and unanswerable tuning "
                            f"questions (role: tune; e.g. without_own_article: true); got {', '.join(tune) or 'none'}")
    threshold, how = RD.choose_threshold(scores, answerable)
    how = {k: v for k, v in how.items() if k not in ("grid", "accuracies")}
    print(f"[rag:generate] reader threshold {threshold:.3f} chosen on {len(scores)} tuning questions "
          f"({', '.join(tune)}): {how}", file=sys.stderr)
    refusal = cfg.prompt.refusal

    def answer(rows: Sequence[dict], ctx: Sequence[Sequence[dict]]) -> list[dict]:
        return [{"answer": RD.answer_or_refuse(p, threshold, refusal, cfg.prompt.citation), "eos": True,
                 "new_tokens": None, "score": p["score"], "span_chunk": p["n"]} for p in predict(rows, ctx)]

    return answer, {"system": "reader", "model": str(rc.final), "threshold": threshold, "threshold_choice": how,
                    "tune_sets": tune, "tune_questions": len(scores)}
