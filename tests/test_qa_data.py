"""extractive_qa data stages on malformed and repairable input: one clear line naming the file
and JSON path, exit 2, nothing half-written; offset repairs are logged; split keeps articles
apart."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import run_stage

from pipelines.core.errors import PipelineError
from pipelines.extractive_qa.data import assign_titles, read_squad, repair_answer

CTX = "Nikola Tesla nació en 1856 en Smiljan, en el Imperio austríaco."


def _doc(qas, version="1.1", title="Nikola Tesla"):
    return {"version": version, "data": [{"title": title, "paragraphs": [{"context": CTX, "qas": qas}]}]}


def _qa(qid, start, text="1856", **extra):
    return {"id": qid, "question": "¿Cuándo nació Tesla?", "answers": [{"text": text, "answer_start": start}], **extra}


@pytest.fixture
def run_clean(tmp_path, params_factory):
    """Write `content` as the task's data file, run download + clean; return (proc, outputs dir)."""
    def run(content: str | bytes):
        root = tmp_path / "src"
        root.mkdir(exist_ok=True)
        f = root / "qa.json"
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
        params = params_factory(["data.root=" + str(root), "data.file=qa.json"], task="extractive_qa")
        out = tmp_path / "data" / "extractive_qa"
        proc = run_stage("download", params, task="extractive_qa")
        assert proc.returncode == 0, proc.stderr
        return run_stage("clean", params, task="extractive_qa"), out
    return run


# Through the real clean stage (exit 2, one line, nothing written), truncated JSON, invalid
# UTF-8, a missing 'context' and unrepairable offsets are cases of test_bad_inputs.py; the
# reader's other messages are checked here, in-process.
@pytest.mark.parametrize("doc,needles", [
    ({"version": "1.1", "data": []}, ["'data' is empty"]),
    ({"version": "1.1"}, ["missing field 'data'"]),
    (_doc([_qa("a", 22), {"id": "b", "answers": []}]), ["data[0].paragraphs[0].qas[1]: missing field 'question'"]),
    (_doc([{"id": "a", "question": "¿?", "answers": [{"text": "1856"}]}]),
     ["data[0].paragraphs[0].qas[0].answers[0]: missing field 'answer_start'"]),
    (_doc([_qa("a", "22")]), ["answers[0]: field 'answer_start': expected int, got str"]),
    (_doc([_qa("a", 22), _qa("a", 22)]), ["qas[1]: duplicate question id 'a'"]),
])
def test_malformed_squad_names_file_and_json_path(tmp_path, doc, needles):
    f = tmp_path / "qa.json"
    f.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(PipelineError) as e:
        read_squad(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: ") and "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg


def test_offsets_repaired_or_dropped_and_counted(run_clean):
    qas = [
        _qa("ok", 22),
        _qa("off_by_3", 25),  # "1856" is at 22: repaired
        _qa("spaces", 21, text=" 1856 "),  # surrounding spaces: stripped, offset kept consistent
        _qa("near", 22, text="Imperio"),  # occurs 23 chars away: within the default window (50)
        _qa("missing", 3, text="Belgrado"),  # not in the context at all
        {"id": "empty", "question": "¿?", "answers": [{"text": "", "answer_start": -1}]},
        {"id": "mixed", "question": "¿Dónde?", "answers": [{"text": "", "answer_start": -1},
                                                         {"text": "Smiljan", "answer_start": 30}]},
    ]
    proc, out = run_clean(json.dumps(_doc(qas)))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "clean_stats.json").read_text())
    rows = {json.loads(l)["id"]: json.loads(l) for l in (out / "clean.jsonl").read_text().splitlines()}
    for r in rows.values():
        for a in r["answers"]:
            assert CTX[a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
    assert rows["off_by_3"]["answers"][0]["answer_start"] == 22
    assert rows["spaces"]["answers"] == [{"text": "1856", "answer_start": 22}]
    assert rows["mixed"]["answers"] == [{"text": "Smiljan", "answer_start": 30}]
    assert "missing" not in rows and "empty" not in rows
    assert rows["near"]["answers"][0]["answer_start"] == CTX.index("Imperio")
    assert stats["answers"]["repaired"] == 2 and stats["answers"]["stripped"] == 1
    assert stats["answers"]["not_found"] == 1 and stats["answers"]["empty"] == 2
    assert stats["questions"] == {"kept": 5, "dropped_no_valid_answer": 2}
    assert "repaired" in proc.stdout and "dropped_no_valid_answer" in proc.stdout


def test_repair_window():
    assert repair_answer(CTX, "Imperio", 22, 10, True) == (None, "too_far")
    assert repair_answer(CTX, "Imperio", 40, 10, True)[1] == "repaired"
    assert repair_answer(CTX, "1856", 22, 0, True) == ({"text": "1856", "answer_start": 22}, "ok")


def test_v2_keeps_unanswerable_questions(run_clean):
    qas = [_qa("a", 22), {"id": "imp", "question": "¿Cuándo murió?", "answers": [], "is_impossible": True},
           {"id": "bad", "question": "¿Dónde?", "answers": [{"text": "", "answer_start": -1}]}]
    proc, out = run_clean(json.dumps(_doc(qas, version="v2.0")))
    assert proc.returncode == 0, proc.stderr
    rows = {json.loads(l)["id"]: json.loads(l) for l in (out / "clean.jsonl").read_text().splitlines()}
    assert rows["imp"]["is_impossible"] and rows["imp"]["answers"] == []
    assert rows["bad"]["is_impossible"]  # no valid answer left: unanswerable in v2
    assert json.loads((out / "clean_stats.json").read_text())["format"] == "v2"


def test_split_by_title_is_seeded_and_disjoint():
    counts = {f"art{i}": 50 + 7 * i for i in range(30)}
    a = assign_titles(counts, 0.1, 0.2, seed=1)
    assert a == assign_titles(counts, 0.1, 0.2, seed=1) and a != assign_titles(counts, 0.1, 0.2, seed=2)
    share = Counter()
    for t, s in a.items():
        share[s] += counts[t]
    total = sum(counts.values())
    assert abs(share["test"] / total - 0.2) < 0.06 and abs(share["val"] / total - 0.1) < 0.06
    assert set(a.values()) == {"train", "val", "test"}
