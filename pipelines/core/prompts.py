"""Prompt formats of the causal-LM tasks (instruct, qgen_es, rag's generator).

An example is (system, instruction, input, output). `render` turns it into a prompt and a
completion in one of three formats: alpaca (plain text), chat (the tokenizer's own template)
or phi3; `render_messages` writes a whole conversation (few-shot turns) as a generation
prompt. `stop_token_ids` are the ids that end a reply in a format.
"""
from __future__ import annotations

from typing import Any, Sequence

from .errors import PipelineError

FORMATS = ("alpaca", "chat", "phi3")

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")
ALPACA_PREAMBLE_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                         "further context. Write a response that appropriately completes the request.")
PHI3_END = "<|end|>"


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise PipelineError(f"prompt.format: {fmt!r} is not one of {', '.join(FORMATS)}")


def render(fmt: str, tok: Any, instruction: str, input: str = "", output: str | None = None,
           system: str = "") -> tuple[str, str | None]:
    """(prompt, completion) as strings; completion is None when no output is given."""
    check_format(fmt)
    if fmt == "alpaca":
        head = ALPACA_PREAMBLE_INPUT if input else ALPACA_PREAMBLE
        instr = f"{system}\n\n{instruction}" if system else instruction
        prompt = f"{head}\n\n### Instruction:\n{instr}\n\n"
        if input:
            prompt += f"### Input:\n{input}\n\n"
        prompt += "### Response:\n"
        return prompt, None if output is None else output + tok.eos_token
    user = f"{instruction}\n\n{input}" if input else instruction
    if fmt == "phi3":
        prompt = (f"<|system|>\n{system}{PHI3_END}\n" if system else "") + f"<|user|>\n{user}{PHI3_END}\n<|assistant|>\n"
        if output is None:
            return prompt, None
        # Phi-3 stops at <|end|>; a model without that token also needs its own EOS to stop
        end = PHI3_END if tok.eos_token == PHI3_END else PHI3_END + tok.eos_token
        return prompt, output + end
    # chat: the tokenizer's own template; the completion is whatever the template adds after the prompt
    if not getattr(tok, "chat_template", None):
        raise PipelineError("prompt.format: chat needs a tokenizer with a chat template; use alpaca or phi3")
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    if output is None:
        return prompt, None
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": output}], tokenize=False)
    if not full.startswith(prompt):
        raise PipelineError("prompt.format: chat template renders the prompt differently with and without the "
                            "reply; use alpaca or phi3 with this tokenizer")
    completion = full[len(prompt):]
    if tok.eos_token not in completion and not _end_marker_ids(tok, completion, output):
        completion += tok.eos_token
    return prompt, completion


def render_messages(fmt: str, tok: Any, messages: Sequence[dict]) -> str:
    """A generation prompt for a whole conversation (system?, then user/assistant turns, ending
    with a user turn), e.g. a few-shot prompt whose worked examples are earlier turns."""
    check_format(fmt)
    if not messages or messages[-1]["role"] != "user":
        raise PipelineError("prompt: a conversation must end with a user turn")
    if fmt == "chat":
        if not getattr(tok, "chat_template", None):
            raise PipelineError("prompt.format: chat needs a tokenizer with a chat template; use alpaca or phi3")
        return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if fmt == "phi3":
        out = f"<|system|>\n{system}{PHI3_END}\n" if system else ""
        for m in turns:
            out += f"<|{m['role']}|>\n{m['content']}{PHI3_END}\n"
        return out + "<|assistant|>\n"
    out = f"{ALPACA_PREAMBLE}\n\n" + (f"{system}\n\n" if system else "")
    for m in turns:
        out += (f"### Instruction:\n{m['content']}\n\n### Response:\n" if m["role"] == "user"
                else f"{m['content']}\n\n")
    return out


def _end_marker_ids(tok: Any, completion: str, output: str) -> list[int]:
    """Special tokens the template puts after the reply (<|im_end|>, <end_of_turn>, ...)."""
    tail = completion[len(output):] if completion.startswith(output) else ""
    ids = tok(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []
    special = set(tok.all_special_ids)
    return [i for i in ids if i in special]


def add_special_tokens(fmt: str) -> bool:
    # the chat template writes its own BOS/special tokens; plain-text formats let the tokenizer add BOS
    return fmt != "chat"


def stop_token_ids(tok: Any, fmt: str, model: Any = None) -> list[int]:
    ids = {tok.eos_token_id}
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.eos_token_id is not None:
        ids.update(gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id])
    if fmt == "chat":
        _, comp = render("chat", tok, "x", output="y")
        ids.update(_end_marker_ids(tok, comp, "y"))
    elif fmt == "phi3" and PHI3_END in tok.get_vocab():
        ids.add(tok.convert_tokens_to_ids(PHI3_END))
    ids.discard(None)
    if tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id:
        ids.discard(tok.pad_token_id)
    return sorted(ids)

