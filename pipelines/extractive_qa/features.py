"""Question + context -> model features with span labels (the HF `run_qa.py` recipe).

A context longer than `max_length` is cut into overlapping windows (`doc_stride` tokens
shared by neighbours), so one example can give several features. Each feature keeps:
* `example_id`: which question it came from (post-processing gathers all its windows);
* `offset_mapping`: character span in the context of every token, [-1, -1] for tokens
  that are not context (question, special tokens, padding) so no answer can be read there;
* `cls_index`: where the model scores "no answer in this window";
* `start_positions` / `end_positions`: token indices of the (first) answer, or the CLS index
  when this window does not contain the whole answer (or the question is unanswerable).
Nothing is padded here: the collator pads each batch to its longest feature.
"""
from __future__ import annotations

from typing import Any, Sequence

from pipelines.core.errors import PipelineError


def _cut_question(tok: Any, question: str, max_query_length: int) -> str:
    """Keep the first `max_query_length` tokens of a question (as text, via offsets)."""
    enc = tok(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_query_length:
        return question
    return question[: enc["offset_mapping"][max_query_length - 1][1]]


def prepare_features(tok: Any, rows: Sequence[dict], max_length: int, doc_stride: int,
                     max_query_length: int = 64, with_labels: bool = True) -> dict[str, list]:
    """Tokenise examples into features (columns of equal length, one entry per feature)."""
    if not getattr(tok, "is_fast", False):
        raise PipelineError("model: the tokenizer must be a fast tokenizer (offset mapping is needed)")
    if doc_stride >= max_length - max_query_length - 3:
        raise PipelineError(f"data.doc_stride: {doc_stride} leaves no new context per window with "
                            f"max_length={max_length} and max_query_length={max_query_length}")
    # models that pad on the left (XLNet) read the context first
    pad_right = tok.padding_side == "right"
    # run_qa strips leading spaces: they waste room and some tokenizers choke on them
    questions = [_cut_question(tok, r["question"].lstrip(), max_query_length) for r in rows]
    contexts = [r["context"] for r in rows]
    enc = tok(questions if pad_right else contexts, contexts if pad_right else questions,
              truncation="only_second" if pad_right else "only_first", max_length=max_length,
              stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    sample_map = enc.pop("overflow_to_sample_mapping")
    ctx_seq = 1 if pad_right else 0
    out: dict[str, list] = {k: [] for k in enc.keys()}
    out.update(example_id=[], cls_index=[], start_positions=[], end_positions=[], length=[])
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]
        seq = enc.sequence_ids(i)
        cls = ids.index(tok.cls_token_id) if tok.cls_token_id in ids else 0
        row = rows[sample_map[i]]
        start = end = cls
        if with_labels and row["answers"] and not row.get("is_impossible"):
            a = row["answers"][0]  # training target: the first answer, as in run_qa
            s_char, e_char = a["answer_start"], a["answer_start"] + len(a["text"])
            ctx = [j for j, s in enumerate(seq) if s == ctx_seq]
            first, last = ctx[0], ctx[-1]
            if offsets[first][0] <= s_char and offsets[last][1] >= e_char:  # the whole answer is inside
                start = first
                while start <= last and offsets[start][0] <= s_char:
                    start += 1
                start -= 1
                end = last
                while end >= first and offsets[end][1] >= e_char:
                    end -= 1
                end += 1
        for k in enc.keys():
            out[k].append(enc[k][i])
        out["offset_mapping"][-1] = [list(o) if seq[j] == ctx_seq else [-1, -1] for j, o in enumerate(offsets)]
        out["example_id"].append(row["id"])
        out["cls_index"].append(cls)
        out["start_positions"].append(start)
        out["end_positions"].append(end)
        out["length"].append(len(ids))
    return out
