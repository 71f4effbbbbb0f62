"""The rag extractive reader baseline (pipelines/rag/reader.py).

The reading tests use the real fine-tuned extractive_qa model (models/extractive_qa/final, made
by `dvc repro extractive_qa_finetune`) on real SQuAD-es paragraphs; they skip when it has not
been trained yet (it is a pipeline output, not a packaged model). The threshold and citation
tests are pure.
"""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.config import PROJECT_ROOT, compose
from pipelines.rag import answer_checks
from pipelines.rag.reader import answer_or_refuse, choose_threshold, format_answer, read

FINAL = PROJECT_ROOT / "models" / "extractive_qa" / "final"
SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"
# test-article questions (never trained on) the model answers, gold among other articles'
# paragraphs; 5733140a... has a 414-token paragraph, so its gold chunk spans several windows
QUESTIONS = ["5733a5f54776f41900660f45", "57339555d058e614000b5df3", "5733140a4776f419006606e0"]
DISTRACTORS = [("Oxígeno", 0), ("Rin", 0)]  # Oxígeno's first paragraph needs two windows too


@pytest.fixture(scope="module")
def qa():
    if not (FINAL / "tunedag.json").exists():
        pytest.skip(f"{FINAL} absent: train it first (dvc repro extractive_qa_finetune)")
    from pipelines.core.squad import read_squad
    from pipelines.extractive_qa import model as qa_model

    cfg = compose("extractive_qa", [f"paths.root={PROJECT_ROOT}", f"paths.base_models={PROJECT_ROOT / 'models/base'}",
                                    "tracking.mode=disabled"])
    model, tok = qa_model.load_finetuned(cfg)
    squad = read_squad(SQUAD_ES)
    by_id = {r["id"]: r for r in squad.questions()}
    arts = {a["title"]: a for a in squad.articles}
    distractors = [arts[t]["paragraphs"][i]["context"] for t, i in DISTRACTORS]
    kw = dict(max_length=cfg.data.max_length, doc_stride=cfg.data.doc_stride, max_query_length=cfg.data.max_query_length,
              max_answer_length=cfg.evaluate.max_answer_length, n_best=cfg.evaluate.n_best, batch_size=8)
    return cfg, model, tok, [by_id[q] for q in QUESTIONS], distractors, kw


def _orders(gold: str, d: list[str]) -> list[list[str]]:
    return [[gold, *d], [d[0], gold, d[1]], [*d, gold]]


def test_reader_cites_the_gold_chunk_wherever_it_is(qa):
    _, model, tok, rows, d, kw = qa
    questions = [r["question"] for r in rows for _ in range(3)]
    contexts = [o for r in rows for o in _orders(r["context"], d)]
    out = read(model, tok, questions, contexts, rank_by="null", **kw)  # all 27 pairs in one batch run
    assert len(out) == 9
    for i, (o, ctx) in enumerate(zip(out, contexts)):
        row, where = rows[i // 3], i % 3
        assert o["n"] == where + 1, (row["id"], o)  # the citation follows the gold paragraph
        assert ctx[o["n"] - 1] == row["context"]
        assert row["context"][o["start"]:o["start"] + len(o["text"])] == o["text"]  # a span of that chunk
        # the gold answer is the span or inside it (bf16 training on another CPU may widen the span)
        assert any(a["text"] in o["text"] for a in row["answers"]), (row["id"], o["text"])
        assert o["score"] == max(o["chunk_scores"]) == -o["null_score"]
    # moving the gold only moves the citation: same span, same score from the same chunk
    for r in range(3):
        same = out[3 * r:3 * r + 3]
        assert len({(o["text"], o["start"]) for o in same}) == 1
        assert [o["chunk_scores"][o["n"] - 1] for o in same] == pytest.approx([same[0]["score"]] * 3, abs=1e-4)


def test_span_rule_matches_extractive_qa_on_the_gold_paragraph(qa):
    """rank_by="span" scores a chunk exactly as extractive_qa's evaluate scores the paragraph."""
    cfg, model, tok, rows, d, kw = qa
    from pipelines.extractive_qa.model import run_extractive

    alone = run_extractive(cfg, model, tok, rows, version_2=False)
    # a question without chunks sits between the others: answers stay aligned with their questions
    out = read(model, tok, [rows[0]["question"], "¿Nada?", rows[1]["question"]],
               [_orders(rows[0]["context"], d)[1], [], _orders(rows[1]["context"], d)[1]], rank_by="span", **kw)
    assert out[1] == {"text": "", "score": None, "n": None, "start": None, "span_score": None, "null_score": None,
                      "chunk_scores": []}
    for o, row in zip((out[0], out[2]), rows[:2]):
        assert o["n"] == 2 and o["text"] == alone[row["id"]]["prediction"]
        assert o["score"] == o["span_score"] == pytest.approx(alone[row["id"]]["score"], abs=1e-4)
    with pytest.raises(ValueError, match="rank_by"):
        read(model, tok, [], [], rank_by="best", **kw)


@pytest.mark.fast
def test_format_answer_citation_parses_back():
    assert format_answer(" 1996 ", 2) == "1996 [2]"
    for n in (1, 3, 12):
        text = format_answer("Premio Nobel", n)
        assert answer_checks.citations(text) == [n]
        assert answer_checks.strip_citations(text) == "Premio Nobel"
        assert answer_checks.exact_match(text, "premio nobel")
    assert format_answer("1816", 4, "(fragmento {n})") == "1816 (fragmento 4)"


@pytest.mark.fast
def test_answer_or_refuse():
    refusal = "No encuentro esa información en los fragmentos."
    pred = {"text": "1816", "score": 4.2, "n": 3, "start": 10}
    assert answer_or_refuse(pred, 4.2, refusal) == "1816 [3]"  # at the threshold: answer
    assert answer_or_refuse(pred, 4.3, refusal) == refusal
    assert answer_checks.is_refusal(answer_or_refuse(pred, 5, refusal), refusal)
    assert answer_or_refuse({"text": "", "score": None, "n": None, "start": None}, -1e9, refusal) == refusal


@pytest.mark.fast
def test_choose_threshold_separable_and_ties_go_low():
    t, info = choose_threshold([3.0, 4.0, 5.0, 1.0, 2.0], [True, True, True, False, False])
    assert t == 3.0 and info["accuracy"] == 1.0 and info["answer_rate"] == 0.6
    assert info["false_refusal"] == 0.0 and info["refusal_on_unanswerable"] == 1.0
    assert info["grid"][:5] == [1.0, 2.0, 3.0, 4.0, 5.0] and info["grid"][5] > 5.0 and len(info["accuracies"]) == 6
    # thresholds 2 (answer all) and 5 (answer only the 5) both get 2 of 3 right: the lower wins
    t, info = choose_threshold([5.0, 2.0, 3.0], [True, True, False])
    assert t == 2.0 and info["accuracy"] == pytest.approx(2 / 3) and info["accuracies"] == pytest.approx([2 / 3, 1 / 3, 2 / 3, 1 / 3])


@pytest.mark.fast
def test_choose_threshold_edges():
    t, info = choose_threshold([0.5, 2.0], [False, False])  # nothing should be answered
    assert t > 2.0 and info["accuracy"] == 1.0 and info["answer_rate"] == 0.0 and info["false_refusal"] is None
    t, info = choose_threshold([None, 1.0], [False, True])  # no span: refused at any threshold
    assert t == 1.0 and info["accuracy"] == 1.0
    t, info = choose_threshold([None], [True])
    assert info["accuracy"] == 0.0
    with pytest.raises(ValueError):
        choose_threshold([1.0], [True, False])
    with pytest.raises(ValueError):
        choose_threshold([], [])


@pytest.mark.fast
def test_choose_threshold_is_optimal_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        y = rng.random(n) < 0.6
        s = np.round(rng.normal(y * 1.0, 1.0), 1)  # rounded: repeated scores
        t, info = choose_threshold(s.tolist(), y.tolist())
        probes = np.concatenate([s, s + 0.05, s - 0.05, [s.min() - 1, s.max() + 1]])
        accs = {float(p): float(((s >= p) == y).mean()) for p in probes}
        assert info["accuracy"] == pytest.approx(max(accs.values()))
        assert info["accuracy"] == pytest.approx(((s >= t) == y).mean())
        # ties go low: no probe with the best accuracy answers a set larger than t's
        # (each probe answers what the lowest score at or above it answers)
        lowest = [s[s >= p].min() for p, a in accs.items() if a == pytest.approx(info["accuracy"]) and p <= s.max()]
        assert all(g >= t for g in lowest)
