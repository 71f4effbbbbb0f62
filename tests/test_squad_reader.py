"""core/squad.py: the one SQuAD reader and title cleaner behind extractive_qa, qgen_es and rag,
on the real SQuAD-es sample and on small malformed files."""
from __future__ import annotations

import json

import pytest

from pipelines.core.config import PROJECT_ROOT
from pipelines.core.errors import PipelineError
from pipelines.core.squad import clean_title, hub_to_squad, read_squad
from pipelines.rag.corpus import squad_documents

pytestmark = pytest.mark.fast
SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"
CTX = "Nikola Tesla nació en 1856 en Smiljan."


def _file(tmp_path, qas, version="1.1", title="Nikola _ Tesla"):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"version": version, "data": [{"title": title, "paragraphs": [{"context": CTX, "qas": qas}]}]}),
                 encoding="utf-8")
    return f


def _qa(qid, **extra):
    return {"id": qid, "question": "¿Cuándo nació Tesla?", "answers": [{"text": "1856", "answer_start": 22}], **extra}


@pytest.fixture(scope="module")
def real():
    return read_squad(SQUAD_ES)


def test_real_file_structure_and_raw_titles(real):
    assert not real.is_v2
    assert len(real.articles) == 48 and len(list(real.paragraphs())) == 1996
    rows = real.questions()
    assert len(rows) == 6583 and len({r["id"] for r in rows}) == 6583
    assert not any(r["is_impossible"] for r in rows)
    assert real.articles[3]["title"] == "Nikola _ Tesla"  # as in the file; cleaning is the task's call
    # SQuAD-es' alignment failures are kept for the task to count and drop
    assert any(a["text"] == "" and a["answer_start"] == -1 for r in rows for a in r["answers"])


def test_title_modes_differ_only_on_translation_notes(real):
    titles = [a["title"] for a in real.articles]
    differ = {t for t in titles if clean_title(t) != clean_title(t, drop_language_note=False)}
    assert differ == {"Victoria _ and _ Albert _ Museum (en inglés)", "American Broadcasting Company (en inglés)."}
    assert clean_title("American Broadcasting Company (en inglés).") == "American Broadcasting Company"
    assert clean_title("American Broadcasting Company (en inglés).", drop_language_note=False) == \
        "American Broadcasting Company (en inglés)"
    assert clean_title("Nikola _ Tesla") == "Nikola Tesla" and clean_title("Genghis.") == "Genghis"
    assert clean_title("Sky _ (Reino Unido)") == "Sky (Reino Unido)"  # a disambiguation, kept
    assert all("_" not in clean_title(t) and clean_title(t) == clean_title(t).strip(". ") for t in titles)


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_is_impossible_must_be_a_bool(tmp_path, value):
    f = _file(tmp_path, [_qa("a"), _qa("b", is_impossible=value)])
    with pytest.raises(PipelineError) as e:
        read_squad(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: data[0].paragraphs[0].qas[1]: field 'is_impossible': expected bool") and "\n" not in msg
    assert ("without quotes" in msg) == isinstance(value, str)


def test_v2_by_version_flag_or_format(tmp_path):
    assert not read_squad(_file(tmp_path, [_qa("a")])).is_v2
    assert read_squad(_file(tmp_path, [_qa("a")], version="v2.0")).is_v2
    doc = read_squad(_file(tmp_path, [_qa("a"), _qa("b", is_impossible=True, answers=[])]))
    assert doc.is_v2 and [r["is_impossible"] for r in doc.questions()] == [False, True]
    assert read_squad(_file(tmp_path, [_qa("a")]), "v2").is_v2
    assert not read_squad(_file(tmp_path, [_qa("a")], version="v2.0"), "v1").is_v2
    with pytest.raises(PipelineError, match="data.format: 'v3' is not one of auto, v1, v2"):
        read_squad(_file(tmp_path, [_qa("a")]), "v3")


@pytest.mark.parametrize("qas, where", [
    ([{"id": "a", "answers": []}], "qas[0]: missing field 'question'"),
    ([{"question": "¿?", "answers": []}], "qas[0]: missing field 'id'"),
    ([{"id": True, "question": "¿?", "answers": []}], "field 'id': expected str/int, got bool"),
    ([_qa("a"), _qa("a")], "qas[1]: duplicate question id 'a'"),
    ([{"id": "a", "question": "¿?"}], "qas[0]: missing field 'answers'"),
    ([{"id": "a", "question": "¿?", "answers": ["1856"]}], "qas[0].answers[0]: expected an object, got str"),
    ([{"id": "a", "question": "¿?", "answers": [{"text": "1856", "answer_start": "22"}]}],
     "answers[0]: field 'answer_start': expected int, got str"),
])
def test_malformed_question_names_its_place(tmp_path, qas, where):
    f = _file(tmp_path, qas)
    with pytest.raises(PipelineError) as e:
        read_squad(f)
    assert str(e.value).startswith(f"{f}: data[0].paragraphs[0].") and where in str(e.value)


@pytest.mark.parametrize("doc, where", [
    ([], "expected a JSON object with a 'data' list, got list"),
    ({"data": []}, "'data' is empty (no articles)"),
    ({"data": [{"title": "T", "paragraphs": []}]}, "'data' holds no paragraphs"),
    ({"data": [{"paragraphs": []}]}, "data[0]: missing field 'title'"),
    ({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": {}}]}]}, "field 'qas': expected list, got dict"),
])
def test_malformed_file_names_its_place(tmp_path, doc, where):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(PipelineError) as e:
        read_squad(f)
    assert str(e.value).startswith(f"{f}: ") and where in str(e.value)


def test_rag_documents_use_extractive_qa_titles_and_impossible_questions_are_unanswerable(tmp_path):
    f = _file(tmp_path, [_qa("a"), {"id": "b", "question": "¿Dónde murió?", "answers": [], "is_impossible": True}])
    docs, questions = squad_documents(f)
    # titles as extractive_qa's article split names them (the rag tuning/test sets follow that split)
    assert [d["doc"] for d in docs] == ["Nikola Tesla#0"] and docs[0]["text"] == CTX
    assert questions[0] == {"id": "a", "question": "¿Cuándo nació Tesla?", "title": "Nikola Tesla",
                            "relevant_docs": ["Nikola Tesla#0"], "evidence": [], "answer": "1856", "answerable": True}
    assert questions[1]["answerable"] is False and questions[1]["relevant_docs"] == []


def test_hub_rows_become_a_file_the_reader_accepts(tmp_path, monkeypatch):
    """hub_to_squad (the download of data.source=hub, extractive_qa and qgen_es alike) on a local
    dataset folder: rows regrouped by title and context; a row without answers is v2 unanswerable."""
    import datasets
    from omegaconf import OmegaConf

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # nothing under ~/.cache
    rows = [{"id": "a", "title": "Tesla", "context": CTX, "question": "¿Cuándo nació?",
             "answers": {"text": ["1856"], "answer_start": [22]}},
            {"id": "b", "title": "Tesla", "context": CTX, "question": "¿Dónde nació?",
             "answers": {"text": ["Smiljan"], "answer_start": [30]}},
            {"id": "c", "title": "Tesla", "context": CTX, "question": "¿Cuándo murió?",
             "answers": {"text": [], "answer_start": []}}]
    src = tmp_path / "hub"
    src.mkdir()
    (src / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    d = OmegaConf.create({"hub_name": str(src), "hub_config": None, "hub_split": "train"})
    assert hub_to_squad(d, tmp_path / "s.json") == {"hub_name": str(src), "hub_config": None, "hub_split": "train"}
    doc = read_squad(tmp_path / "s.json")
    assert doc.is_v2 and len(doc.articles) == 1 and len(doc.articles[0]["paragraphs"]) == 1
    assert [(q["id"], q["answers"], q["is_impossible"]) for q in doc.questions()] == [
        ("a", [{"text": "1856", "answer_start": 22}], False), ("b", [{"text": "Smiljan", "answer_start": 30}], False),
        ("c", [], True)]
