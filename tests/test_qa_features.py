"""Features for extractive QA with the real MiniLM tokenizer: overflowing windows of a long
context, start/end labels that map back to the answer text through the offset mapping, CLS
labels for windows without the answer, and the same on every feature of the real data."""
from __future__ import annotations

import pytest
from conftest import PROJECT_ROOT, base_model
from transformers import AutoTokenizer

from pipelines.core.errors import PipelineError
from pipelines.core.squad import read_squad
from pipelines.extractive_qa.features import prepare_features

SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(base_model("minilm"))


def _decode(feats, i, context):
    s, e = feats["start_positions"][i], feats["end_positions"][i]
    return context[feats["offset_mapping"][i][s][0]:feats["offset_mapping"][i][e][1]]


def _long_example():
    filler = " ".join(f"La frase número {i} habla del río y de la ciudad." for i in range(12))
    answer = "Nikola Tesla"
    context = f"{filler} El inventor del motor de inducción fue {answer}, nacido en Smiljan. {filler}"
    return {"id": "long", "question": "¿Quién inventó el motor de inducción?", "context": context,
            "answers": [{"text": answer, "answer_start": context.index(answer)}]}


def test_answer_in_second_window(tok):
    ex = _long_example()
    feats = prepare_features(tok, [ex], max_length=96, doc_stride=32, max_query_length=32)
    n = len(feats["input_ids"])
    assert n >= 3 and feats["example_id"] == ["long"] * n
    assert all(l <= 96 for l in feats["length"])
    has = [i for i in range(n) if feats["start_positions"][i] != feats["cls_index"][i]]
    # the answer sits after the first window and lies wholly in the next one or two (they overlap)
    assert has and has[0] >= 1 and len(has) <= 2
    for i in has:
        assert _decode(feats, i, ex["context"]) == "Nikola Tesla"
        assert feats["start_positions"][i] <= feats["end_positions"][i]
    for i in set(range(n)) - set(has):
        assert feats["start_positions"][i] == feats["end_positions"][i] == feats["cls_index"][i] == 0
    # question and special tokens are not context: no answer can be read from them
    for i in range(n):
        q_len = len(tok(ex["question"], add_special_tokens=False)["input_ids"])  # question first (right padding)
        assert all(o == [-1, -1] for o in feats["offset_mapping"][i][: q_len + 2])
        assert feats["offset_mapping"][i][-1] == [-1, -1]
    # windows overlap by doc_stride tokens: the context text of neighbours overlaps
    first_end = max(o[1] for o in feats["offset_mapping"][0])
    second_start = min(o[0] for o in feats["offset_mapping"][1] if o[0] >= 0)
    assert second_start < first_end


def test_answer_cut_by_window_edge_is_cls(tok):
    ex = _long_example()
    feats = prepare_features(tok, [ex], max_length=96, doc_stride=32, max_query_length=32)
    for i, offs in enumerate(feats["offset_mapping"]):
        ctx = [o for o in offs if o[0] >= 0]
        whole = ctx[0][0] <= ex["answers"][0]["answer_start"] and ctx[-1][1] >= ex["answers"][0]["answer_start"] + 12
        assert (feats["start_positions"][i] != 0) == whole


def test_long_question_is_cut_not_crashing(tok):
    ex = _long_example()
    ex["question"] = "¿" + " ".join(["pregunta"] * 200) + "?"
    feats = prepare_features(tok, [ex], max_length=96, doc_stride=16, max_query_length=24)
    assert all(l <= 96 for l in feats["length"])
    assert any(_decode(feats, i, ex["context"]) == "Nikola Tesla"
               for i in range(len(feats["input_ids"])) if feats["start_positions"][i])


def test_stride_too_large_is_a_config_error(tok):
    with pytest.raises(PipelineError, match="data.doc_stride"):
        prepare_features(tok, [_long_example()], max_length=96, doc_stride=80, max_query_length=24)


def test_labels_on_all_real_data_map_back_to_answers(tok):
    rows = read_squad(SQUAD_ES).questions()
    rows = [r for r in rows if any(a["text"] and a["answer_start"] >= 0 for a in r["answers"])][:1500]
    for r in rows:
        r["answers"] = [a for a in r["answers"] if a["text"] and a["answer_start"] >= 0]
    feats = prepare_features(tok, rows, max_length=384, doc_stride=128, max_query_length=64)
    by_id = {r["id"]: r for r in rows}
    labelled = exact = 0
    for i, eid in enumerate(feats["example_id"]):
        if feats["start_positions"][i] == feats["cls_index"][i]:
            continue
        labelled += 1
        ans = by_id[eid]["answers"][0]["text"]
        got = _decode(feats, i, by_id[eid]["context"])
        assert ans in got or got in ans, (eid, ans, got)  # token boundaries may differ, never the place
        exact += got == ans
    assert labelled >= len(rows)  # every answer lies wholly in at least one window
    assert exact / labelled > 0.97, exact / labelled
