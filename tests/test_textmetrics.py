"""Shared text metrics on hand-computed cases: Unicode tokens, ROUGE-L (LCS), token F1, BLEU."""
from __future__ import annotations

import pytest

from pipelines.core.textmetrics import bleu, rouge_l, rouge_l_multi, sentence_bleu, token_f1, tokens


def test_tokens_keep_spanish_letters_and_drop_punctuation():
    assert tokens("¿Cuántos años tenía «Tesla»? ¡Nació en 1856!") == [
        "cuántos", "años", "tenía", "tesla", "nació", "en", "1856"]
    assert tokens("Ñandú, pingüino_azul") == ["ñandú", "pingüino", "azul"]
    assert tokens("a\u0301rbol") == ["árbol"]  # decomposed accent is composed first


def test_rouge_l_by_hand():
    # LCS("el gato come pescado", "el gato negro come") = "el gato come" = 3; P = R = 3/4
    assert rouge_l("el gato come pescado", "el gato negro come") == pytest.approx(0.75)
    # LCS = "a c" = 2; P = 2/3, R = 2/2 -> F = 2PR/(P+R) = 0.8
    assert rouge_l("a b c", "a c") == pytest.approx(0.8)


def test_rouge_l_keeps_accented_words():
    # rouge-score's default tokeniser would reduce both to "a os" and call them equal to "a os"
    assert rouge_l("años", "años") == 1.0
    assert rouge_l("años", "anos") == 0.0
    assert rouge_l("¿En qué año nació Tesla?", "en qué año nació tesla") == 1.0


def test_rouge_l_multi_takes_the_best_reference():
    refs = ["el perro ladra", "el gato come pescado"]
    assert rouge_l_multi("el gato come pescado", refs) == 1.0
    assert rouge_l_multi("el gato", refs) == pytest.approx(max(rouge_l("el gato", r) for r in refs))
    assert rouge_l_multi("x", []) == 0.0


def test_token_f1_by_hand():
    # common: "tesla", "nació" = 2; P = 2/3, R = 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert token_f1("Tesla nació 1856", "Tesla nació en Smiljan") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0
    assert token_f1("algo", "") == 0.0
    assert token_f1("uno dos", "tres cuatro") == 0.0
    assert token_f1("Él nació", "él NACIÓ.") == 1.0


def test_bleu_identical_and_disjoint():
    preds = ["el gato está sentado en la alfombra roja", "Tesla nació en Smiljan en el año 1856"]
    assert bleu(preds, [[p] for p in preds]) == pytest.approx(100.0)
    assert bleu(["uno dos tres cuatro cinco"], [["seis siete ocho nueve diez"]]) == 0.0
    assert sentence_bleu(preds[0], [preds[0]]) == pytest.approx(100.0)
    assert sentence_bleu("uno dos tres", ["cuatro cinco seis"]) == 0.0


def test_bleu_ragged_references_are_aligned_per_prediction():
    preds = ["el gato está sentado en la alfombra roja", "Tesla nació en Smiljan en el año 1856"]
    # the matching reference is second for one prediction and the only one for the other:
    # a wrong transposition would pair predictions with the other's references
    refs = [["algo completamente distinto aquí", preds[0]], [preds[1]]]
    assert bleu(preds, refs) == pytest.approx(100.0)
    assert bleu(preds, [[preds[1]], [preds[0], "otra cosa"]]) < 20
    with pytest.raises(ValueError):
        bleu(preds, [[preds[0]]])
    assert bleu([], []) == 0.0
