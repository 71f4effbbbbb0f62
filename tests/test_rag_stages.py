"""rag stages on bad input: one clear line, exit 2, nothing half-written; top-k clamping for real."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import base_model, make_params, run_stage


def _params(tmp_path: Path, corpus: Path, edit=None) -> Path:
    """rag params on a corpus of our own, with the negatives as the only question set; no SQuAD."""
    path = make_params(tmp_path, "rag")
    doc = yaml.safe_load(path.read_text())
    b = doc["rag"]
    b["data"]["corpora"] = {"bash": {"path": str(corpus), "format": "text"}}
    b["data"]["question_sets"] = {"neg": {**b["data"]["question_sets"]["bash_negatives"],
                                          "root": str(Path(__file__).parents[1] / "pipelines/rag")}}
    b["collections"] = {"bash-w300": b["collections"]["bash-w300"]}
    b["embeddings"] = {"bash-w300-minilm": {"collection": "bash-w300", "embedder": "minilm"}}
    b["embedders"] = {"minilm": b["embedders"]["minilm"]}
    b["run"].update(collection="bash-w300", embedder="minilm")
    if edit:
        edit(b)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def test_non_utf8_corpus(tmp_path):
    corpus = tmp_path / "manual.txt"
    corpus.write_bytes("La orden alias define un alias.\n\nAño y señal.\n".encode("latin-1"))
    params = _params(tmp_path, corpus)
    run_stage("download", params, "rag", check=True)
    _one_line_error(run_stage("clean", params, "rag"), "manual.txt", "not valid UTF-8")
    assert not (tmp_path / "data/rag/clean").exists()


def test_corpus_folder_without_text_files(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4")
    _one_line_error(run_stage("download", _params(tmp_path, folder), "rag"), "corpus", "no text files")
    assert not (tmp_path / "data/rag/raw").exists()


def test_empty_corpus_file(tmp_path):
    corpus = tmp_path / "empty.md"
    corpus.write_text("\n\n   \n", encoding="utf-8")
    params = _params(tmp_path, corpus)
    run_stage("download", params, "rag", check=True)
    _one_line_error(run_stage("clean", params, "rag"), "empty.md", "corpus is empty")


def test_overlap_not_below_size_and_bad_top_k(tmp_path):
    corpus = tmp_path / "m.txt"
    corpus.write_text("Uno dos tres.\n", encoding="utf-8")

    def bad(b):
        b["collections"]["bash-w300"]["overlap"] = 300
        b["run"]["top_k"] = 0

    params = _params(tmp_path, corpus, bad)
    run_stage("download", params, "rag", check=True)
    run_stage("clean", params, "rag", check=True)
    _one_line_error(run_stage("chunk", params, "rag"), "collections.bash-w300.overlap", "< size")
    assert not (tmp_path / "data/rag/chunks").exists()
    _one_line_error(run_stage("generate", params, "rag"), "run.top_k: must be > 0")


def test_top_k_beyond_the_corpus_is_clamped(tmp_path):
    """A 2-chunk corpus asked for top-5: the generator gets both chunks, with a warning."""
    base_model("minilm"), base_model("smollm2-135m")
    corpus = tmp_path / "manual.md"
    corpus.write_text("# ALIAS\n\n" + " ".join(["La orden alias define sinónimos de órdenes."] * 50) + "\n",
                      encoding="utf-8")

    def small(b):
        b["collections"]["bash-w300"].update(size=200, overlap=50)
        b["run"]["top_k"] = 5
        b["data"]["question_sets"]["neg"]["limit"] = 2
        b["generate"]["generation"]["max_new_tokens"] = 4

    params = _params(tmp_path, corpus, small)
    for stage in ("download", "clean", "chunk", "embed", "retrieve"):
        run_stage(stage, params, "rag", check=True)
    chunks = (tmp_path / "data/rag/chunks/bash-w300.jsonl").read_text().splitlines()
    assert len(chunks) == 2
    proc = run_stage("generate", params, "rag", check=True)
    assert "run.top_k=5 > 2 chunks" in proc.stderr
    answers = [json.loads(l) for l in (tmp_path / "data/rag/answers/neg.jsonl").read_text().splitlines()]
    assert len(answers) == 2 and all(sorted(a["chunk_ids"]) == [0, 1] for a in answers)
