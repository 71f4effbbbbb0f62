"""baselines stage: likelihood scorer math, SmolLM2 sanity, whole-stage runs, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BASE_MODELS, base_model, make_params, run_stage
from omegaconf import OmegaConf

from pipelines.core.causal_lm import load_causal_lm
from pipelines.core.errors import PipelineError
from pipelines.core.lm import score_continuations
from pipelines.core.schema import ModelConfig
from pipelines.sentiment.baselines import build_prompts, label_scores
from pipelines.sentiment.data import read_extra_sets

LABELS = ["negative", "positive"]


# ----------------------------------------------------------------------------- scorer math

@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(base_model("smollm2-135m"))
    # ~400K params; init std 1 makes attention and next-token distributions sharp, so a wrong
    # position, mask or offset changes the scores by far more than the tolerance
    config = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         initializer_range=1.0, tie_word_embeddings=True, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tok


def brute_force(model, tok, prompts, choices, gap=0):
    """sum_t log p(choice_t | prompt, choice_<t): one unpadded forward per (prompt, choice).
    gap > 0 leaves a hole in the positions between prompt and choice (a deliberate bug)."""
    out = np.zeros((len(prompts), len(choices)))
    with torch.no_grad():
        for i, p in enumerate(prompts):
            pi = tok(p, add_special_tokens=False)["input_ids"]
            for j, c in enumerate(choices):
                ci = tok(c, add_special_tokens=False)["input_ids"]
                ids = torch.tensor([pi + ci])
                pos = torch.arange(ids.shape[1])[None] + gap * (torch.arange(ids.shape[1]) >= len(pi))
                logp = model(input_ids=ids, position_ids=pos).logits[0].double().log_softmax(-1)
                out[i, j] = sum(logp[len(pi) - 1 + t, tok_id].item() for t, tok_id in enumerate(ci))
    return out


CHOICES = ["positive", " very negative indeed", "Neutral-ish, I guess?", "no"]


def _prompt_sets(tok):
    chat = [tok.apply_chat_template([{"role": "user", "content": r}], add_generation_prompt=True, tokenize=False)
            for r in ["great", "a much longer review text that goes on and on about the game", "meh.",
                      "crashes constantly, refunded", "ok"]]
    plain = ["The movie was", "Zebras", "1 2 3 4 5 6 7 8 9 10", "Why?"]  # no shared first token
    same = ["Is this good?"] * 3  # shared prefix = whole prompt but its last token
    return {"chat": chat, "plain": plain, "same": same}


def test_scorer_matches_brute_force(tiny_lm):
    model, tok = tiny_lm
    lens = [len(tok(c, add_special_tokens=False)["input_ids"]) for c in CHOICES]
    assert max(lens) >= 4 and len(set(lens)) >= 3, lens  # multi-token choices of different lengths
    for name, prompts in _prompt_sets(tok).items():
        expected = brute_force(model, tok, prompts, CHOICES)
        # the test has teeth: an off-by-one in the choice positions moves multi-token scores far beyond the
        # tolerance (a uniform shift would not: rotary attention only sees relative positions)
        assert np.abs(brute_force(model, tok, prompts[:1], CHOICES, gap=1) - expected[:1]).max() > 1e-2
        for side in ("left", "right"):  # the scorer pads itself: tokenizer padding side is irrelevant
            tok.padding_side = side
            for bs in (1, 2, len(prompts)):
                got = score_continuations(model, tok, prompts, CHOICES, batch_size=bs)
                np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=f"{name} bs={bs} {side}")
        tok.padding_side = "right"


def test_scorer_single_token_choices_and_bad_choices(tiny_lm):
    model, tok = tiny_lm
    prompts = _prompt_sets(tok)["chat"]
    got = score_continuations(model, tok, prompts, ["positive", "negative"], batch_size=2)
    np.testing.assert_allclose(got, brute_force(model, tok, prompts, ["positive", "negative"]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        score_continuations(model, tok, prompts, ["positive", ""], batch_size=2)


# ----------------------------------------------------------------------------- real model

def test_smollm2_zero_shot_direction():
    model, tok = load_causal_lm(OmegaConf.structured(ModelConfig(key="smollm2-135m")), BASE_MODELS)
    texts = ["Absolutely amazing game, I love it! Best purchase of the year, highly recommend.",
             "Terrible. Crashes every five minutes, full of cheaters, total waste of money. Refunded."]
    s = label_scores(model, tok, build_prompts(tok, texts, LABELS, [], 600), LABELS, batch_size=2)
    assert s[0, 1] > s[0, 0], s
    assert s[1, 0] > s[1, 1], s


# ----------------------------------------------------------------------------- whole stage

POS = ["Great game, love it", "Best shooter I have played", "So much fun with friends", "Amazing graphics and story",
       "Worth every penny", "Really enjoyable, recommended", "Awesome maps and smooth gameplay", "10/10 would play again",
       "Brilliant, addictive and fun", "Loved every minute of it"]
NEG = ["Terrible game, hate it", "Full of cheaters and bugs", "Waste of money, refunded", "Crashes all the time",
       "Boring and repetitive", "Awful servers, unplayable", "Pay to win garbage", "Worst update ever, uninstalled",
       "Laggy, broken and ugly", "Do not buy this"]


def _write_inputs(root: Path) -> Path:
    split = root / "data" / "sentiment" / "split"
    split.mkdir(parents=True)
    rows = [{"id": f"r{i}", "text": f"{t}. ({g})", "label": lab, "label_name": LABELS[lab], "game": g}
            for i, (t, lab, g) in enumerate(
                (t, lab, g) for g in ("Dota 2", "PUBG") for lab, ts in ((1, POS), (0, NEG)) for t in ts)]
    parts = {"train": rows[0:6] + rows[10:16] + rows[20:26] + rows[30:36],  # 24
             "val": rows[6:8] + rows[26:28], "test": rows[8:10] + rows[16:20] + rows[28:30] + rows[36:40]}
    for name, part in parts.items():
        (split / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    probe = root / "probe.jsonl"
    probe.write_text("".join(json.dumps({"review": r, "label": lab}) + "\n" for r, lab in [
        ("I love this game so much", "positive"), ("Broken mess, avoid", "negative"),
        ("Fantastic co-op, great fun", "positive"), ("Uninstalled after an hour, boring", "negative")]))
    return probe


def _run(root: Path) -> Path:
    probe = _write_inputs(root)
    params = make_params(root, overrides=["baselines.prompting.max_examples=8", "baselines.prompting.shots=[0,2]",
                                          f"evaluate.extra_sets=['{probe}']"])
    run_stage("baselines", params, check=True)
    return root / "metrics" / "sentiment"


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("baselines_a"))


def test_stage_outputs(stage_run):
    res = json.loads((stage_run / "baselines.json").read_text())
    assert set(res) == {"tfidf", "zero_shot", "few_shot_2"}
    n_test = {"tfidf": 12, "zero_shot": 8, "few_shot_2": 8}  # prompting is capped by max_examples
    for method, r in res.items():
        assert set(r) == {"test", "extra"} and set(r["extra"]) == {"probe"}
        for m, n in ((r["test"], n_test[method]), (r["extra"]["probe"], 4)):
            assert m["n"] == n and sum(map(sum, m["confusion_matrix"])) == n
            assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
            assert sum(c["support"] for c in m["per_class"].values()) == n
    preds = [json.loads(line) for line in (stage_run / "baseline_predictions.jsonl").read_text().splitlines()]
    assert len(preds) == (12 + 4) + 2 * (8 + 4)
    assert all(set(p) == {"id", "set", "method", "label", "pred", "prob_positive"} for p in preds)
    assert all(0 <= p["prob_positive"] <= 1 and p["pred"] in (0, 1) for p in preds)
    for method, r in res.items():  # predictions and metrics agree
        rows = [p for p in preds if p["method"] == method and p["set"] == "test"]
        assert abs(np.mean([p["label"] == p["pred"] for p in rows]) - r["test"]["accuracy"]) < 1e-6
    timing = json.loads((stage_run / "baselines_timing.json").read_text())
    assert {"tfidf", "zero_shot", "few_shot_2"} <= set(timing)


def test_stage_deterministic(stage_run, tmp_path):
    again = _run(tmp_path)
    assert (again / "baselines.json").read_bytes() == (stage_run / "baselines.json").read_bytes()


# ----------------------------------------------------------------------------- bad input

def test_missing_split_names_file(tmp_path):
    params = make_params(tmp_path, overrides=["evaluate.extra_sets=[]"])
    proc = run_stage("baselines", params)
    assert proc.returncode == 2
    assert str(tmp_path / "data" / "sentiment" / "split" / "train.jsonl") in proc.stderr


@pytest.mark.parametrize("line3, msg", [
    ('{"label": "positive"}', "bad.jsonl:3: missing field 'review'"),
    ('{"review": "fine"}', "bad.jsonl:3: missing field 'label'"),
    ('{"review": "fine", "label": "meh"}', "bad.jsonl:3: field 'label': unknown label 'meh'"),
])
def test_bad_extra_set_names_line_and_field(tmp_path, line3, msg):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review": "good", "label": "positive"}\n\n' + line3 + "\n")  # blank line 2 still counts
    with pytest.raises(PipelineError, match=msg):
        read_extra_sets([str(bad)], LABELS)
    with pytest.raises(PipelineError, match="missing.jsonl: file not found"):
        read_extra_sets([str(tmp_path / "missing.jsonl")], LABELS)
