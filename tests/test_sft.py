"""Causal-LM SFT plumbing on the real SmolLM2 tokenizer/model: formats, prompt masking through
TRL's collator and the loss, the distinct pad token, dead examples, generation stop tokens."""
from __future__ import annotations

import pytest
import torch
from conftest import base_model
from omegaconf import OmegaConf

from pipelines.core import causal_lm, prompts, sft
from pipelines.core.errors import PipelineError

EXAMPLES = [
    {"id": "a", "instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"id": "b", "instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour."},
    {"id": "c", "instruction": "Sum the numbers.", "input": "2, 3 and 4", "output": "The sum is 9."},
]


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(base_model("smollm2-135m"))
    sft.ensure_pad_token(t)
    return t


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_model("smollm2-135m")).eval()


def _prompt_cfg(fmt: str, train_on_inputs: bool = False):
    return OmegaConf.create({"format": fmt, "system_prompt": "", "train_on_inputs": train_on_inputs})


def test_smollm2_pad_token_made_distinct_from_eos():
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(base_model("smollm2-135m"))
    assert t.pad_token_id == t.eos_token_id  # the problem: padding would mask the EOS label away
    info = sft.ensure_pad_token(t)
    assert info["changed"] and t.pad_token_id != t.eos_token_id and t.pad_token == "<|endoftext|>"


@pytest.mark.parametrize("fmt", prompts.FORMATS)
def test_prompt_masking_labels(tok, fmt):
    rows, counts = sft.encode_examples(tok, EXAMPLES, _prompt_cfg(fmt), max_length=256)
    assert counts == {"kept": 3, "dropped_too_long": 0, "dropped_empty_output": 0}
    for r, ex in zip(rows, EXAMPLES):
        n = r["prompt_len"]
        assert r["labels"][:n] == [-100] * n  # no prompt token is learned
        assert r["labels"][n:] == r["input_ids"][n:] and len(r["labels"][n:]) > 0
        completion = tok.decode(r["input_ids"][n:])
        assert ex["output"] in completion
        # the sequence ends with a stop token the generator will stop on
        assert r["input_ids"][-1] in prompts.stop_token_ids(tok, fmt) or r["input_ids"][-2] in prompts.stop_token_ids(tok, fmt)
        # the prompt is exactly what generation feeds
        prompt, _ = prompts.render(fmt, tok, ex["instruction"], ex["input"])
        assert r["input_ids"][:n] == tok(prompt, add_special_tokens=prompts.add_special_tokens(fmt))["input_ids"]
    full, _ = sft.encode_examples(tok, EXAMPLES, _prompt_cfg(fmt, train_on_inputs=True), max_length=256)
    assert all(r["labels"] == r["input_ids"] for r in full)


def test_masked_prompt_contributes_nothing_to_the_loss(tok, model):
    """Through TRL's collator and the trainer's loss: changing prompt tokens' targets leaves the loss
    unchanged, padding is -100, and the loss equals the mean NLL of the completion tokens only."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows, _ = sft.encode_examples(tok, EXAMPLES, _prompt_cfg("alpaca"), max_length=256)
    collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)
    batch = collate([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
    for j, r in enumerate(rows):
        n = len(r["input_ids"])
        assert batch["labels"][j, :n].tolist() == r["labels"]
        assert (batch["labels"][j, n:] == -100).all()  # padding is never learned
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits[:, :-1].float(), -1)
    tgt = batch["labels"][:, 1:]
    mask = tgt != -100
    manual = -(lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum() / mask.sum()
    torch.testing.assert_close(out.loss, manual, rtol=1e-4, atol=1e-4)
    # every completion token is a target, no prompt token is (position 0 is never a target)
    assert int(mask.sum()) == sum(len(r["input_ids"]) - r["prompt_len"] for r in rows)


def test_completion_only_logits_give_the_same_loss_and_gradients(tok, model):
    """The trainer's loss keeps LM-head logits only from the batch's first learned position on:
    same loss and same LoRA gradients as the full logits, fewer positions through the head."""
    import copy

    from peft import LoraConfig, get_peft_model
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows, _ = sft.encode_examples(tok, EXAMPLES, _prompt_cfg("alpaca"), max_length=256)
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(
        [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    assert sft.accepts_logits_to_keep(lora) and sft.accepts_logits_to_keep(model)
    cut = sft.completion_logits_only(batch)
    L = batch["input_ids"].shape[1]
    first = min(r["prompt_len"] for r in rows)  # earliest learned position in the batch
    assert cut["logits_to_keep"] == L - first + 1 < L and cut["labels"].shape == (len(rows), L - first + 1)
    assert (batch["labels"][:, :first] == -100).all()  # nothing learned was cut away

    def loss_and_grads(inputs):
        lora.zero_grad()
        out = lora(**{k: v for k, v in inputs.items() if k != "position_ids"})
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in lora.named_parameters() if p.requires_grad}

    full_loss, full_grads = loss_and_grads(batch)
    cut_loss, cut_grads = loss_and_grads(cut)
    torch.testing.assert_close(cut_loss, full_loss, rtol=1e-5, atol=1e-5)
    for name, g in full_grads.items():
        torch.testing.assert_close(cut_grads[name], g, rtol=1e-4, atol=1e-6)
    # nothing to cut: a batch whose first label is learned, or no labels at all, is left alone
    assert sft.completion_logits_only({"input_ids": batch["input_ids"], "labels": batch["input_ids"]})["labels"] is batch["input_ids"]
    assert "logits_to_keep" not in sft.completion_logits_only({"input_ids": batch["input_ids"]})


def test_generation_dtype_casts_a_copy(model):
    bf = causal_lm.generation_model(model, "bfloat16")
    assert bf is not model and next(bf.parameters()).dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32  # losses still use the caller's weights
    assert causal_lm.generation_model(model, None) is model and causal_lm.generation_model(model, "float32") is model
    with pytest.raises(PipelineError, match=r"^generation.dtype: 'bf17' is not a torch dtype"):
        causal_lm.generation_model(model, "bf17")


def test_example_with_no_learned_token_is_refused(tok, tmp_path):
    rows, counts = sft.encode_examples(tok, [*EXAMPLES, {"id": "d", "instruction": "x", "input": "", "output": "  "}],
                                       _prompt_cfg("alpaca"), max_length=256)
    assert counts["dropped_empty_output"] == 1 and len(rows) == 3
    dead = {**rows[0], "labels": [-100] * len(rows[0]["labels"])}
    with pytest.raises(PipelineError, match=r"1 train example\(s\) have no learned token \(e.g. a\)"):
        sft.save_tokenized(tmp_path / "tok", tok, {"train": [dead]}, {})
    assert not (tmp_path / "tok").exists()


def test_too_long_examples_are_dropped_not_cut(tok):
    rows, counts = sft.encode_examples(tok, EXAMPLES, _prompt_cfg("alpaca"), max_length=40)
    assert counts["dropped_too_long"] == 3 - len(rows) > 0
    assert all(len(r["input_ids"]) <= 40 for r in rows)


def test_render_messages_few_shot_chat(tok):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "U2"}]
    text = prompts.render_messages("chat", tok, msgs)
    assert text.index("S") < text.index("U1") < text.index("A1") < text.index("U2")
    assert text.endswith("<|im_start|>assistant\n")
    alpaca = prompts.render_messages("alpaca", tok, msgs)
    assert alpaca.count("### Instruction:") == 2 and alpaca.endswith("### Response:\n")
    with pytest.raises(PipelineError, match="must end with a user turn"):
        prompts.render_messages("chat", tok, msgs[:3])


def test_unknown_format_is_a_config_error(tok):
    with pytest.raises(PipelineError, match="prompt.format: 'vicuna' is not one of alpaca, chat, phi3"):
        prompts.render("vicuna", tok, "x")
