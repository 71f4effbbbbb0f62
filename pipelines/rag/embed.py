"""Sentence embeddings (mean pooling, L2-normalised) that see the whole chunk.

A sentence-transformers encoder reads at most `max_seq_length` wordpieces (MiniLM 256, mpnet
384) and silently drops the rest, while a 300-word Spanish chunk is ~530 wordpieces. So every
chunk is cut into overlapping token windows (the tokenizer's own overflow/stride) and each
window is embedded; retrieval then scores a chunk by its best window ("max") or by the mean
of its windows ("mean"), and "first" reproduces plain truncation.

E5-style encoders were trained with a text prefix ("query: " / "passage: "): queries get
`query_prefix` in front, and *every* window of a chunk starts with `passage_prefix` (its token
ids go right after the leading special token, inside max_tokens), not only the first one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipelines.core.errors import PipelineError
from pipelines.core.models import load_kwargs, resolve


class Encoder:
    def __init__(self, model_cfg: Any, base_models: str | Path, max_tokens: int | None = None,
                 where: str = "model"):
        path = resolve(model_cfg, base_models, where)  # a config problem fails before the heavy imports
        import torch
        from transformers import AutoModel, AutoTokenizer

        kw = load_kwargs(model_cfg, where)
        self.query_prefix = str(model_cfg.get("query_prefix") or "")
        self.passage_prefix = str(model_cfg.get("passage_prefix") or "")
        self.tok = AutoTokenizer.from_pretrained(path, **kw)
        self.model = AutoModel.from_pretrained(path, **kw).eval()
        self.max_tokens = max_tokens or self._native_max(path)
        self.torch = torch

    def _native_max(self, path: str) -> int:
        # sentence-transformers' own limit (what the model was trained with), else the tokenizer's
        st = Path(path) / "sentence_bert_config.json"
        if st.exists():
            return int(json.loads(st.read_text())["max_seq_length"])
        return int(min(self.tok.model_max_length, 512))

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """One normalised vector per text (truncated to max_tokens): queries."""
        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        enc = self.tok([self.query_prefix + t for t in texts], truncation=True, max_length=self.max_tokens)
        return self._embed_ids(enc["input_ids"], batch_size)

    def encode_windows(self, texts: Sequence[str], stride: int, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """(window vectors, owner index): every text cut into windows of max_tokens overlapping by `stride`."""
        prefix = self.tok(self.passage_prefix, add_special_tokens=False)["input_ids"] if self.passage_prefix else []
        room = self.max_tokens - len(prefix)
        if not 0 <= stride < room - 2:
            raise PipelineError(f"embed.window_stride: must be >= 0 and < max tokens - 2 - prefix tokens "
                                f"({room - 2}); got {stride}")
        enc = self.tok(list(texts), truncation=True, max_length=room, stride=stride,
                       return_overflowing_tokens=True)
        owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
        special = set(self.tok.all_special_ids)
        ids = [w[:1] + prefix + w[1:] if w and w[0] in special else prefix + w for w in enc["input_ids"]] \
            if prefix else enc["input_ids"]
        return self._embed_ids(ids, batch_size), owner

    def _embed_ids(self, ids: list[list[int]], batch_size: int) -> np.ndarray:
        torch = self.torch
        pad = self.tok.pad_token_id or 0
        out = np.zeros((len(ids), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # length-sorted: little padding
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                L = max(len(ids[i]) for i in idx)
                x = torch.full((len(idx), L), pad, dtype=torch.long)
                m = torch.zeros((len(idx), L), dtype=torch.long)
                for r, i in enumerate(idx):
                    x[r, :len(ids[i])] = torch.tensor(ids[i])
                    m[r, :len(ids[i])] = 1
                h = self.model(input_ids=x, attention_mask=m).last_hidden_state
                mf = m[..., None].to(h.dtype)
                v = (h * mf).sum(1) / mf.sum(1).clamp(min=1)  # mean pooling over real tokens
                v = torch.nn.functional.normalize(v, dim=-1)
                out[idx] = v.float().numpy()
        return out
