"""n-best span post-processing on hand-made logits: spans only inside the context, never an end
before its start, at most max_answer_length tokens, best span over all windows of an example."""
from __future__ import annotations

import numpy as np

from pipelines.extractive_qa.postprocess import best_spans, postprocess

CONTEXT = "Nikola Tesla nació en 1856 en Smiljan."
# tokens: 0 CLS, 1-2 question, 3 SEP, then context tokens with their char offsets, then SEP
CTX_TOKENS = [(0, 6), (7, 12), (13, 18), (19, 21), (22, 26), (27, 29), (30, 37), (37, 38)]
OFFSETS = [[-1, -1]] * 4 + [list(o) for o in CTX_TOKENS] + [[-1, -1]]


def _logits(n, start_at=None, end_at=None, extra=()):
    s, e = np.zeros(n), np.zeros(n)
    if start_at is not None:
        s[start_at] = 5
    if end_at is not None:
        e[end_at] = 5
    for arr, i, v in extra:
        (s if arr == "s" else e)[i] = v
    return s, e


def _run(starts, ends, offsets_list, ids, **kw):
    feats = {"example_id": ids, "offset_mapping": offsets_list, "cls_index": [0] * len(ids)}
    return postprocess([{"id": "q", "context": CONTEXT}], feats, starts, ends, **kw)["q"]


def test_best_span_is_read_from_offsets():
    s, e = _logits(len(OFFSETS), 8, 8)  # token 8 = "1856"
    assert _run([s], [e], [OFFSETS], ["q"])["prediction"] == "1856"


def test_question_tokens_are_never_an_answer():
    # the highest logits sit on question tokens (1, 2) and CLS: they must be ignored
    s, e = _logits(len(OFFSETS), 10, 10, extra=[("s", 1, 50), ("e", 2, 50), ("s", 0, 60), ("e", 0, 60)])
    p = _run([s], [e], [OFFSETS], ["q"])
    assert p["prediction"] == "Smiljan"  # token 10 = chars 30-37


def test_end_before_start_is_never_chosen():
    # argmax start is after argmax end: independent argmax would give an empty/backwards span
    s, e = _logits(len(OFFSETS), extra=[("s", 9, 10), ("e", 5, 10), ("s", 4, 3)])
    p = _run([s], [e], [OFFSETS], ["q"], n_best=50)
    # start 9 + end 5 (20) is backwards; the best valid pair is start 4 + end 5 (3 + 10 = 13)
    assert p["prediction"] == "Nikola Tesla"
    for cand in p["nbest"]:
        assert cand["text"] in CONTEXT and cand["text"].strip()


def test_max_answer_length_in_tokens():
    s, e = _logits(len(OFFSETS), 4, 10)  # a 7-token span
    assert _run([s], [e], [OFFSETS], ["q"], max_answer_length=7)["prediction"] == "Nikola Tesla nació en 1856 en Smiljan"
    short = _run([s], [e], [OFFSETS], ["q"], max_answer_length=3)["prediction"]
    assert len(short.split()) <= 3


def test_best_over_all_windows_and_padded_logits():
    # two windows of the same example; the second holds the stronger span; logits are padded
    # with -100 beyond each window's length, as the Trainer returns them
    s1, e1 = _logits(len(OFFSETS), 4, 4)
    s2, e2 = _logits(len(OFFSETS), 10, 10)
    s2[10] = e2[10] = 9
    pad = np.full(5, -100.0)
    p = _run([np.r_[s1, pad], np.r_[s2, pad]], [np.r_[e1, pad], np.r_[e2, pad]], [OFFSETS, OFFSETS], ["q", "q"])
    assert p["prediction"] == "Smiljan"
    assert abs(sum(c["prob"] for c in p["nbest"]) - 1) < 1e-5
    assert p["nbest"][0]["score"] >= p["nbest"][-1]["score"]


def test_v2_null_answer():
    s, e = _logits(len(OFFSETS), 8, 8)
    s[0] = e[0] = 20  # CLS (null) beats the best span by a margin
    feats = {"example_id": ["q"], "offset_mapping": [OFFSETS], "cls_index": [0]}
    ex = [{"id": "q", "context": CONTEXT}]
    assert postprocess(ex, feats, [s], [e], version_2=True)["q"]["prediction"] == ""
    assert postprocess(ex, feats, [s], [e], version_2=True, null_threshold=100)["q"]["prediction"] == "1856"
    assert postprocess(ex, feats, [s], [e], version_2=False)["q"]["prediction"] == "1856"


def test_best_spans_exact_search_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 40))
        s, e = rng.normal(size=n), rng.normal(size=n)
        valid = rng.random(n) > 0.3
        L = int(rng.integers(1, 8))
        brute = sorted(((s[i] + e[j], i, j) for i in range(n) for j in range(i, min(n, i + L))
                        if valid[i] and valid[j]), key=lambda t: (-t[0], t[1], t[2]))[:5]
        got = best_spans(s, e, valid, L, 5)
        assert [(round(a, 9), b, c) for a, b, c in got] == [(round(a, 9), b, c) for a, b, c in brute]
