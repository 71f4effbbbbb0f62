"""qgen_es data preparation on the real SQuAD-es sample and the wiki summaries file: grouping,
true/false derivation, SFT examples whose requests state what their targets contain, splits
by article, and one-line errors for malformed input."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from pipelines.core.config import PROJECT_ROOT
from pipelines.core.errors import PipelineError
from pipelines.core.squad import clean_title
from pipelines.qgen_es.examples import build_target, make_sft_examples, split_by_title
from pipelines.qgen_es.quality import is_true_false, parse_questions
from pipelines.qgen_es.sources import (
    BIOGRAPHY_MODES,
    WIKI_PEOPLE_TOPIC,
    is_biography,
    load_squad_paragraphs,
    load_wiki_biographies,
    wiki_summaries_path,
)
from pipelines.qgen_es.truefalse import TF_SUFFIX, answer_type, make_true_false, natural_statement, to_statement, true_false_item

SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"
BIOS = ["Nikola Tesla", "Martín Lutero", "Genghis"]


@pytest.fixture(scope="module")
def paragraphs():
    return load_squad_paragraphs(SQUAD_ES)


@pytest.fixture(scope="module")
def examples(paragraphs):
    return make_sft_examples(paragraphs, n_questions=5, n_true_false=2, min_short=1,
                             system_prompt="S", user_template="{text}|n={n}|k={k}|short={n_short}", seed=3)


def test_grouping_keeps_every_paragraph_and_question(paragraphs):
    assert len(paragraphs) == 1996
    assert sum(len(p["qas"]) for p in paragraphs) == 6583
    assert len({p["id"] for p in paragraphs}) == 1996
    assert len({p["context"] for p in paragraphs}) == 1996  # a paragraph appears once
    assert len({p["title"] for p in paragraphs}) == 48
    first = paragraphs[0]
    assert first["id"] == "Super Bowl 50#0" and first["title"] == "Super Bowl 50"
    # "" / answer_start -1 alignment failures are skipped, never used as an answer
    assert all(qa["answer"] != "" for p in paragraphs for qa in p["qas"])
    assert "" not in {a for p in paragraphs for qa in p["qas"] for a in qa["answers"]}


def test_question_without_usable_answer_keeps_its_text(tmp_path):
    doc = {"data": [{"title": "Nikola _ Tesla", "paragraphs": [{"context": "Tesla nació en 1856.", "qas": [
        {"id": "q1", "question": "¿Cuándo nació Tesla?", "answers": [{"text": "", "answer_start": -1}]},
        {"id": "q2", "question": "¿Quién nació en 1856?", "answers": [{"text": "", "answer_start": -1},
                                                        {"text": "Tesla", "answer_start": 0}]}]}]}]}
    f = tmp_path / "s.json"
    f.write_text(json.dumps(doc))
    [p] = load_squad_paragraphs(f)
    assert p["id"] == "Nikola Tesla#0"
    assert p["qas"][0] == {"question": "¿Cuándo nació Tesla?", "answer": None, "answers": [], "answer_end": 0}
    assert p["qas"][1]["answer"] == "Tesla" and p["qas"][1]["answer_end"] == 5


@pytest.mark.parametrize("doc, where", [
    ({"version": "1.1"}, "missing field 'data'"),
    ({"data": [{"title": "T"}]}, "data[0]: missing field 'paragraphs'"),
    ({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0]: missing field 'context'"),
    ({"data": [{"title": "T", "paragraphs": [{"context": "c"}]}]}, "data[0].paragraphs[0]: missing field 'qas'"),
    ({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"answers": []}]}]}]},
     "data[0].paragraphs[0].qas[0]: missing field 'question'"),
    ({"data": [{"title": "T", "paragraphs": [{"context": 3, "qas": []}]}]}, "field 'context': expected str"),
])
def test_malformed_squad_names_file_and_field(tmp_path, doc, where):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(PipelineError) as e:
        load_squad_paragraphs(f)
    msg = str(e.value)
    assert str(f) in msg and where in msg and "\n" not in msg


def test_truncated_json_is_one_line_error(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"data": [')
    with pytest.raises(PipelineError, match="invalid JSON"):
        load_squad_paragraphs(f)


def test_clean_title():
    assert clean_title("Nikola _ Tesla") == "Nikola Tesla"
    assert clean_title("Genghis.") == "Genghis"
    assert clean_title("Victoria _ and _ Albert _ Museum (en inglés)") == "Victoria and Albert Museum"
    assert clean_title("American Broadcasting Company (en inglés).") == "American Broadcasting Company"
    assert clean_title("Sky _ (Reino Unido)") == "Sky (Reino Unido)"  # a disambiguation, kept


def test_biography_modes_on_real_titles(paragraphs):
    kept = {m: [p for p in paragraphs if is_biography(p["title"], p["context"], BIOS, m)] for m in BIOGRAPHY_MODES}
    assert len(kept["none"]) == 1996
    assert {p["title"] for p in kept["titles"]} == set(BIOS)
    assert len(kept["titles"]) == 91 + 97 + 54
    # the heuristic finds all three biographies and keeps few paragraphs of other articles
    by_title = Counter(p["title"] for p in kept["classifier"])
    assert set(BIOS) <= set(by_title)
    wrong = sum(c for t, c in by_title.items() if t not in BIOS)
    assert wrong / len(kept["classifier"]) < 0.1
    assert set(map(id, kept["titles"])) | set(map(id, kept["classifier"])) == set(map(id, kept["titles+classifier"]))
    assert is_biography("nikola _ tesla", "", ["NIKOLA TESLA"], "titles")
    with pytest.raises(PipelineError, match="biography mode"):
        is_biography("x", "y", [], "people")


def test_answer_types():
    assert answer_type("1856") == "year" and answer_type("en 1898") == "year"
    assert answer_type("24-10") == "number" and answer_type("seis") == "number"
    assert answer_type("3 millones") == "number"
    assert answer_type("Denver Broncos") == "name" and answer_type("Santa Clara, California") == "name"
    assert answer_type("corriente alterna") == "other"
    assert answer_type("7 de febrero de 2016") == "date" and answer_type("febrero de 2016") == "date"
    assert answer_type("el 21 de mayo") == "date" and answer_type("21 de mayo") == "date"


def test_statements_read_naturally():
    assert to_statement("¿En qué año nació Tesla?", "1856") == "Tesla nació en 1856"
    assert to_statement("¿En qué año se casó Martín Lutero?", "1525") == "Martín Lutero se casó en 1525"
    assert to_statement("¿Quién ganó el Super Bowl 50?", "Denver Broncos") == "Denver Broncos ganó el Super Bowl 50"
    assert to_statement("¿Cuántos hijos tuvo Lutero?", "seis") == "Lutero tuvo seis hijos"
    assert to_statement("¿Cuál es el nombre del estadio?", "Levi's Stadium") == "El nombre del estadio es Levi's Stadium"
    assert to_statement("¿Qué año ganaron los Broncos?", "2015") == "Ganaron los Broncos en 2015"
    assert to_statement("¿En qué fecha se jugó el partido?", "7 de febrero de 2016") \
        == "Se jugó el partido el 7 de febrero de 2016"
    assert to_statement("¿Cuándo se fundó la ciudad?", "el 2 de mayo") == "Se fundó la ciudad el 2 de mayo"
    assert to_statement("¿Cuándo se fundó la ciudad?", "mayo de 1850") == "Se fundó la ciudad en mayo de 1850"
    assert to_statement("¿Cómo se llamaba el estadio?", "Superdome") == "El estadio se llamaba Superdome"
    assert to_statement("¿Cómo se llama el entrenador, que llegó en 2015?", "Kubiak") \
        == "El entrenador, que llegó en 2015, se llama Kubiak"
    assert natural_statement("¿Por qué se fue Tesla?", "por dinero") is None
    fallback = to_statement("¿Por qué se fue Tesla?", "por dinero")
    assert fallback == 'Según el texto, la respuesta a "Por qué se fue Tesla" es por dinero'


def test_false_statement_uses_a_different_answer_of_the_same_type():
    qa = {"question": "¿En qué año nació Tesla?", "answer": "1856", "answers": ["1856"]}
    article = [qa, {"question": "¿Cuándo murió?", "answer": "1943", "answers": ["1943"]},
               {"question": "¿Dónde nació?", "answer": "Smiljan", "answers": ["Smiljan"]}]
    seen = set()
    for s in range(40):
        stmt, truth = make_true_false(qa, article, random.Random(s))
        assert stmt.endswith(" " + TF_SUFFIX)
        assert stmt == f"Según el texto, Tesla nació en {'1856' if truth else '1943'}. {TF_SUFFIX}"
        seen.add(truth)
    assert seen == {True, False}
    # no same-type distractor: a false statement is impossible -> None, never a mixed-type swap
    alone = [qa, article[2]]
    results = {make_true_false(qa, alone, random.Random(s)) for s in range(40)}
    assert results == {None, (f"Según el texto, Tesla nació en 1856. {TF_SUFFIX}", True)}
    assert make_true_false({"question": "¿Qué?", "answer": None, "answers": []}, article, random.Random(0)) is None


def test_true_false_items_open_the_same_way():
    assert true_false_item("¿En qué fecha se jugó el partido?", "7 de febrero de 2016") \
        == f"Según el texto, se jugó el partido el 7 de febrero de 2016. {TF_SUFFIX}"
    assert true_false_item("¿Cuál es el nombre del estadio?", "Levi's Stadium") \
        == f"Según el texto, el nombre del estadio es Levi's Stadium. {TF_SUFFIX}"
    assert true_false_item("¿Quién ganó?", "Denver Broncos") == f"Según el texto, Denver Broncos ganó. {TF_SUFFIX}"
    assert true_false_item("¿Por qué se fue Tesla?", "por dinero") \
        == f'Según el texto, la respuesta a "Por qué se fue Tesla" es por dinero. {TF_SUFFIX}'


def test_false_statement_prefers_an_answer_to_the_same_kind_of_question():
    qa = {"question": "¿Dónde nació Tesla?", "answer": "Smiljan", "answers": ["Smiljan"]}
    article = [qa, {"question": "¿Quién contrató a Tesla?", "answer": "Thomas Edison", "answers": ["Thomas Edison"]},
               {"question": "¿Dónde murió Tesla?", "answer": "Nueva York", "answers": ["Nueva York"]}]
    false = {make_true_false(qa, article, random.Random(s)) for s in range(40)} - {(f"Según el texto, Tesla nació en Smiljan. {TF_SUFFIX}", True)}
    assert false == {(f"Según el texto, Tesla nació en Nueva York. {TF_SUFFIX}", False)}  # never "en Thomas Edison"
    # without a same-kind answer, any same-type one
    false = {make_true_false(qa, article[:2], random.Random(s)) for s in range(40)} - {(f"Según el texto, Tesla nació en Smiljan. {TF_SUFFIX}", True)}
    assert false == {(f"Según el texto, Tesla nació en Thomas Edison. {TF_SUFFIX}", False)}


def test_true_false_items_prefer_questions_that_rephrase_naturally(examples):
    # 66% of SQuAD-es questions only have the quoted fallback wording, which the model learns to
    # copy (leaking the answer into its list); picking rephrasable pairs first: 0.43 of these
    # statements use it (0.70 when picked at random; 0.36 with the default min_short=2)
    tf = [t for e in examples for t in e["true_false"]]
    fallback = sum(t["statement"].startswith("Según el texto, la respuesta a") for t in tf) / len(tf)
    assert fallback < 0.5, fallback


def test_false_statements_in_real_examples_swap_same_type_answers(examples, paragraphs):
    qas = {q["question"]: q for p in paragraphs for q in p["qas"]}
    false = [t for e in examples for t in e["true_false"] if not t["true"]]
    assert len(false) > 500
    for t in false:
        qa = qas.get(t["question"]) or qas[t["question"].lstrip("¿")]
        assert t["statement"] != true_false_item(qa["question"], qa["answer"])


def test_examples_state_the_counts_their_targets_hold(examples):
    assert len(examples) > 1500
    assert Counter(e["n"] for e in examples)[5] > 100
    for e in examples:
        system, user, assistant = e["messages"]
        assert (system["role"], user["role"], assistant["role"]) == ("system", "user", "assistant")
        assert user["content"] == f"{e['context']}|n={e['n']}|k={e['k']}|short={e['n'] - e['k']}"
        items = parse_questions(assistant["content"])
        assert len(items) == e["n"] <= 5
        assert sum(map(is_true_false, items)) == e["k"] == len(e["true_false"])
        assert 1 <= e["k"] <= 2 and e["n"] - e["k"] >= 1
        assert assistant["content"].startswith("1. ")
        assert len(set(items)) == len(items)


def test_true_false_never_shares_a_pair_with_a_short_question(examples):
    for e in examples:
        items = parse_questions(e["messages"][2]["content"])
        shorts = [i for i in items if not is_true_false(i)]
        for t in e["true_false"]:
            assert t["question"] not in shorts
            assert t["statement"] in items


def test_examples_are_deterministic_and_per_paragraph(paragraphs, examples):
    # whole articles, since false statements draw their distractors from the article
    some = [p for p in paragraphs if p["title"] in ("Varsovia", "Genghis", "Kenia")]
    again = make_sft_examples(some, 5, 2, 1, "S", "{text}|n={n}|k={k}|short={n_short}", seed=3)
    first = {e["id"]: e for e in examples}
    assert again and all(e == first[e["id"]] for e in again)  # filtering others changes nothing


def test_short_paragraph_gets_its_own_counts():
    p = {"id": "T#0", "title": "T", "context": "Tesla nació en 1856 y murió en 1943.", "qas": [
        {"question": "¿En qué año nació Tesla?", "answer": "1856", "answers": ["1856"]},
        {"question": "¿En qué año murió Tesla?", "answer": "1943", "answers": ["1943"]},
        {"question": "¿Dónde vivió Tesla al final de su vida?", "answer": "Nueva York", "answers": ["Nueva York"]}]}
    [e] = make_sft_examples([p], n_questions=5, n_true_false=2, min_short=1, seed=0)
    assert e["n"] == 3 and e["k"] == 2
    assert "exactamente 3 preguntas" in e["messages"][1]["content"]
    assert "2 afirmaciones" in e["messages"][1]["content"]
    assert "1 preguntas de respuesta corta" in e["messages"][1]["content"]
    assert make_sft_examples([{**p, "qas": p["qas"][:1]}], 5, 2, 1, seed=0) == []  # no room for a T/F item


def test_build_target_numbers_and_interleaves():
    t = build_target(["¿A?", "¿B?", "¿C?"], ["X es Y. ¿Verdadero o falso?"], random.Random(0))
    lines = t.split("\n")
    assert [ln.split(". ", 1)[0] for ln in lines] == ["1", "2", "3", "4"]
    assert [ln for ln in lines if "¿A?" in ln or "¿B?" in ln or "¿C?" in ln] == [
        ln for ln in lines if not ln.endswith("falso?")]  # short ones keep their order
    positions = {build_target(["¿A?", "¿B?"], ["S. ¿Verdadero o falso?"], random.Random(s)).split("\n").index(
        next(ln for ln in build_target(["¿A?", "¿B?"], ["S. ¿Verdadero o falso?"], random.Random(s)).split("\n")
             if "falso" in ln)) for s in range(20)}
    assert len(positions) > 1


def test_build_target_fixed_positions_and_bad_value():
    shorts, tfs = ["¿A?", "¿B?", "¿C?"], ["S1. ¿Verdadero o falso?", "S2. ¿Verdadero o falso?"]
    end = build_target(shorts, tfs, random.Random(0), "end").split("\n")
    start = build_target(shorts, tfs, random.Random(0), "start").split("\n")
    assert [ln.endswith("falso?") for ln in end] == [False, False, False, True, True]
    assert [ln.endswith("falso?") for ln in start] == [True, True, False, False, False]
    assert end[0] == "1. ¿A?" and start[0] == "1. S1. ¿Verdadero o falso?"
    with pytest.raises(PipelineError, match="data.tf_position: 'middle' is not one of end, start, random"):
        build_target(shorts, tfs, random.Random(0), "middle")


def test_split_by_title_keeps_articles_apart(paragraphs):
    parts = split_by_title(paragraphs, val=0.1, test=0.1, seed=0)
    titles = {k: {p["title"] for p in v} for k, v in parts.items()}
    assert not titles["train"] & titles["test"] and not titles["train"] & titles["val"]
    assert not titles["val"] & titles["test"]
    assert sum(map(len, parts.values())) == len(paragraphs)
    for name in ("val", "test"):
        assert 0.05 < len(parts[name]) / len(paragraphs) < 0.15
    assert split_by_title(paragraphs, 0.1, 0.1, seed=0) == parts
    assert split_by_title(paragraphs, 0.1, 0.1, seed=1) != parts
    with pytest.raises(PipelineError, match="split"):
        split_by_title(paragraphs, 0.6, 0.5, seed=0)


@pytest.fixture(scope="module")
def wiki_doc():
    return json.loads(wiki_summaries_path().read_text(encoding="utf-8"))


def test_wiki_people_entries(wiki_doc):
    assert Counter(v["topic"] for v in wiki_doc.values())[WIKI_PEOPLE_TOPIC] == 1994
    rows = load_wiki_biographies(wiki_summaries_path(), None, 0, min_chars=0, max_chars=100_000)
    assert len(rows) == 1994
    assert all(r["id"] == f"wiki:{r['title']}" and r["source"] == "wiki" for r in rows)
    assert all("\n" not in r["context"] and "\xa0" not in r["context"] and "  " not in r["context"] for r in rows)


def test_wiki_lengths_and_sample(wiki_doc):
    rows = load_wiki_biographies(wiki_summaries_path(), None, 0, min_chars=200, max_chars=600)
    assert rows and all(200 <= len(r["context"]) <= 600 for r in rows)
    cut = [r for r in rows if len(" ".join(wiki_doc_extract(wiki_doc, r["title"]).split())) > 600]
    assert cut and all(r["context"].endswith((".", "!", "?")) for r in cut)
    a = load_wiki_biographies(wiki_summaries_path(), 50, 7, 200, 600)
    assert len(a) == 50 and a == load_wiki_biographies(wiki_summaries_path(), 50, 7, 200, 600)
    assert a != load_wiki_biographies(wiki_summaries_path(), 50, 8, 200, 600)


def wiki_doc_extract(doc: dict, title: str) -> str:
    return next(v["extract"] for v in doc.values() if v["title"] == title)


def test_wiki_bad_entry_names_file_and_field(tmp_path):
    f = tmp_path / "summaries.json"
    f.write_text(json.dumps({"Tesla": {"title": "Tesla", "topic": "Personas"}}))
    with pytest.raises(PipelineError) as e:
        load_wiki_biographies(f, None, 0, 0, 1000)
    assert str(f) in str(e.value) and "'Tesla'" in str(e.value) and "missing field 'extract'" in str(e.value)
    f.write_text("[1, 2")
    with pytest.raises(PipelineError, match="invalid JSON"):
        load_wiki_biographies(f, None, 0, 0, 1000)


def test_cut_paragraph_keeps_sentences_and_only_questions_answered_inside(paragraphs):
    from pipelines.qgen_es.sources import cut_paragraph
    long = [p for p in paragraphs if len(p["context"]) > 700]
    assert len(long) > 900
    kept = dropped_q = 0
    for p in long:
        c = cut_paragraph(p, 700)
        if c is None:
            continue
        kept += 1
        assert len(c["context"]) <= 701 and p["context"].startswith(c["context"])
        assert c["context"][-1] in '.!?"»”)'  # ends on a sentence boundary
        assert c["qas"] and all(qa["answer"] and all(a in c["context"] for a in qa["answers"]) for qa in c["qas"])
        dropped_q += len(p["qas"]) - len(c["qas"])
    assert kept > 900 and dropped_q > 0
    short = next(p for p in paragraphs if len(p["context"]) < 300)
    assert cut_paragraph(short, 700) is short
    # the answer span decides, not just the text: "1897" answered late in the paragraph is dropped
    # even if the cut text mentions 1897 earlier
    p = {"id": "x#0", "title": "x", "context": "Nació en 1897. " + "Texto. " * 20 + "Murió en 1897.",
         "qas": [{"question": "¿Cuándo murió?", "answer": "1897", "answers": ["1897"], "answer_end": 170},
                 {"question": "¿Cuándo nació?", "answer": "1897", "answers": ["1897"], "answer_end": 13}]}
    c = cut_paragraph(p, 40)
    assert c["context"].endswith(".") and [qa["question"] for qa in c["qas"]] == ["¿Cuándo nació?"]
    assert cut_paragraph({**p, "qas": p["qas"][:1]}, 40) is None
