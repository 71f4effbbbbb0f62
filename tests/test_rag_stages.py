"""rag stages for real on a corpus of our own: top-k beyond the corpus is clamped.

Bad rag input (non-UTF-8 or empty corpus, a folder without text files, overlap >= size,
top_k <= 0, ...) is part of the bad-input matrix in test_bad_inputs.py."""
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
    # no tuning set here: every run.* field pinned, the prompted generator answers
    b["run"].update(collections={"bash": "bash-w300"}, retriever="hybrid", embedder="minilm", similarity="cosine",
                    alpha=0.5, top_k=3)
    b["generate"]["systems"] = ["prompted"]
    if edit:
        edit(b)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


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
    for stage in ("download", "clean", "chunk", "embed", "retrieve", "choose"):
        run_stage(stage, params, "rag", check=True)
    chunks = (tmp_path / "data/rag/chunks/bash-w300.jsonl").read_text().splitlines()
    assert len(chunks) == 2
    proc = run_stage("generate", params, "rag", check=True)
    assert "top-k 5 > 2 chunks" in proc.stderr
    answers = [json.loads(l) for l in (tmp_path / "data/rag/answers/prompted/neg.jsonl").read_text().splitlines()]
    assert len(answers) == 2 and all(sorted(a["chunk_ids"]) == [0, 1] for a in answers)
