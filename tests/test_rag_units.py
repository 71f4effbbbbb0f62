"""rag building blocks on real data where it matters: cleaning, chunking, retrieval maths, metrics, answers."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace as N

import numpy as np
import pytest

from pipelines.core.config import PROJECT_ROOT
from pipelines.core.errors import PipelineError
from pipelines.rag import answer_checks as answer, chunking, retrieve as R
from pipelines.rag.corpus import clean_corpus, clean_document, normalize, validate_questions
from pipelines.rag.metrics import judge, ranking_metrics

DATA = (PROJECT_ROOT / "../shared/data").resolve()
CLEAN = N(dehyphenate=True, drop_furniture=True, collapse_dots=True, furniture_patterns=[])
MAN = """BASH(1)\t\t\t     General Commands Manual\t\t\t\t  BASH(1)

NOMBRE
       bash - GNU Bourne-Again SHell

EXPANSIÓN
       La expansión se realiza en la línea de órdenes una vez que ha sido dividida en pala-
       bras. Hay siete tipos de expansión..........

   Expansión de Llaves
       La  expansión\tde llaves es un mecanismo.

GNU Bash 5.2\t\t     19 de Septiembre de 2022\t\t\t\t  BASH(1)
"""


@pytest.fixture(scope="module")
def bash_doc():
    return clean_corpus(DATA / "bash_manpage_es.txt", CLEAN)[0]


@pytest.fixture(scope="module")
def bash_questions():
    rows = [json.loads(l) for l in (DATA / "bash_qa_es.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    return validate_questions(rows, "bash_qa_es.jsonl")


def test_clean_drops_furniture_joins_hyphenation_keeps_headings():
    doc = clean_document(MAN, "bash.1.txt", CLEAN)
    assert "BASH(1)" not in doc["text"] and "Septiembre" not in doc["text"]
    assert "dividida en palabras." in doc["text"]  # "pala-\n bras" joined
    assert "expansión. " not in doc["text"] and "expansión." in doc["text"]  # leader dots collapsed
    assert "\t" not in doc["text"] and "  " not in doc["text"]
    sections = [p["section"] for p in doc["paragraphs"]]
    assert sections == ["NOMBRE", "EXPANSIÓN", "EXPANSIÓN > Expansión de Llaves"]
    for p in doc["paragraphs"]:  # spans point into the cleaned text
        assert doc["text"][p["start"]:p["end"]].strip() == doc["text"][p["start"]:p["end"]]


def test_every_evidence_string_survives_cleaning(bash_doc, bash_questions):
    text = normalize(bash_doc["text"])
    missing = [(q["id"], e) for q in bash_questions for e in q["evidence"] if normalize(e) not in text]
    assert not missing
    assert len(bash_questions) == 40 and len({p["section"] for p in bash_doc["paragraphs"]}) > 50


def test_corpus_errors(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("año".encode("latin-1"))
    with pytest.raises(PipelineError, match=r"latin1.txt: not valid UTF-8"):
        clean_corpus(tmp_path / "latin1.txt", CLEAN)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.pdf").write_bytes(b"%PDF")
    with pytest.raises(PipelineError, match="no text files"):
        clean_corpus(empty, CLEAN)
    (empty / "blank.md").write_text("   \n\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="corpus is empty"):
        clean_corpus(empty, CLEAN)
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Uno\n\nTexto uno.\n", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("Texto dos.\n", encoding="utf-8")
    docs = clean_corpus(folder, CLEAN)
    assert [d["doc"] for d in docs] == ["a.md", "sub/b.txt"] and docs[0]["paragraphs"][0]["section"] == "Uno"


def test_question_validation():
    with pytest.raises(PipelineError, match=r"q.jsonl: row 2: field 'question'"):
        validate_questions([{"id": "a", "question": "¿x?", "evidence": ["x"]}, {"id": "b", "evidence": ["y"]}], "q.jsonl")
    with pytest.raises(PipelineError, match="answerable question without 'evidence'"):
        validate_questions([{"id": "a", "question": "¿x?", "answerable": True}], "q.jsonl")
    neg = validate_questions([{"id": "n", "question": "¿x?", "evidence": []}], "q.jsonl")
    assert neg[0]["answerable"] is False


@pytest.mark.parametrize("size,overlap", [(300, 100), (500, 200), (7, 3)])
def test_word_windows_cover_the_text_with_overlap(bash_doc, size, overlap):
    chunks = chunking.chunk_documents([bash_doc], N(method="words", size=size, overlap=overlap))
    words = bash_doc["text"].split()
    assert all(c["text"] == bash_doc["text"][c["start"]:c["end"]] for c in chunks)
    assert all(c["n_words"] == len(c["text"].split()) <= size for c in chunks)
    assert chunks[0]["text"].split()[:5] == words[:5] and chunks[-1]["text"].split()[-5:] == words[-5:]
    step = size - overlap
    assert len(chunks) == max(1, math.ceil((len(words) - overlap) / step))
    a, b = chunks[0]["text"].split(), chunks[1]["text"].split()
    assert a[-overlap:] == b[:overlap]
    assert [c["id"] for c in chunks] == list(range(len(chunks)))


def test_structure_chunks_stay_inside_sections(bash_doc):
    chunks = chunking.chunk_documents([bash_doc], N(method="structure", size=150, overlap=30))
    spans = bash_doc["paragraphs"]
    for c in chunks:
        assert c["n_words"] <= 150 and c["text"] == bash_doc["text"][c["start"]:c["end"]]
        inside = {p["section"] for p in spans if p["start"] < c["end"] and p["end"] > c["start"]}
        assert inside == {c["section"]}


@pytest.mark.parametrize("size,overlap", [(300, 300), (300, 400), (0, 0), (10, -1)])
def test_bad_chunking_is_a_clear_error(size, overlap):
    with pytest.raises(PipelineError, match=r"collections\.x\.(overlap|size)"):
        chunking.check(N(method="words", size=size, overlap=overlap), "collections.x")


def _loop_scores(q, windows, owner, n_chunks, sim, pool):
    """The study's way: a Python loop over chunks (and windows), one query at a time."""
    out = np.zeros((len(q), n_chunks))
    for i, qv in enumerate(q):
        for c in range(n_chunks):
            ws = windows[owner == c]
            vecs = {"first": ws[:1], "mean": ws.mean(0, keepdims=True), "max": ws}[pool]
            s = []
            for w in vecs:
                if sim == "cosine":
                    s.append(float(qv @ w / (np.linalg.norm(qv) * np.linalg.norm(w))))
                elif sim == "dot":
                    s.append(float(qv @ w))
                else:
                    s.append(1.0 / (1.0 + float(np.linalg.norm(qv - w))))
            out[i, c] = max(s)
    return out


@pytest.mark.parametrize("sim", R.SIMILARITIES)
@pytest.mark.parametrize("pool", R.POOLINGS)
def test_vectorised_scores_equal_the_per_chunk_loop(sim, pool):
    rng = np.random.default_rng(0)
    owner = np.sort(np.concatenate([np.arange(9), rng.integers(0, 9, 12)]))
    windows = rng.normal(size=(len(owner), 16)).astype(np.float32)
    q = rng.normal(size=(5, 16)).astype(np.float32)
    got = R.dense_scores(q, windows, owner, 9, sim, pool)
    np.testing.assert_allclose(got, _loop_scores(q, windows, owner, 9, sim, pool), rtol=1e-4, atol=1e-5)


def test_top_k_order_clamp_and_errors():
    s = np.array([[0.1, 0.9, 0.5, 0.9], [0.0, 0.0, 1.0, 0.2]])
    idx, sc = R.top_k(s, 3)
    assert idx.tolist() == [[1, 3, 2], [2, 3, 0]] and sc[0].tolist() == [0.9, 0.9, 0.5]
    assert R.top_k(s, 99)[0].shape == (2, 4)  # clamped to the number of chunks
    with pytest.raises(PipelineError, match="top_k: must be > 0"):
        R.top_k(s, 0)


def test_hybrid_fusion():
    dense = np.array([[0.9, 0.1, 0.5]])
    lex = np.array([[0.0, 10.0, 4.0]])
    lin = R.hybrid_scores(dense, lex, "linear", 0.5, 60)
    np.testing.assert_allclose(lin, [[0.5, 0.5, 0.5 * 0.5 + 0.5 * 0.4]])
    rrf = R.hybrid_scores(dense, lex, "rrf", 0.5, 60)
    np.testing.assert_allclose(rrf, [[1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 2 / 62]])
    with pytest.raises(PipelineError, match="hybrid.method"):
        R.hybrid_scores(dense, lex, "max", 0.5, 60)


def test_bm25_spanish_stemming_and_stopwords():
    chunks = ["La orden alias define alias de órdenes.", "El historial guarda las líneas de órdenes anteriores.",
              "Las variables de entorno se exportan."]
    cfg = N(stopwords="es", stemmer="spanish", k1=1.5, b=0.75, method="lucene")
    s = R.bm25_scores(chunks, ["¿Dónde se guardan las líneas anteriores?", "¿Qué es una variable exportada?",
                               "de la el"], cfg)
    assert s[0].argmax() == 1 and s[1].argmax() == 2  # guardan~guarda, variable~variables, exportada~exportan
    assert not s[2].any()  # only stopwords: no score at all


def test_ranking_metrics_by_hand():
    chunks = [{"id": i, "doc": "d", "text": t} for i, t in enumerate(["a b c", "x  y\nz", "q r", "y z w"])]
    qs = [{"id": "1", "evidence": ["x y z"], "answerable": True},
          {"id": "2", "evidence": ["q r", "w"], "answerable": True},
          {"id": "3", "evidence": ["b c q"], "answerable": True},  # straddles two chunks: unreachable
          {"id": "4", "evidence": [], "answerable": False}]
    J = judge(qs, chunks)
    assert [j["relevant"] for j in J] == [[1], [2, 3], [], []] and J[2]["unreachable"]
    ranked = np.array([[0, 1, 2], [3, 0, 2], [0, 1, 2], [0, 1, 2]])
    m = ranking_metrics(ranked, J, [1, 2], ndcg_k=3, mrr_k=3)
    assert m["n"] == 3 and m["unreachable"] == 1
    assert m["hit@1"] == pytest.approx(1 / 3) and m["hit@2"] == pytest.approx(2 / 3)
    assert m["recall@1"] == pytest.approx((0 + 0.5 + 0) / 3) and m["recall@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    ndcg2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + ndcg2 + 0) / 3)


def test_answer_checks():
    assert answer.citations("Usa -n [2] y también [1, 3][2].") == [2, 1, 3]
    assert answer.strip_citations("Con -n [2].") == "Con -n ."
    refusal = "No encuentro esa información en los fragmentos"
    assert answer.is_refusal("no encuentro esa informacion en los fragmentos.", refusal)
    assert not answer.is_refusal("Con la opción -n [1].", refusal)
    assert answer.language("La opción -n lee las órdenes pero no las ejecuta [1].") == "es"
    assert answer.language("The -n option reads commands but does not execute them.") == "en"
    rows = [{"id": "a", "answerable": True, "reference": "lee órdenes sin ejecutarlas", "chunk_ids": [7, 3],
             "answer": "Lee órdenes sin ejecutarlas [2].", "eos": True},
            {"id": "b", "answerable": True, "reference": "x", "chunk_ids": [1, 2], "answer": "Ver [5].", "eos": True},
            {"id": "n", "answerable": False, "reference": "", "chunk_ids": [1, 2],
             "answer": "No encuentro esa información en los fragmentos.", "eos": False}]
    m, per = answer.answer_metrics(rows, {"a": {3}, "b": {9}}, refusal)
    assert m["citation_valid"] == pytest.approx(1 / 2) and m["cites_relevant"] == pytest.approx(0.5)
    assert m["refusal_on_unanswerable"] == 1.0 and m["false_refusal"] == 0.0 and m["n_answerable"] == 2
    assert per[0]["f1"] == 1.0 and m["eos"] == pytest.approx(2 / 3)
