"""Text similarity metrics shared by the generation tasks: ROUGE-L, token F1, BLEU.

All word-level metrics use one tokeniser, `tokens`: lower-case Unicode words and digits, so that
Spanish "años" stays "años". rouge-score's own tokeniser keeps only [a-z0-9] and would turn it
into "a os"; we hand it ours instead. BLEU is sacrebleu's (13a tokenisation, case-sensitive), so
the numbers are the ones papers report.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache
from typing import Any, Sequence

_WORD = re.compile(r"[^\W_]+")  # letters/digits of any script; punctuation (¿¡«») and "_" split


def tokens(text: str) -> list[str]:
    # NFC first: a decomposed "a" + combining accent is not a word character on its own
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


class _Tokenizer:
    """The object rouge-score expects: anything with `tokenize(text) -> list[str]`."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


@cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer  # imported lazily: it pulls in nltk

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure (LCS-based), 0..1; 0 when either side has no tokens."""
    return float(_rouge_scorer().score(ref, pred)["rougeL"].fmeasure)


def rouge_l_multi(pred: str, refs: Sequence[str]) -> float:
    """Best ROUGE-L over several references (0 without references)."""
    return max((rouge_l(pred, r) for r in refs), default=0.0)


def token_f1(pred: str, ref: str) -> float:
    """SQuAD-style bag-of-tokens F1 on `tokens`, 0..1. Both empty counts as a perfect match."""
    p, r = tokens(pred), tokens(ref)
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def bleu(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU 0..100; refs[i] lists the references of preds[i] (counts may differ)."""
    from sacrebleu.metrics import BLEU

    if len(preds) != len(refs):
        raise ValueError(f"bleu: {len(preds)} predictions but {len(refs)} reference lists")
    if not preds:
        return 0.0
    if any(not r for r in refs):
        raise ValueError("bleu: every prediction needs at least one reference")
    # sacrebleu wants one stream per reference position; None pads the shorter lists
    width = max(len(r) for r in refs)
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(width)]
    return float(BLEU().corpus_score(list(preds), streams).score)


def sentence_bleu(pred: str, refs: Sequence[str]) -> float:
    """Sentence BLEU 0..100 (sacrebleu's exp smoothing, effective order) against all refs."""
    from sacrebleu.metrics import BLEU

    if not refs:
        raise ValueError("sentence_bleu: need at least one reference")
    return float(BLEU(effective_order=True).sentence_score(pred, list(refs)).score)
