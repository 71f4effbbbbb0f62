"""EM and bootstrap intervals of the rag answer checks (pipelines/rag/answer_checks.py)."""
from __future__ import annotations

import json

import pytest

from pipelines.core.intervals import bootstrap_ci
from pipelines.rag import answer_checks as checks

pytestmark = pytest.mark.fast

REFUSAL = "No encuentro esa información en los fragmentos"
METRICS = ("citation_valid", "cites_any", "cites_relevant", "refusal_on_unanswerable", "false_refusal",
           "f1", "rouge_l", "spanish", "eos", "evidence_in_prompt", "em")


def test_exact_match_folds_like_token_f1():
    assert checks.exact_match("1996 [2].", "1996")
    assert checks.exact_match("Los Años Noventa [1, 3]", "los años noventa")
    assert checks.exact_match("«Denver Broncos»", "Denver Broncos")
    assert not checks.exact_match("En 1996 [2].", "1996")  # an extra word is not exact
    assert not checks.exact_match("anos", "años")  # token_f1 keeps accents, so does EM


def _rows() -> list[dict]:
    rows = []
    for i in range(24):
        ans = i < 16
        text = ["1996 [1].", "En 1996 [2].", REFUSAL + ".", "Fue en el año 1996."][i % 4] if ans else \
            [REFUSAL, "Creo que 1996 [1]."][i % 2]
        rows.append({"id": f"q{i}", "answerable": ans, "reference": "1996" if ans else "", "chunk_ids": [i, i + 1],
                     "answer": text, "eos": i % 3 == 0, "evidence_in_prompt": i % 5 != 0})
    return rows


def test_summary_em_and_an_interval_for_every_metric():
    rows = _rows()
    m, per = checks.answer_metrics(rows, {f"q{i}": {i} for i in range(24)}, REFUSAL)
    assert [p["em"] for p in per[:4]] == [True, False, False, False]
    assert all(p["em"] is None for p in per if not p["answerable"])
    assert m["em"] == 0.25 and m["n_answerable"] == 16
    # the older keys come first, in their old order; EM and then the intervals after them
    assert list(m)[:3] == ["n", "n_answerable", "n_unanswerable"] and list(m)[3:3 + len(METRICS)] == list(METRICS)
    assert list(m)[3 + len(METRICS):] == [f"{k}_ci" for k in METRICS]
    ans = [p for p in per if p["answerable"]]
    for k in METRICS:
        lo, hi = m[f"{k}_ci"]
        assert lo <= m[k] <= hi, k
    # each interval resamples exactly the items its mean averages over
    assert m["em_ci"] == list(bootstrap_ci([p["em"] for p in ans], seed=0))
    assert m["citation_valid_ci"] == list(bootstrap_ci([p["citation_valid"] for p in per if p["cites"]], seed=0))
    assert m["refusal_on_unanswerable_ci"] == list(bootstrap_ci([p["refusal"] for p in per if not p["answerable"]], seed=0))
    assert m["refusal_on_unanswerable"] == 0.5 and m["refusal_on_unanswerable_ci"][0] < 0.5 < m["refusal_on_unanswerable_ci"][1]
    assert m["citation_valid_ci"] == [1.0, 1.0]  # every cited number was given: no spread
    # the same seed every time: the file is byte-identical across reruns
    again, _ = checks.answer_metrics(rows, {f"q{i}": {i} for i in range(24)}, REFUSAL)
    assert json.dumps(again) == json.dumps(m)


def test_interval_is_none_where_the_metric_is_none():
    rows = [r for r in _rows() if not r["answerable"]]
    m, _ = checks.answer_metrics(rows, {}, REFUSAL)
    assert m["f1"] is None and m["f1_ci"] == [None, None] and m["em_ci"] == [None, None]
    assert m["refusal_on_unanswerable_ci"][0] < m["refusal_on_unanswerable"] < m["refusal_on_unanswerable_ci"][1]
    json.dumps(m)  # plain floats / None only
