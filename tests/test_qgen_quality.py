"""qgen_es question-quality metrics on handcrafted replies and on real SFT targets."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.config import PROJECT_ROOT
from pipelines.qgen_es.examples import make_sft_examples
from pipelines.qgen_es.quality import aggregate, is_true_false, parse_questions, score_output
from pipelines.qgen_es.sources import load_squad_paragraphs

SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"
CTX = ("Nikola Tesla nació en 1856 en Smiljan, en el Imperio austríaco. En 1884 emigró a Nueva York, "
       "donde trabajó para Thomas Edison antes de desarrollar el motor de corriente alterna.")
GOOD = """1. ¿En qué año nació Nikola Tesla?
2. Tesla trabajó para Thomas Edison en Nueva York. ¿Verdadero o falso?
3. ¿Qué motor desarrolló Tesla?
4. Tesla nació en el Imperio austríaco. ¿Verdadero o falso?
5. ¿A qué ciudad emigró Tesla en 1884?"""


def test_parse_numbering_styles():
    want = ["¿Qué?", "¿Cuándo?", "Tesla nació en 1856. ¿Verdadero o falso?"]
    for text in ("1. ¿Qué?\n2. ¿Cuándo?\n3. Tesla nació en 1856. ¿Verdadero o falso?",
                 "1) ¿Qué?\n2) ¿Cuándo?\n3) Tesla nació en 1856. ¿Verdadero o falso?",
                 "- ¿Qué?\n- ¿Cuándo?\n- Tesla nació en 1856. ¿Verdadero o falso?",
                 "Aquí están las preguntas:\n\n1. ¿Qué?\n2. ¿Cuándo?\n3. Tesla nació en 1856. ¿Verdadero o falso?",
                 "¿Qué?\n¿Cuándo?\nTesla nació en 1856. ¿Verdadero o falso?",
                 "1. ¿Qué? 2. ¿Cuándo? 3. Tesla nació en 1856. ¿Verdadero o falso?"):
        assert parse_questions(text) == want, text
    assert parse_questions("") == []


def test_true_false_phrasings():
    for item in ("Tesla nació en 1856. ¿Verdadero o falso?", "Tesla nació en 1856 (V/F)",
                 "Verdadero o falso: Tesla nació en 1856.", "Tesla nació en 1856. ¿Cierto o falso?"):
        assert is_true_false(item), item
    assert not is_true_false("¿En qué año nació Tesla?")
    assert not is_true_false("¿Qué era falso en la teoría de Edison?")


def test_perfect_list():
    row = score_output(GOOD, CTX, 5, 2, eos_reached=True, refs=["¿En qué año nació Tesla?"])
    assert row["count_ok"] and row["tf_ok"] and row["n_items"] == 5
    assert row["tf_share"] == pytest.approx(0.4) and row["tf_share_error"] == pytest.approx(0.0)
    assert row["format_valid"] == 1.0
    assert row["leakage"] is False
    assert row["near_duplicate_rate"] == 0.0
    assert row["terminated"] is True
    assert row["grounding"] > 0.85  # "año" is the one word not in the text
    assert 0 < row["rouge_l"] <= 1 and 0 <= row["bleu"] <= 100
    assert "rouge_l" not in score_output(GOOD, CTX, 5, 2, True)  # no refs, no reference metrics


def test_wrong_counts():
    row = score_output(GOOD, CTX, 6, 3, eos_reached=True)
    assert not row["count_ok"] and not row["tf_ok"]
    assert row["tf_share_error"] == pytest.approx(0.1)


@pytest.mark.parametrize("reply", [
    "1. ¿En qué año nació Tesla? Respuesta: 1856\n2. Tesla nació en Smiljan. ¿Verdadero o falso?",
    "1. ¿En qué año nació Tesla?\nR: 1856\n2. Tesla nació en Smiljan. ¿Verdadero o falso?",
    "1. ¿En qué año nació Tesla?\n2. Tesla nació en Smiljan. ¿Verdadero o falso? Verdadero.",
    "1. ¿En qué año nació Tesla?\n2. Tesla nació en Smiljan. ¿Verdadero o falso?\nFalso.",
    "1. ¿En qué año nació Tesla?\n2. Tesla nació en Smiljan (Verdadero). ¿Verdadero o falso?",
    "1. ¿En qué año nació Tesla? a) 1856 b) 1943\n2. Tesla nació en Smiljan. ¿Verdadero o falso?",
    "1. ¿En qué año nació Tesla? 1856\n2. Tesla nació en Smiljan. ¿Verdadero o falso?",
])
def test_answers_and_options_are_leakage(reply):
    assert score_output(reply, CTX, 2, 1, True)["leakage"] is True


def test_malformed_items():
    reply = "1. En qué año nació Tesla\n2. ¿Tesla nació en 1856? ¿Verdadero o falso?\n3. ¿Dónde nació Tesla?"
    row = score_output(reply, CTX, 3, 1, True)
    assert row["format_valid"] == pytest.approx(1 / 3)
    assert score_output("1. Según el texto, ¿dónde nació Tesla?", CTX, 1, 0, True)["format_valid"] == 1.0


def test_runaway_repetition_is_not_terminated():
    loop = "1. ¿En qué año nació Tesla?\n2. ¿Qué hizo Tesla en Nueva York y en Nueva York y en Nueva York y en"
    assert score_output(loop, CTX, 2, 0, eos_reached=True)["terminated"] is False
    same = "1. ¿Dónde nació Tesla?\n2. ¿Dónde nació Tesla?"
    assert score_output(same, CTX, 2, 0, eos_reached=True)["terminated"] is False
    assert score_output(GOOD, CTX, 5, 2, eos_reached=False)["terminated"] is False


def test_near_duplicates_default_and_embeddings():
    reply = "1. ¿En qué año nació Nikola Tesla?\n2. ¿En qué año nació Tesla?\n3. ¿Qué motor desarrolló Tesla?"
    assert score_output(reply, CTX, 3, 0, True)["near_duplicate_rate"] == pytest.approx(1 / 3)

    def embed(texts):  # a fake embedder: everything points the same way
        return np.tile(np.array([1.0, 0.0]), (len(texts), 1))
    assert score_output(reply, CTX, 3, 0, True, embed=embed)["near_duplicate_rate"] == 1.0


def test_grounding_low_for_off_topic_questions():
    row = score_output("1. ¿Cuál es la capital de Mongolia?\n2. ¿Quién pintó la Gioconda?", CTX, 2, 0, True)
    assert row["grounding"] < 0.2


def test_aggregate_means():
    rows = [score_output(GOOD, CTX, 5, 2, True), score_output(GOOD, CTX, 6, 3, True)]
    agg = aggregate(rows)
    assert agg["n"] == 2 and agg["count_ok"] == 0.5 and agg["n_items"] == 5.0
    assert agg["leakage"] == 0.0 and agg["tf_share_error"] == pytest.approx(0.05)


def test_real_targets_score_perfectly():
    paragraphs = [p for p in load_squad_paragraphs(SQUAD_ES) if p["title"] == "Nikola Tesla"]
    examples = make_sft_examples(paragraphs, 5, 2, 1, seed=0)
    rows = [score_output(e["messages"][2]["content"], e["context"], e["n"], e["k"], True,
                         refs=e["reference_questions"]) for e in examples]
    agg = aggregate(rows)
    assert agg["n"] == len(examples) > 50
    assert agg["count_ok"] == 1.0 and agg["tf_ok"] == 1.0 and agg["tf_share_error"] == 0.0
    assert agg["leakage"] == 0.0 and agg["terminated"] == 1.0
    assert agg["format_valid"] > 0.95 and agg["grounding"] > 0.5  # translated questions reword the text
