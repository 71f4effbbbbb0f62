"""Causal language models: scoring fixed answers by their likelihood (loading: causal_lm.py).

`score_continuations` ranks a closed set of answers (label words, options) by
log P(choice | prompt) instead of parsing generated text: no sampling, no output parsing, and
every choice gets a score even when the model would have said something else.

Tokenisation contract: the prompt and each choice are tokenised *separately* and the ids
concatenated, so every choice is scored against the same prompt tokens. Write a choice
exactly as it would follow the prompt: with a leading space after a word ("The answer is" +
" positive"), without one after a newline (chat templates end the generation prompt with
"assistant\\n", so "positive").
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np


def _shared_prefix_len(seqs: list[list[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs) - 1  # keep >= 1 own token per prompt: its logits predict the choice
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return max(n, 0)


def score_continuations(model: Any, tok: Any, prompts: Sequence[str], choices: Sequence[str],
                        batch_size: int = 8, *, add_special_tokens: bool = False) -> np.ndarray:
    """Total log-probability of each choice as a continuation of each prompt: [n_prompts, n_choices].

    add_special_tokens: let the tokenizer add BOS etc. to prompts; off by default because
    chat-template output already contains its special tokens.

    Cost: the token prefix shared by all prompts (system prompt, few-shot turns) is run once
    and its KV cache reused; each prompt's own tokens are run once for all choices (their
    first tokens are read off the last prompt position), and only choices longer than one
    token need a second, short pass over the cache.
    """
    import torch

    if not prompts:
        return np.zeros((0, len(choices)))
    p_ids = [tok(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    c_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in choices]
    if not choices or any(not c for c in c_ids):
        raise ValueError(f"choices must be non-empty strings that tokenise to >= 1 token: {list(choices)!r}")
    if any(not p for p in p_ids):
        raise ValueError("every prompt must tokenise to >= 1 token")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    n_p, n_c = len(p_ids), len(c_ids)
    c_len = max(len(c) for c in c_ids)
    P = _shared_prefix_len(p_ids)
    dev = model.device
    scores = np.zeros((n_p, n_c), dtype=np.float64)

    with torch.inference_mode():
        prefix_cache = None
        if P:
            prefix_cache = model(input_ids=torch.tensor([p_ids[0][:P]], device=dev), use_cache=True).past_key_values
        # batches of similar length waste little on padding; the order does not change results
        order = sorted(range(n_p), key=lambda i: (len(p_ids[i]), i))
        for start in range(0, n_p, batch_size):
            idx = order[start:start + batch_size]
            B = len(idx)
            suf = [p_ids[i][P:] for i in idx]
            S = max(len(s) for s in suf)
            # left padding: every row's last prompt token sits at position -1
            ids = torch.full((B, S), pad, dtype=torch.long)
            mask = torch.zeros((B, S), dtype=torch.long)
            for r, s in enumerate(suf):
                ids[r, S - len(s):] = torch.tensor(s)
                mask[r, S - len(s):] = 1
            # explicit positions: pads must not shift the real tokens' (rotary) positions
            pos = P + (mask.cumsum(1) - 1).clamp(min=0)
            attn = torch.cat([torch.ones((B, P), dtype=torch.long), mask], 1)
            cache = None
            if prefix_cache is not None:
                cache = copy.deepcopy(prefix_cache)  # forward passes extend a cache in place
                cache.batch_repeat_interleave(B)
            out = model(input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev),
                        past_key_values=cache, use_cache=c_len > 1, logits_to_keep=1)
            logp = torch.log_softmax(out.logits[:, -1].float(), -1)
            batch = logp[:, [c[0] for c in c_ids]].clone()  # [B, n_c]

            if c_len > 1:
                # feed choice tokens [:-1] after the cached prompt, one row per (prompt, choice)
                cache = out.past_key_values
                cache.batch_repeat_interleave(n_c)  # rows b0c0, b0c1, ..., b1c0, ...
                L = c_len - 1
                cin = torch.full((B * n_c, L), pad, dtype=torch.long)
                tgt = torch.zeros((B * n_c, L), dtype=torch.long)
                cmask = torch.zeros((B * n_c, L), dtype=torch.long)
                for r in range(B):
                    for j, c in enumerate(c_ids):
                        k = len(c) - 1
                        if k:
                            cin[r * n_c + j, :k] = torch.tensor(c[:-1])
                            tgt[r * n_c + j, :k] = torch.tensor(c[1:])
                            cmask[r * n_c + j, :k] = 1
                # right padding is harmless here: pads come after every real choice token
                pos2 = (P + mask.sum(1)).repeat_interleave(n_c)[:, None] + torch.arange(L)[None]
                attn2 = torch.cat([attn.repeat_interleave(n_c, 0), cmask], 1)
                out2 = model(input_ids=cin.to(dev), attention_mask=attn2.to(dev), position_ids=pos2.to(dev),
                             past_key_values=cache, use_cache=True)
                lp2 = torch.log_softmax(out2.logits.float(), -1).gather(-1, tgt.to(dev)[..., None])[..., 0]
                batch += (lp2 * cmask.to(dev)).sum(1).view(B, n_c)
            scores[idx] = batch.double().cpu().numpy()
    return scores
