"""qgen_es judge: the checks a teacher's reading stands on (pipelines/qgen_es/checks.py, judge.py).

Word validity uses the real Debian hunspell-es dictionary (`make test` installs it); support and
diversity are pure; the answerability threshold is chosen with the real fine-tuned extractive_qa
model on real SQuAD-es pairs (skipped until `dvc repro extractive_qa_finetune` has made it).
"""
from __future__ import annotations

import json

import pytest

from pipelines.core.config import PROJECT_ROOT, compose
from pipelines.core.errors import PipelineError
from pipelines.core.io import write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.squad import clean_title
from pipelines.qgen_es import checks, judge
from pipelines.qgen_es.sources import load_squad_paragraphs

SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"
FINAL = PROJECT_ROOT / "models" / "extractive_qa" / "final"
TESLA = ("Nikola Tesla nació en 1856 en Smiljan, en el Imperio austríaco. Trabajó para Thomas Edison en Nueva York. "
         "Murió en 1943 en un hotel de Manhattan.")


@pytest.fixture(scope="module")
def speller():
    return checks.Speller(checks.load_dictionary(compose("qgen_es").judge.spelling.dictionary))


@pytest.mark.fast
def test_misspelt_words_are_unknown_and_inflections_known(speller):
    # from the report of the SmolLM2 run: garbled verbs, a missing accent, "faso" for "falso"
    assert speller.unknown("¿Qué monarca felecló a los francos?") == ["felecló"]
    assert speller.unknown("¿Qué concepto es un tecnico?") == ["tecnico"]
    assert speller.unknown("Cloutario fue un monarca. ¿Verdadero o faso?") == ["Cloutario", "faso"]
    # inflected forms and sentence-initial capitals are words Hunspell knows
    assert speller.unknown("¿Cuántas veces escribieron ellos las cartas que recibió?") == []
    assert speller.unknown("Dónde nacieron sus hijas") == []


@pytest.mark.fast
def test_a_name_of_the_source_text_counts_as_known(speller):
    item = "¿En qué ciudad nació Nikola Tesla?"
    assert speller.unknown(item) == ["Nikola"]  # not a Spanish word...
    assert speller.validity(item, TESLA) == {"words": 6, "unknown": [], "share": 1.0, "all_valid": True}
    # ...but a made-up name is unknown even when the text has other names
    v = speller.validity("Según el texto, Furniecer fue el vocalista. ¿Verdadero o falso?", TESLA)
    assert v["unknown"] == ["Furniecer"] and not v["all_valid"] and v["share"] == pytest.approx(1 - 1 / 10)


@pytest.mark.fast
def test_punctuation_and_digits_are_not_words(speller):
    v = speller.validity("«¿Quién —según el texto— ganó en 1856, 1.943 y 2016?»", TESLA)
    assert v["words"] == 7 and v["all_valid"]  # Quién según el texto ganó en y
    assert checks.words("Super-Bowl 50: ¿l'équipe?") == ["Super", "Bowl", "l", "équipe"]
    assert speller.validity("1. 2. ¿?", "") == {"words": 0, "unknown": [], "share": None, "all_valid": True}


@pytest.mark.fast
def test_missing_dictionary_is_a_one_line_error(tmp_path):
    with pytest.raises(PipelineError, match=r"es_XX\.dic: Spanish dictionary not found.*hunspell-es"):
        checks.load_dictionary(str(tmp_path / "es_XX"))


@pytest.mark.fast
@pytest.mark.parametrize("item,verdict", [
    ("Según el texto, Tesla nació en 1856 en Smiljan. ¿Verdadero o falso?", "true"),
    # the subject dropped by the text ("Trabajó para ...") is the title's
    ("Según el texto, Tesla trabajó para Thomas Edison. ¿Verdadero o falso?", "true"),
    ("Según el texto, Tesla nació en 1900 en Smiljan. ¿Verdadero o falso?", "false_swap"),  # one answer swapped
    ("Según el texto, Tesla trabajó para George Westinghouse. ¿Verdadero o falso?", "false_swap"),
    ("Según el texto, Edison murió en 1943 en París. ¿Verdadero o falso?", "unsupported"),  # two runs differ
    ("Según el texto, el fútbol es un deporte popular. ¿Verdadero o falso?", "unsupported"),  # unrelated
    ("Según el texto, es así. ¿Verdadero o falso?", "unsupported"),  # no content word
])
def test_statement_support(item, verdict):
    got = checks.support(checks.statement_body(item), TESLA, topic="Nikola Tesla")
    assert got["verdict"] == verdict, got
    if verdict == "false_swap":
        assert 1 <= len(got["missing"]) <= 4


@pytest.mark.fast
def test_support_needs_one_sentence_not_the_whole_text():
    # every word is in the text, but across two sentences: the statement joins facts it does not state
    got = checks.support("Edison murió en Smiljan", TESLA)
    assert got["verdict"] != "true" and got["missing"]


@pytest.mark.fast
def test_distinct_openings():
    items = ["¿Qué hizo Tesla en 1856?", "¿Qué hizo Tesla en Nueva York?", "¿Dónde murió Tesla?",
             "Según el texto, Tesla nació en 1856. ¿Verdadero o falso?",
             "Según el texto, Tesla murió en 1943. ¿Verdadero o falso?"]
    # the fixed "Según el texto," opening is not counted; the first two questions open alike
    assert checks.distinct_openings(items) == pytest.approx(4 / 5)
    assert checks.opening(items[3]) == ("tesla", "nació", "en")
    assert checks.distinct_openings([]) is None


@pytest.mark.fast
def test_judge_items_and_reply_metrics(speller):
    items = ["¿Dónde nació Tesla?", "¿Qué monarca felecló Tesla?",
             "Según el texto, Tesla murió en 1943. ¿Verdadero o falso?",
             'Según el texto, la respuesta a "dónde murió Tesla" es Madrid. ¿Verdadero o falso?']
    answers = {items[0]: (True, 5.0, "Smiljan"), items[1]: (True, 4.0, "Edison")}
    got = judge.judge_items(items, TESLA, "Nikola Tesla", speller, answers, max_swap_words=4)
    assert [i["kind"] for i in got] == ["short", "short", "true_false", "true_false"]
    # a garbled word sinks an answerable question; the quoted fallback reads as a one-swap false item
    assert [i["usable"] for i in got] == [True, False, True, True]
    assert got[3]["fallback"] and not got[2]["fallback"] and got[3]["support"] == "false_swap"
    m = judge.reply_metrics(got)
    assert m["items_all_valid"] == 0.75 and m["answerable"] == 1.0 and m["usable"] == 0.75
    assert m["statements_true"] == 0.5 and m["tf_fallback"] == 0.5


@pytest.mark.fast
def test_calibration_pairs_are_balanced_and_cross_article():
    paras = [p for p in load_squad_paragraphs(SQUAD_ES) if p["title"] in ("Geología", "Motor", "Guerra franco-india")]
    pairs, labels = judge.calibration_pairs(paras, 40, seed=0)
    assert labels.count(True) == labels.count(False) == 40
    own = {(qa["question"], p["context"]) for p in paras for qa in p["qas"]}
    title_of = {p["context"]: p["title"] for p in paras}
    q_title = {qa["question"]: p["title"] for p in paras for qa in p["qas"]}
    assert all(((q, c) in own) == y for (q, c), y in zip(pairs, labels))
    assert all(title_of[c] != q_title[q] for (q, c), y in zip(pairs, labels) if not y)
    assert judge.calibration_pairs(paras, 40, seed=0) == (pairs, labels)  # seeded
    with pytest.raises(PipelineError, match=">= 2 validation articles"):
        judge.calibration_pairs([p for p in paras if p["title"] == "Motor"], 10, seed=0)


def test_answerability_threshold_on_real_squad_pairs():
    if not (FINAL / "tunedag.json").exists():
        pytest.skip(f"{FINAL} absent: train it first (dvc repro extractive_qa_finetune)")
    cfg = compose("qgen_es", [f"paths.root={PROJECT_ROOT}", f"paths.base_models={PROJECT_ROOT / 'models/base'}"])
    model, tok = judge.load_reader(cfg, TaskPaths(cfg))
    paras = load_squad_paragraphs(SQUAD_ES)
    # extractive_qa's validation articles choose the threshold; its test articles check it
    stats = json.loads((PROJECT_ROOT / "data/extractive_qa/split_stats.json").read_text())
    val = {clean_title(t) for t in stats["val"]["titles"]}
    test = {clean_title(t) for t in stats["test"]["titles"]}
    cal, y = judge.calibration_pairs([p for p in paras if p["title"] in val], 60, seed=0)
    threshold, how = judge.choose_threshold([p["score"] for p in judge.qa_scores(cfg, model, tok, cal)], y)
    assert how["accuracy"] >= 0.75, how
    held, y2 = judge.calibration_pairs([p for p in paras if p["title"] in test], 60, seed=1)
    s2 = [p["score"] for p in judge.qa_scores(cfg, model, tok, held)]
    answered = [s is not None and s >= threshold for s in s2]
    acc = sum(a == t for a, t in zip(answered, y2)) / len(y2)
    assert acc >= 0.7, (threshold, acc)  # the threshold carries over to unseen articles


@pytest.mark.fast
def test_agreement_counts_only_items_still_generated():
    gens = [{"mode": "fine_tuned", "id": "a", "items": [{"text": "¿Q1?", "usable": True}, {"text": "¿Q2?", "usable": False}]},
            {"mode": "few_shot", "id": "a", "items": [{"text": "¿Q3?", "usable": True}]}]
    ratings = [{"mode": "fine_tuned", "id": "a", "item": 1, "text": "¿Q1?", "usable": True},
               {"mode": "fine_tuned", "id": "a", "item": 2, "text": "¿Q2?", "usable": True},
               {"mode": "few_shot", "id": "a", "item": 1, "text": "¿Q3 old?", "usable": False}]  # text changed: stale
    a = judge.agreement(ratings, gens)
    assert (a["rated"], a["matched"], a["agreement"], a["false_reject"], a["false_accept"]) == (3, 2, 0.5, 1, 0)
    assert judge.agreement([], gens)["agreement"] is None


@pytest.mark.fast
def test_ratings_file_needs_boolean_verdicts(tmp_path):
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"mode": "fine_tuned", "id": "a", "item": 1, "text": "x", "usable": "yes"}\n')
    with pytest.raises(PipelineError, match="line 1: expected an object with a boolean 'usable'"):
        judge.read_ratings(bad)
    assert judge.read_ratings(tmp_path / "none.jsonl") == []


@pytest.mark.fast
def test_generations_file_is_written_atomically(tmp_path):
    path = tmp_path / "generations.jsonl"
    write_jsonl(path, [{"mode": "fine_tuned", "id": "a"}])

    def rows():
        yield {"mode": "fine_tuned", "id": "b"}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"mode": "fine_tuned", "id": "a"}]  # old, whole
    assert [p.name for p in tmp_path.iterdir()] == ["generations.jsonl"]  # no temp file left
