"""Bad SQuAD input that used to give silent wrong labels, through the real stages (issue 17).

  * `is_impossible: "false"` (a string) was truthy: every question became unanswerable. The
    one reader (core/squad.py) now rejects a non-bool in extractive_qa, qgen_es and rag alike.
  * In a SQuAD v2 file, an answerable question whose answer is not in its context (nor close
    enough to be repaired) became a "no answer" label; now it is an error naming the question.
    Its twin, an offset a few characters off, is still repaired (exit 0).

Same contract and the same assertions (its test_bad_input) as tests/test_bad_inputs.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bad_inputs import (
    CTX,
    SQUAD_FILE,
    Case,
    params,
    qa,
    rag_downloaded,
    raw,
    run,
    squad,
    test_bad_input as check_case,  # an alias: pytest does not collect it twice
    write,
)

GOOD = qa("ok", 22)  # "1856" at 22 in CTX


def squad_v2(qas: list[dict]) -> str:
    """A v2 file by its version only: no question carries `is_impossible`."""
    doc = json.loads(squad(qas))
    doc["version"] = "v2.0"
    return json.dumps(doc, ensure_ascii=False)


def _squad_corpus(src: Path):
    """rag on one SQuAD corpus (with its own questions) instead of the Bash manual."""
    def edit(b: dict) -> None:
        b["data"]["corpora"] = {"squad_es": {"path": str(src), "format": "squad"}}
        b["data"]["question_sets"] = {"squad_es": {"corpus": "squad_es", "file": "", "root": None, "format": "squad",
                                                   "limit": None, "generate": False}}
        b["collections"]["bash-w300"]["corpus"] = "squad_es"
    return edit


def _rag_squad(tmp: Path, content: str) -> Path:
    return rag_downloaded(tmp, edit=_squad_corpus(write(tmp / "src" / "squad.json", content)))


IMPOSSIBLE_STRING = squad([GOOD, qa("str", 22, is_impossible="false")])
WHERE = "data[0].paragraphs[0].qas[1]: field 'is_impossible': expected bool, got str"

CASES = [
    Case("extractive_qa-clean-is-impossible-string", "extractive_qa", "clean",
         lambda tmp: (raw(tmp, "extractive_qa", SQUAD_FILE, IMPOSSIBLE_STRING), params(tmp, "extractive_qa"))[1],
         (SQUAD_FILE, WHERE, "without quotes"), "extractive_qa_clean"),
    Case("qgen_es-clean-is-impossible-string", "qgen_es", "clean",
         lambda tmp: (raw(tmp, "qgen_es", SQUAD_FILE, IMPOSSIBLE_STRING), params(tmp, "qgen_es"))[1],
         (SQUAD_FILE, WHERE), "qgen_es_clean"),
    Case("rag-clean-squad-is-impossible-string", "rag", "clean",
         lambda tmp: _rag_squad(tmp, IMPOSSIBLE_STRING),
         ("squad.json", WHERE), "rag_clean"),
    # v2 (any `is_impossible` makes the file v2): answerable, but "Belgrado" is not in the context
    Case("extractive_qa-clean-v2-answer-not-in-context", "extractive_qa", "clean",
         lambda tmp: (raw(tmp, "extractive_qa", SQUAD_FILE, squad([GOOD, qa("absent", 3, "Belgrado", is_impossible=False)])),
                      params(tmp, "extractive_qa"))[1],
         (SQUAD_FILE, "question 'absent'", "answerable (is_impossible false)", "'Belgrado' at 3: not_found"),
         "extractive_qa_clean"),
    # ... "1943" is, but ~190 characters from its answer_start: beyond data.clean.repair_window
    Case("extractive_qa-clean-v2-answer-too-far", "extractive_qa", "clean",
         lambda tmp: (raw(tmp, "extractive_qa", SQUAD_FILE, squad_v2([GOOD, qa("far", 22, "1943")])),
                      params(tmp, "extractive_qa"))[1],
         (SQUAD_FILE, "question 'far'", "'1943' at 22: too_far"), "extractive_qa_clean"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, case):
    check_case(tmp_path, case)  # the matrix' own assertions: exit 2, one error line last, nothing left, no key


def test_v2_offset_off_by_some_characters_is_repaired_not_an_error(tmp_path):
    """The twin of extractive_qa-clean-v2-answer-not-in-context: an answerable v2 question whose
    offset is 3 characters off is repaired; a real impossible question stays unanswerable."""
    imp = {"id": "imp", "question": "¿Cuándo murió en Smiljan?", "answers": [], "is_impossible": True}
    raw(tmp_path, "extractive_qa", SQUAD_FILE, squad([qa("off_by_3", 25, is_impossible=False), imp]))
    proc = run(tmp_path, "extractive_qa", "clean", params(tmp_path, "extractive_qa"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "data/extractive_qa"
    rows = {r["id"]: r for r in map(json.loads, (out / "clean.jsonl").read_text().splitlines())}
    assert rows["off_by_3"]["answers"] == [{"text": "1856", "answer_start": 22}]
    assert rows["off_by_3"]["is_impossible"] is False and rows["imp"]["is_impossible"] is True
    stats = json.loads((out / "clean_stats.json").read_text())
    assert stats["format"] == "v2" and stats["questions"] == {"kept": 1, "kept_impossible": 1}
    assert CTX[22:26] == "1856"
