"""SQuAD EM/F1 against values computed by hand, and against the independent official-script
implementation in squad_official.py."""
from __future__ import annotations

import random

import pytest
import squad_official

from pipelines.core.squad_metric import (
    OFFICIAL,
    SPANISH_ARTICLES,
    Normaliser,
    exact_match,
    score_question,
    squad_scores,
    token_f1,
)

ES = Normaliser(SPANISH_ARTICLES, "¿¡«»")


def test_official_normalisation():
    assert OFFICIAL("The  Denver Broncos!") == "denver broncos"
    assert OFFICIAL("an apple, a pear") == "apple pear"
    # articles only as whole words; ASCII punctuation only (the official script's string.punctuation)
    assert OFFICIAL("Theatre") == "theatre"
    assert OFFICIAL("¿Quién?") == "¿quién"
    assert OFFICIAL("el rey") == "el rey"


def test_spanish_normalisation():
    assert ES("¿Los Broncos de Denver?") == "broncos de denver"
    assert ES("una ciudad, unas calles") == "ciudad calles"
    assert ES("Elena la de Lasalle") == "elena de lasalle"  # 'el'/'la' inside words stay


def test_f1_by_hand():
    # pred tokens: denver broncos team; ref: denver broncos -> P=2/3 R=1 F1=0.8
    assert token_f1("Denver Broncos team", "the Denver Broncos") == pytest.approx(0.8)
    # repeated tokens count with multiplicity: pred "a b b" vs ref "b b b c"... here with words
    # pred: x y y (3), ref: y y y z (4): common y:2 -> P=2/3 R=2/4 F1=2*(2/3)(1/2)/(7/6)=4/7
    assert token_f1("x y y", "y y y z") == pytest.approx(4 / 7)
    assert token_f1("Paris", "London") == 0.0
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0


def test_multi_reference_takes_the_max():
    em, f1 = score_question("Santa Clara", ["Levi's Stadium", "Santa Clara, California", "Santa Clara"])
    assert (em, f1) == (1.0, 1.0)
    # no EM; F1 = max(P=1 R=2/4 -> 2/3, P=1 R=2/5 -> 4/7) = 2/3
    em, f1 = score_question("q r", ["p q r s", "x q r y z"])
    assert em == 0.0 and f1 == pytest.approx(2 / 3)
    # "a" is an article: the reference "a q r s" has 3 tokens -> R=2/3, F1=0.8
    assert score_question("q r", ["a q r s"])[1] == pytest.approx(0.8)


def test_unanswerable_v2_rule():
    assert score_question("", []) == (1.0, 1.0)
    assert score_question("something", []) == (0.0, 0.0)
    assert score_question("", ["Denver"]) == (0.0, 0.0)


def test_corpus_scores_are_percentages():
    s = squad_scores(["Denver Broncos", "wrong", "Santa Clara"],
                     [["Denver Broncos"], ["Carolina Panthers"], ["Santa Clara, California"]])
    # EM: 1, 0, 0 -> 33.33; F1: 1, 0, 2*(1)(2/3)/(5/3)=0.8 -> 60
    assert s["exact_match"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(60.0)
    assert s["n"] == 3


def test_matches_official_script_on_random_answers():
    rng = random.Random(0)
    words = ["the", "a", "Denver", "Broncos,", "año", "1879", "París!", "el", "an", "río", "Tesla."]
    preds, refs = {}, []
    for i in range(400):
        qid = f"q{i}"
        refs.append((qid, [" ".join(rng.choices(words, k=rng.randint(1, 5))) for _ in range(rng.randint(1, 3))]))
        preds[qid] = " ".join(rng.choices(words, k=rng.randint(1, 6)))
    ours = squad_scores([preds[q] for q, _ in refs], [r for _, r in refs])
    theirs = squad_official.evaluate(refs, preds)
    assert abs(ours["exact_match"] - theirs["exact_match"]) < 1e-9
    assert abs(ours["f1"] - theirs["f1"]) < 1e-9
