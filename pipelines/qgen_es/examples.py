"""SFT examples of qgen_es: one chat example per SQuAD-es paragraph (system prompt, request for
N questions with K true/false items, numbered target list) and the split by article."""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

from pipelines.core.errors import PipelineError
from pipelines.core.textmetrics import token_f1, tokens

from .truefalse import TF_SUFFIX, make_true_false, natural_statement, same_answer

# Kept short on purpose: SmolLM2's English BPE spends ~2.5 chars per Spanish token, and every
# prompt (and training example) carries it.
DEFAULT_SYSTEM_PROMPT = (
    "Escribes preguntas de comprensión lectora sobre un texto en español. Las de verdadero o falso son "
    f'afirmaciones que terminan en "{TF_SUFFIX}"; las demás, preguntas cortas entre ¿ y ?. '
    "Sin respuestas. Responde solo con la lista numerada."
)
DEFAULT_USER_TEMPLATE = (
    "Texto:\n{text}\n\n"
    "Escribe exactamente {n} preguntas sobre el texto: primero {n_short} preguntas de respuesta corta "
    "y al final {k} afirmaciones de verdadero o falso."
)


TF_POSITIONS = ("end", "start", "random")


def build_target(short_questions: Sequence[str], tf_statements: Sequence[str], rng: random.Random,
                 tf_position: str = "random") -> str:
    """Numbered list "1. ...\\n2. ..." with the T/F items last, first or at seeded positions, no answers."""
    n = len(short_questions) + len(tf_statements)
    k = len(tf_statements)
    if tf_position not in TF_POSITIONS:
        raise PipelineError(f"data.tf_position: {tf_position!r} is not one of {', '.join(TF_POSITIONS)}")
    tf_at = (set(range(n - k, n)) if tf_position == "end" else set(range(k)) if tf_position == "start"
             else set(rng.sample(range(n), k)))
    shorts, tfs = iter(short_questions), iter(tf_statements)
    return "\n".join(f"{i + 1}. {next(tfs) if i in tf_at else next(shorts)}" for i in range(n))


def _as_question(text: str) -> str | None:
    """A question fit for a target: ends in "?"; gets an opening "¿" when the source lacks one."""
    q = " ".join(text.split())
    if not q.endswith("?") or len(tokens(q)) < 2:
        return None  # SQuAD-es has statements like "El equipo ganó el Super Bowl 50."
    return q if "¿" in q else f"¿{q}"


def make_sft_examples(paragraphs: Sequence[dict], n_questions: int, n_true_false: int, min_short: int,
                      system_prompt: str = DEFAULT_SYSTEM_PROMPT, user_template: str = DEFAULT_USER_TEMPLATE,
                      seed: int = 0, tf_position: str = "random", quoted_fallback: bool = True) -> list[dict]:
    """One chat example per paragraph with enough questions.

    K pairs become T/F statements and up to N-K *other* pairs give the short questions. A
    short question is also left out when its answer equals a T/F pair's answer or it nearly
    repeats another item (SQuAD has several wordings of one question), since the statement
    would give it away. With too few questions the example gets its own smaller n and k
    (k = min(K, n - min_short)); the request always states the counts its target contains.
    Paragraphs that cannot have min_short short questions (and >= 1 T/F item when K > 0)
    are skipped. quoted_fallback=False keeps only natural statements (never `Según el texto, la
    respuesta a "<q>" es <a>`), so a paragraph without enough of them gets fewer T/F items.
    Each paragraph has its own rng (seed + id), so filtering others changes nothing.
    """
    if n_questions < 1 or not 0 <= n_true_false <= n_questions or min_short < 0:
        raise PipelineError(f"qgen_es: need n_questions >= 1, 0 <= n_true_false <= n_questions, min_short >= 0 "
                            f"(got {n_questions}, {n_true_false}, {min_short})")
    by_title: dict[str, list[dict]] = defaultdict(list)
    for p in paragraphs:
        by_title[p["title"]].extend(p["qas"])
    examples = []
    for p in paragraphs:
        rng = random.Random(f"{seed}:{p['id']}")
        pairs, seen = [], set()
        for qa in p["qas"]:
            q = _as_question(qa["question"])
            key = tuple(tokens(q or ""))
            if q and key not in seen:
                seen.add(key)
                pairs.append((q, qa))
        n_max = min(n_questions, len(pairs))
        k_goal = min(n_true_false, n_max - min_short)
        if k_goal < min(n_true_false, 1):
            continue
        order = list(range(len(pairs)))
        rng.shuffle(order)
        tf: list[tuple[int, str, bool]] = []
        # pairs that make a natural statement first: the fallback wording teaches the model to
        # quote the question and its answer in the list (answer leakage)
        for i in sorted(order, key=lambda i: natural_statement(pairs[i][0], pairs[i][1]["answer"] or "") is None):
            if len(tf) == k_goal:
                break
            if made := make_true_false(pairs[i][1], by_title[p["title"]], rng):
                if quoted_fallback or natural_statement(pairs[i][0], pairs[i][1]["answer"] or ""):
                    tf.append((i, *made))
        if n_true_false and not tf:
            continue
        k = len(tf)
        tf_idx = {i for i, _, _ in tf}
        tf_answers = [a for i in tf_idx for a in pairs[i][1]["answers"]]
        short: list[int] = []
        for i in order:
            if len(short) == n_questions - k:
                break
            q, qa = pairs[i]
            if i in tf_idx or any(same_answer(a, b) for a in qa["answers"] for b in tf_answers):
                continue
            if any(token_f1(q, pairs[j][0]) >= 0.8 for j in [*short, *tf_idx]):
                continue
            short.append(i)
        if len(short) < min_short or not short and not tf:
            continue
        n = k + len(short)
        shorts = [pairs[i][0] for i in sorted(short)]  # source order: questions follow the text
        target = build_target(shorts, [s for _, s, _ in tf], rng, tf_position)
        examples.append({
            "id": p["id"], "title": p["title"], "context": p["context"], "n": n, "k": k,
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": user_template.format(text=p["context"], n=n, k=k, n_short=n - k)},
                {"role": "assistant", "content": target},
            ],
            "true_false": [{"statement": s, "true": t, "question": pairs[i][0]} for i, s, t in tf],
            "reference_questions": [qa["question"] for qa in p["qas"]],
        })
    return examples


def split_by_title(paragraphs: Sequence[dict], val: float, test: float, seed: int) -> dict[str, list]:
    """Whole articles per split (seeded), filling test then val up to about their paragraph share."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise PipelineError(f"split: need 0 <= val, 0 <= test and val + test < 1 (got val={val}, test={test})")
    counts: dict[str, int] = defaultdict(int)
    for p in paragraphs:
        counts[p["title"]] += 1
    order = sorted(counts)
    random.Random(seed).shuffle(order)
    total = sum(counts.values())
    which: dict[str, str] = {}
    i = 0
    for name, share in (("test", test), ("val", val)):
        got = 0
        # take an article while it brings the split closer to its share; keep >= 1 for training
        while share > 0 and i < len(order) - 1 and (got == 0 or got + counts[order[i]] / 2 <= share * total):
            which[order[i]] = name
            got += counts[order[i]]
            i += 1
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for p in paragraphs:
        out[which.get(p["title"], "train")].append(p)
    return out
