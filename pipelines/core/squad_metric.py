"""SQuAD exact match and token F1, as the official v1.1/v2.0 evaluation scripts define them.

Normalisation (official order): lower-case, drop punctuation, drop articles, collapse spaces.
The article list is a parameter so that Spanish articles can be used as well as the official
English ones; `extra_punctuation` adds characters that `string.punctuation` (ASCII only) does
not have, such as the Spanish "¿" and "¡". With the defaults the results are the official ones.

Per question the score is the maximum over its reference answers; the corpus score is the mean
in percent (0-100), as the official script prints it. An empty reference list means an
unanswerable (SQuAD v2) question: the only correct prediction is the empty string.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

OFFICIAL_ARTICLES = ("a", "an", "the")
SPANISH_ARTICLES = ("el", "la", "los", "las", "un", "una", "unos", "unas")


@dataclass(frozen=True)
class Normaliser:
    articles: tuple[str, ...] = OFFICIAL_ARTICLES
    extra_punctuation: str = ""

    def __post_init__(self) -> None:
        words = "|".join(re.escape(a) for a in self.articles)
        object.__setattr__(self, "_articles_re", re.compile(rf"\b({words})\b") if words else None)
        object.__setattr__(self, "_punct", set(string.punctuation) | set(self.extra_punctuation))

    def __call__(self, text: str) -> str:
        text = text.lower()
        text = "".join(ch for ch in text if ch not in self._punct)  # type: ignore[attr-defined]
        if self._articles_re is not None:  # type: ignore[attr-defined]
            text = self._articles_re.sub(" ", text)  # type: ignore[attr-defined]
        return " ".join(text.split())


OFFICIAL = Normaliser()


def exact_match(prediction: str, reference: str, norm: Normaliser = OFFICIAL) -> float:
    return float(norm(prediction) == norm(reference))


def token_f1(prediction: str, reference: str, norm: Normaliser = OFFICIAL) -> float:
    """v1.1 token F1: 0 without overlap, also when both normalise to nothing (e.g. "The")."""
    pred, ref = norm(prediction).split(), norm(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def score_question(prediction: str, references: Sequence[str], norm: Normaliser = OFFICIAL) -> tuple[float, float]:
    """(EM, F1) of one prediction: the best over its references.

    No references = unanswerable (SQuAD v2.0): EM = F1 = 1 for an empty prediction, else 0.
    """
    if not references:
        hit = float(norm(prediction) == "")
        return hit, hit
    return (max(exact_match(prediction, r, norm) for r in references),
            max(token_f1(prediction, r, norm) for r in references))


def squad_scores(predictions: Iterable[str], references: Iterable[Sequence[str]],
                 norm: Normaliser = OFFICIAL) -> dict:
    """Corpus EM/F1 in percent plus the per-question values (same order as the inputs)."""
    em, f1 = [], []
    for pred, refs in zip(predictions, references, strict=True):
        e, f = score_question(pred, refs, norm)
        em.append(e)
        f1.append(f)
    n = len(em)
    return {"n": n, "exact_match": 100.0 * sum(em) / n if n else 0.0, "f1": 100.0 * sum(f1) / n if n else 0.0,
            "per_question": list(zip(em, f1))}
