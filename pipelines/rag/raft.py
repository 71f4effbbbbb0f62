"""tokenize / finetune stages of the rag task: retrieval-augmented fine-tuning (RAFT) of the generator.

An example is a SQuAD-es question of a *training* article, the `raft.k` chunks BM25 ranks first
for it among the training articles' paragraphs, numbered as at inference, and a target:
  - gold among them (kept at its retrieved rank; inserted at a random position when retrieval
    missed it): "<answer> [n]." with n the gold chunk's number;
  - `raft.no_gold_share` of the examples have the gold removed (the next distractor takes its
    place): the refusal sentence.
Validation examples come the same way from the val articles. The bash manual and the test
articles never enter training. Distractors come from BM25 computed here (not from the retrieve
stage), so that changing a retrieval knob never re-trains the generator.

Training is the shared SFT rails (core/sft.py): prompt masked, the answer and its EOS learned.
"""
from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Any, Sequence

from omegaconf import DictConfig

from pipelines.core import sft
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_jsonl, write_jsonl
from pipelines.core.paths import TaskPaths

from .chunking import retrieval_text
from .prep import article_title, split_titles
from .prompting import chunk_view, cited_answer, refusal_sentence, user_message

finetune = sft.finetune


def build_examples(questions: Sequence[dict], chunks: Sequence[dict], ranking: Sequence[Sequence[int]], pc: Any,
                   k: int, no_gold_share: float, n: int, seed: int) -> tuple[list[dict], dict]:
    """Up to n RAFT examples (seeded order over the questions) and counts of what was skipped.

    `ranking[i]`: chunk indices for questions[i], best first (at least k + 1 of them); a
    question's gold chunks are those of its `relevant_docs`."""
    if k < 2:
        raise PipelineError(f"raft.k: must be >= 2 (a gold chunk and a distractor), got {k}")
    rng = random.Random(seed)
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_doc.setdefault(c["doc"], []).append(i)
    out: list[dict] = []
    skipped: Counter = Counter()
    for qi in rng.sample(range(len(questions)), len(questions)):
        if len(out) >= n:
            break
        q = questions[qi]
        gold = sorted({i for d in q.get("relevant_docs", []) for i in by_doc.get(d, [])})
        if not q.get("answerable") or not q.get("answer", "").strip() or not gold:
            skipped["no_answer_or_gold"] += 1
            continue
        distractors = [int(i) for i in ranking[qi] if int(i) not in gold]
        if len(distractors) < k:
            skipped["too_few_distractors"] += 1
            continue
        no_gold = rng.random() < no_gold_share
        if no_gold:
            ids = distractors[:k]
            if any(_contains(chunk_view(chunks[i], q["question"], pc), q["answer"]) for i in ids):
                skipped["answer_in_a_distractor"] += 1  # "absent" would be a wrong label
                continue
            target, gold_n = refusal_sentence(pc), None
        else:
            top = [int(i) for i in ranking[qi][:k]]
            g = next((i for i in top if i in gold), None)
            if g is None:  # retrieval missed it: the gold at a random position among k - 1 distractors
                g = gold[0]
                ids = distractors[:k - 1]
                ids.insert(rng.randrange(k), g)
            else:
                ids = top
            if not _contains(chunk_view(chunks[g], q["question"], pc), q["answer"]):
                skipped["answer_not_in_gold_snippet"] += 1  # the model could not see it: nothing to learn
                continue
            gold_n = ids.index(g) + 1
            target = cited_answer(q["answer"], gold_n, pc)
        out.append({"id": q["id"], "system": pc.system_prompt, "question": q["question"],
                    "instruction": user_message(q["question"], [chunks[i] for i in ids], pc), "input": "",
                    "output": target, "gold_n": gold_n, "chunk_ids": ids})
    return out, {"examples": len(out), "no_gold": sum(e["gold_n"] is None for e in out), **skipped}


def _contains(text: str, answer: str) -> bool:
    return answer.strip().lower() in text.lower()


def article_examples(cfg: DictConfig, split: str, n: int, seed: int) -> tuple[list[dict], dict]:
    """RAFT examples from the questions of one split's articles, over those articles' paragraphs."""
    from . import retrieve as R

    paths = TaskPaths(cfg)
    rc = cfg.raft
    if rc.collection not in cfg.collections or cfg.collections[rc.collection].corpus != rc.corpus:
        raise PipelineError(f"raft.collection: {rc.collection!r} is not a collection of corpus {rc.corpus!r}")
    if cfg.data.corpora[rc.corpus].format != "squad":
        raise PipelineError(f"raft.corpus: {rc.corpus!r} is not a squad corpus (RAFT needs questions with gold paragraphs)")
    titles = split_titles(cfg)[split]
    col = cfg.collections[rc.collection]
    chunks = [c for c in read_jsonl(paths.data / "chunks" / f"{rc.collection}.jsonl")
              if article_title(c["doc"].rsplit("#", 1)[0]) in titles]
    questions = [q for q in read_jsonl(paths.data / "clean" / "squad_questions" / f"{rc.corpus}.jsonl")
                 if article_title(q["title"]) in titles]
    if not chunks or not questions:
        raise PipelineError(f"raft: no {split} article paragraphs/questions in {rc.corpus!r}")
    scores = R.bm25_scores([retrieval_text(c, col.prefix_section) for c in chunks], [q["question"] for q in questions],
                           cfg.retrieve.bm25)
    ranking = R.top_k(scores, min(len(chunks), rc.k + 8))[0]
    return build_examples(questions, chunks, ranking, cfg.prompt, rc.k, rc.no_gold_share, n, seed)


def tokenize(cfg: DictConfig, run=None) -> None:
    paths = TaskPaths(cfg)
    if cfg.train.dry_run:
        print(f"[rag:dry-run] tokenize: RAFT examples from {cfg.raft.corpus} training articles, k={cfg.raft.k}, "
              f"no-gold share {cfg.raft.no_gold_share}", file=sys.stderr)
        return
    seed = int(cfg.runtime.seed)
    examples, counts = {}, {}
    for split, n in (("train", cfg.raft.train_examples), ("val", cfg.raft.val_examples)):
        examples[split], counts[split] = article_examples(cfg, split, n, seed)
    write_jsonl(paths.data / "raft_examples.jsonl", [{**e, "split": s} for s, rows in examples.items() for e in rows])
    print(f"[rag:tokenize] RAFT examples: {counts}", file=sys.stderr)
    sft.tokenize_stage(cfg, lambda split: examples[split], ("train", "val"))
