"""RAFT examples (pipelines/rag/raft.py), the shared prompt (prompting.py) and the headline choice
(choose.py) on real SQuAD-es paragraphs and questions; the E5 prefixes reaching the encoder."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipelines.core.config import PROJECT_ROOT, compose
from pipelines.core.errors import PipelineError
from pipelines.rag import answer_checks, prompting, raft
from pipelines.rag.corpus import squad_documents

pytestmark = pytest.mark.fast

SQUAD = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"


@pytest.fixture(scope="module")
def cfg():
    return compose("rag", [])


@pytest.fixture(scope="module")
def squad():
    """Two real articles: their paragraphs as chunks and their answerable questions."""
    docs, qs = squad_documents(SQUAD.resolve())
    titles = sorted({q["title"] for q in qs})[:2]
    chunks = [{"id": i, "doc": d["doc"], "section": d["paragraphs"][0]["section"], "text": d["text"]}
              for i, d in enumerate(x for x in docs if x["doc"].rsplit("#", 1)[0] in titles)]
    qs = [q for q in qs if q["title"] in titles and q["answerable"] and q["answer"]]
    return chunks, qs


def _ranking(chunks, qs, gold_first: bool):
    """Every chunk per question: the gold first (gold_first) or last (retrieval missed it)."""
    by_doc = {c["doc"]: c["id"] for c in chunks}
    out = []
    for q in qs:
        g = by_doc[q["relevant_docs"][0]]
        rest = [c["id"] for c in chunks if c["id"] != g]
        out.append([g, *rest] if gold_first else [*rest, g])
    return out


def _numbered(instruction: str) -> dict[int, str]:
    return {int(n): t for n, t in re.findall(r"^\[(\d+)\] (.*)$", instruction, flags=re.M)}


def test_examples_cite_the_gold_chunk_by_its_number_in_the_prompt(cfg, squad):
    chunks, qs = squad
    for gold_first in (True, False):
        ex, counts = raft.build_examples(qs, chunks, _ranking(chunks, qs, gold_first), cfg.prompt, k=4,
                                         no_gold_share=0.0, n=40, seed=1)
        assert len(ex) >= 20 and counts["examples"] == len(ex) and counts["no_gold"] == 0
        positions = set()
        for e in ex:
            shown = _numbered(e["instruction"])
            assert sorted(shown) == [1, 2, 3, 4]  # k chunks numbered [1]..[k] in the prompt
            cited = answer_checks.citations(e["output"])
            assert cited == [e["gold_n"]]
            gold_chunk = chunks[e["chunk_ids"][e["gold_n"] - 1]]
            q = next(q for q in qs if q["id"] == e["id"])
            assert gold_chunk["doc"] in q["relevant_docs"]  # the cited number is the gold paragraph
            assert q["answer"].lower() in shown[e["gold_n"]].lower()  # and the answer is visible there
            assert answer_checks.strip_citations(e["output"]).rstrip(". ") == q["answer"].strip().rstrip(".")
            positions.add(e["gold_n"])
        if gold_first:
            assert positions == {1}  # retrieved gold keeps its rank
        else:
            assert len(positions) >= 3  # a missed gold is inserted at a random position


def test_no_gold_share_and_refusal_targets(cfg, squad):
    chunks, qs = squad
    ex, counts = raft.build_examples(qs, chunks, _ranking(chunks, qs, True), cfg.prompt, k=3, no_gold_share=0.3,
                                     n=60, seed=0)
    neg = [e for e in ex if e["gold_n"] is None]
    assert counts["no_gold"] == len(neg) and 0.15 <= len(neg) / len(ex) <= 0.45
    for e in neg:
        q = next(q for q in qs if q["id"] == e["id"])
        assert not any(chunks[i]["doc"] in q["relevant_docs"] for i in e["chunk_ids"])  # the gold is removed
        assert answer_checks.is_refusal(e["output"], cfg.prompt.refusal) and not answer_checks.citations(e["output"])
        assert q["answer"].lower() not in e["instruction"].lower().split("pregunta:")[0]
    # seeded: the same examples again
    again, _ = raft.build_examples(qs, chunks, _ranking(chunks, qs, True), cfg.prompt, k=3, no_gold_share=0.3,
                                   n=60, seed=0)
    assert [e["output"] for e in again] == [e["output"] for e in ex]
    with pytest.raises(PipelineError, match="raft.k"):
        raft.build_examples(qs, chunks, _ranking(chunks, qs, True), cfg.prompt, k=1, no_gold_share=0.3, n=5, seed=0)


def test_training_prompt_is_the_inference_prompt(cfg, squad):
    """The RAFT example's prompt (core.sft's render of system + instruction) equals what the
    generate stage feeds the model for the same question and chunks."""
    from conftest import base_model
    from transformers import AutoTokenizer

    from pipelines.core.prompts import render

    tok = AutoTokenizer.from_pretrained(base_model("smollm2-135m"))
    chunks, qs = squad
    ex, _ = raft.build_examples(qs, chunks, _ranking(chunks, qs, True), cfg.prompt, k=3, no_gold_share=0.0, n=3,
                                seed=0)
    for e in ex:
        train_prompt, completion = render(cfg.prompt.format, tok, e["instruction"], "", e["output"], e["system"])
        infer = prompting.render_prompt(tok, e["question"], [chunks[i] for i in e["chunk_ids"]], cfg.prompt)
        assert train_prompt == infer and completion.startswith(e["output"])


def test_snippet_is_the_window_sharing_most_question_words():
    words = [f"relleno{i}" for i in range(200)]
    words[150:153] = ["Tesla", "nació", "Smiljan"]
    text = " ".join(words)
    s = prompting.snippet(text, "¿Dónde nació Tesla?", 20)
    assert "Tesla nació Smiljan" in s and s.startswith("… ") and len(s.split()) <= 22
    assert prompting.snippet("corto texto", "x", 20) == "corto texto"


def _tiny_choice_files(root: Path, cfg) -> None:
    """A retrieval output with three variants on the tuning set (and a test set file that must not be read)."""
    from pipelines.core.io import write_json, write_jsonl

    chunks = [{"id": i, "doc": f"A#{i}", "section": "A", "text": f"parrafo {i}"} for i in range(6)]
    write_jsonl(root / "data/rag/chunks/squad-para.jsonl", chunks)
    qs = [{"id": f"q{i}", "question": "?", "answerable": True, "relevant_docs": [f"A#{i}"], "evidence": []}
          for i in range(6)]
    write_jsonl(root / "data/rag/clean/questions/squad_tune.jsonl", qs)
    perfect = np.array([[i, *[j for j in range(6) if j != i]] for i in range(6)])
    bad = np.array([[*[j for j in range(6) if j != i], i] for i in range(6)])
    np.savez(root / "data/rag/retrieval/squad_tune.npz", **{
        "squad-para|-|bm25|-|-": bad, "squad-para|me5-small|hybrid-a0.7|cosine|max": perfect,
        "squad-para|me5-small|dense|cosine|max": bad})
    write_json(root / "data/rag/retrieval/variants.json", {
        "squad-para|-|bm25|-|-": {"collection": "squad-para", "retriever": "bm25", "embedder": "-", "similarity": "-",
                                  "pooling": "-"},
        "squad-para|me5-small|hybrid-a0.7|cosine|max": {"collection": "squad-para", "retriever": "hybrid",
                                                        "embedder": "me5-small", "similarity": "cosine",
                                                        "pooling": "max", "alpha": 0.7},
        "squad-para|me5-small|dense|cosine|max": {"collection": "squad-para", "retriever": "dense",
                                                  "embedder": "me5-small", "similarity": "cosine", "pooling": "max"}})
    for name in ("squad_test", "bash", "squad_test_negatives"):  # poison: reading any of them fails loudly
        (root / f"data/rag/clean/questions/{name}.jsonl").write_text("not json\n")
        (root / f"data/rag/retrieval/{name}.npz").write_bytes(b"not a npz")


def test_headline_choice_reads_the_tuning_set_only(tmp_path, monkeypatch):
    from pipelines.rag import choose

    (tmp_path / "data/rag/retrieval").mkdir(parents=True)
    cfg = compose("rag", [f"paths.root={tmp_path}", "choose.top_ks=[1,2]", "choose.min_hit=1.0"])
    _tiny_choice_files(tmp_path, cfg)
    opened: list[str] = []
    real_open = open

    def spy(file, *a, **kw):
        opened.append(str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr("builtins.open", spy)
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **kw: (opened.append(str(f)), real_load(f, *a, **kw))[1])
    choose.choose(cfg)
    monkeypatch.undo()
    data_files = [f for f in opened if "/data/rag/" in f]
    assert data_files and not [f for f in data_files if re.search(r"(squad_test|bash)", f)], data_files
    got = json.loads((tmp_path / "data/rag/choice.json").read_text())
    assert (got["retriever"], got["embedder"], got["alpha"], got["top_k"]) == ("hybrid", "me5-small", 0.7, 1)
    # a pinned field restricts the choice to the matching variants
    cfg = compose("rag", [f"paths.root={tmp_path}", "run.retriever=bm25", "choose.top_ks=[1,2]"])
    choose.choose(cfg)
    got = json.loads((tmp_path / "data/rag/choice.json").read_text())
    assert got["retriever"] == "bm25" and got["top_k"] == 2 and "no k" in got["top_k_rule"]
    # a reported set can never be the tuning set
    with pytest.raises(PipelineError, match="role: tune"):
        choose.choose(compose("rag", [f"paths.root={tmp_path}", "choose.tune_set=squad_test"]))


def test_e5_prefixes_reach_every_window_and_the_queries(cfg):
    from conftest import base_model

    from pipelines.rag.embed import Encoder

    base_model("me5-small")
    m = OmegaConf.merge(cfg.embedders["me5-small"], {"key": "me5-small"})
    enc = Encoder(m, PROJECT_ROOT / "models/base", max_tokens=64)
    assert enc.passage_prefix == "passage: " and enc.query_prefix == "query: "
    prefix = enc.tok("passage: ", add_special_tokens=False)["input_ids"]
    seen: list[list[int]] = []
    real = enc._embed_ids
    enc._embed_ids = lambda ids, bs: (seen.extend(ids), real(ids, bs))[1]
    text = " ".join(["La orden alias define sinónimos de órdenes del intérprete."] * 30)
    w, owner = enc.encode_windows([text], stride=8)
    assert len(w) > 2 and all(ids[1:1 + len(prefix)] == prefix and len(ids) <= 64 for ids in seen)
    assert seen[0][0] == enc.tok.cls_token_id
    seen.clear()
    enc.encode(["¿Qué hace alias?"])
    assert enc.tok.decode(seen[0][1:4]).startswith("query:")
    plain = OmegaConf.merge(m, {"query_prefix": "", "passage_prefix": ""})
    enc2 = Encoder(plain, PROJECT_ROOT / "models/base", max_tokens=64)
    assert not np.allclose(enc2.encode(["¿Qué hace alias?"]), enc.encode(["¿Qué hace alias?"]))
