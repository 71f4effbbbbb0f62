"""report stage: one self-contained HTML page + a Markdown summary of an extractive QA run.

Only `metrics/eval.json` is required; baselines, training log, data stats and predictions are
optional and their sections say "not available" when missing. Breakdowns (question type,
answer length) are computed here from the per-question predictions files, so they can be
changed without re-running any model.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict

from omegaconf import DictConfig

from pipelines.core import report as H
from pipelines.core.io import read_json, read_jsonl, write_text
from pipelines.core.paths import TaskPaths

PEFT_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tune"}
COLORS = {"F1": "#3b6ea8", "EM": "#9ebfe3"}
CURVES = (("eval_f1", "F1"), ("eval_exact_match", "EM"))  # validation metrics in train_log.json

# Spanish interrogatives, most specific first ("por qué" before "qué"); matched anywhere in
# the question, because Spanish often puts a preposition first ("¿En qué año ...?")
QUESTION_TYPES = [
    ("por qué", r"\bpor\s+qu[eé]\b"),
    ("cuánto/s", r"\bcu[aá]nt[oa]s?\b"),
    ("cuándo", r"\bcu[aá]ndo\b"),
    ("dónde", r"\b(a|de|en|hacia|desde|por)?\s*d[oó]nde\b"),
    ("quién/es", r"\bqui[eé]n(es)?\b"),
    ("cuál/es", r"\bcu[aá]l(es)?\b"),
    ("cómo", r"\bc[oó]mo\b"),
    ("qué", r"\bqu[eé]\b"),
]
_QT = [(name, re.compile(rx, re.I)) for name, rx in QUESTION_TYPES]
LENGTH_BUCKETS = [(1, 1, "1 word"), (2, 2, "2 words"), (3, 4, "3-4 words"), (5, 8, "5-8 words"), (9, 10**9, "9+ words")]


def question_type(question: str) -> str:
    """The first interrogative of the question (by position; ties: the more specific one)."""
    q = unicodedata.normalize("NFC", question.lower())
    # accented forms are the interrogative ones; unaccented matches are a fallback
    hits = [(m.start(), i, name) for i, (name, rx) in enumerate(_QT) if (m := rx.search(q))]
    return min(hits)[2] if hits else "other"


def answer_length(refs: list[str]) -> str:
    if not refs:
        return "no answer"
    n = min(len(r.split()) for r in refs)  # the shortest reference: what an exact span needs
    return next(label for lo, hi, label in LENGTH_BUCKETS if lo <= n <= hi)


def _mean(xs: list[float]) -> float:
    return 100.0 * sum(xs) / len(xs) if xs else math.nan


def breakdown(rows: list[dict], key) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {g: {"n": len(v), "exact_match": _mean([r["em"] for r in v]), "f1": _mean([r["f1"] for r in v])}
            for g, v in groups.items()}


def _check(summary, where: str) -> dict:
    return H.numeric(summary, where, ("exact_match", "f1"))


# ---------------------------------------------------------------- figures

def _bars(methods: list[tuple[str, dict]]):
    names = [n for n, _ in methods]

    def draw(fig):
        ax = fig.subplots()
        for j, (metric, key) in enumerate((("F1", "f1"), ("EM", "exact_match"))):
            ys = [i + (j - 0.5) * 0.38 for i in range(len(names))]
            vals = [m[key] for _, m in methods]
            ax.barh(ys, vals, height=0.36, color=COLORS[metric], label=metric)
            for y, v in zip(ys, vals):
                ax.text(v + 0.8, y, f"{v:.1f}", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("score (0-100)")
        ax.grid(axis="x", color="#eee")
        ax.set_axisbelow(True)
        ax.legend(fontsize=7.5, frameon=False, loc="lower right")

    return H.figure_uri(draw, (7.5, 0.55 * len(names) + 1.0))


def _group_bars(groups: dict[str, dict[str, dict]], order: list[str], title: str):
    """F1 per group (rows) for each method (bar colours)."""
    methods = list(groups)
    palette = ["#3b6ea8", "#c0504d", "#9bbb59", "#8064a2"]

    def draw(fig):
        ax = fig.subplots()
        h = 0.8 / max(len(methods), 1)
        for j, m in enumerate(methods):
            ys = [i + (j - (len(methods) - 1) / 2) * h for i in range(len(order))]
            vals = [groups[m].get(g, {}).get("f1", math.nan) for g in order]
            ax.barh(ys, [0 if math.isnan(v) else v for v in vals], height=h * 0.95, color=palette[j % 4], label=m)
        ax.set_yticks(range(len(order)),
                      [f"{g} (n={groups[methods[0]].get(g, {}).get('n', 0)})" for g in order])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("F1")
        ax.set_title(title)
        ax.grid(axis="x", color="#eee")
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, frameon=False, loc="lower right")

    return H.figure_uri(draw, (7.5, 0.42 * len(order) * max(1, len(methods) / 2) + 1.2))


# ---------------------------------------------------------------- sections

def _examples(rows: list[dict], n: int, worst: bool) -> str:
    rows = sorted(rows, key=lambda r: (r["f1"], r["id"]) if worst else (-r["f1"], r["id"]))[:n]
    if not rows:
        return H.p("none", "muted")
    return H.table(["id", "question", "prediction", "references", "EM", "F1"],
                   [[r["id"], r["question"], r["prediction"] or "(empty)", " | ".join(dict.fromkeys(r["references"])),
                     r["em"], r["f1"]] for r in rows])


def _data_section(clean: dict | None, splits: dict | None) -> list[str]:
    out = []
    if clean:
        out += [H.h3("Cleaning"),
                H.table(["", "value"], [["file", clean.get("file")], ["format", clean.get("format")],
                                        ["questions read", clean.get("questions_read")],
                                        ["articles", clean.get("articles")], ["paragraphs", clean.get("paragraphs")]]),
                H.table(["questions", "count"], (clean.get("questions") or {}).items()),
                H.p("Answers by outcome: ok = offset verified, stripped = surrounding spaces removed, repaired = "
                    "offset moved to the nearest occurrence of the text, empty = no text or answer_start -1 "
                    "(dropped), not_found / too_far = text not in the context / not near its offset (dropped).",
                    "muted"),
                H.table(["answers", "count"], (clean.get("answers") or {}).items())]
        if clean.get("repair_examples"):
            out.append(H.details("Repaired answers (first 20)", H.table(
                ["id", "reason", "text", "from", "to"],
                [[r.get("id"), r.get("reason"), r.get("text"), r.get("from"), r.get("to")] for r in clean["repair_examples"]])))
    else:
        out.append(H.not_available("cleaning stats"))
    if splits:
        order = [s for s in ("train", "val", "test") if s in splits]
        out += [H.h3("Splits (by article: no test article is seen in training)"),
                H.table(["split", "questions", "articles", "paragraphs", "unanswerable", "titles"],
                        [[s, splits[s].get("questions"), splits[s].get("articles"), splits[s].get("paragraphs"),
                          splits[s].get("impossible"), ", ".join(splits[s].get("titles", []))] for s in order])]
    else:
        out.append(H.not_available("split stats"))
    return out


def report(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    eval_path = tp.metrics / "eval.json"
    ev = read_json(eval_path)
    test = _check(ev.get("test") if isinstance(ev, dict) else None, f"{eval_path}: test")
    summary = H.optional(tp.models / "train_summary.json") or {}
    log = H.optional(tp.models / "train_log.json")
    baselines = H.optional(tp.metrics / "baselines.json") or {}
    preds = H.optional(tp.metrics / "predictions.jsonl", read_jsonl)
    bpreds = H.optional(tp.metrics / "baseline_predictions.jsonl", read_jsonl) or []
    n_ex = int(cfg.report.n_examples)

    model = ev.get("model") or cfg.model.key
    method = summary.get("method") or ev.get("method") or cfg.peft.method
    ft = f"{model} {PEFT_NAMES.get(method, method)}"
    names = {"untrained": f"{baselines.get('untrained', {}).get('model', model)} before fine-tuning",
             "generative": f"{baselines.get('generative', {}).get('model', 'LM')} zero-shot"}
    norms = list(test.get("normalisation", {}))

    # rows: (method, set, n, EM, F1, per-normalisation...)
    rows = [[ft, "test", test.get("n"), test["exact_match"], test["f1"],
             *(x for nm in norms for x in (test["normalisation"][nm]["exact_match"], test["normalisation"][nm]["f1"]))]]
    bars = [(ft, test)]
    by_method: dict[str, list[dict]] = {ft: preds or []}
    for key in ("untrained", "generative"):
        entry = baselines.get(key)
        if not isinstance(entry, dict) or "test" not in entry:
            continue
        s = _check(entry["test"], f"{tp.metrics / 'baselines.json'}: {key}.test")
        label = names[key]
        set_name = f"test sample (n={s['n']})" if entry.get("sampled") else "test"
        rows.append([label, set_name, s["n"], s["exact_match"], s["f1"],
                     *(x for nm in norms for x in (s.get("normalisation", {}).get(nm, {}).get("exact_match"),
                                                   s.get("normalisation", {}).get(nm, {}).get("f1")))])
        bars.append((label, s))
        mine = [r for r in bpreds if r.get("method") == key]
        by_method[label] = mine
        if entry.get("sampled") and preds:
            # the fine-tuned model on exactly the questions the baseline saw
            ids = {r["id"] for r in mine}
            same = [r for r in preds if r["id"] in ids]
            if same:
                sub = {"n": len(same), "exact_match": _mean([r["em"] for r in same]), "f1": _mean([r["f1"] for r in same])}
                rows.append([ft, set_name, sub["n"], sub["exact_match"], sub["f1"], *([None] * 2 * len(norms))])
                bars.append((f"{ft} (same sample)", sub))

    f1 = {n: s["f1"] for n, s in bars}
    verdict = f"{ft}: EM {test['exact_match']:.1f} / F1 {test['f1']:.1f} on {test.get('n')} test questions of held-out articles"
    others = [f"{n} F1 {v:.1f}" for n, v in f1.items() if n != ft and "same sample" not in n]
    verdict += ("; " + ", ".join(others) + "." if others else ".")
    if "generative" in baselines and f"{ft} (same sample)" in f1:
        verdict += f" On the generator's sample the fine-tuned model scores F1 {f1[f'{ft} (same sample)']:.1f}."

    headers = ["method", "set", "n", "EM", "F1", *(f"{h} ({nm})" for nm in norms for h in ("EM", "F1"))]
    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description, verdict)
    page.add("Results", H.img(_bars(bars), "EM and F1 per method"), H.table(headers, rows, digits=2),
             H.p(f"EM/F1 with the official SQuAD v1.1 normalisation and with '{norms[-1] if norms else ''}' "
                 "(Spanish articles el/la/los/las/un/una/unos/unas and ¿¡«» removed). Primary: "
                 f"{test.get('primary')}.", "muted"), anchor="results")

    H.training_section(page, log, tp.models / "train_log.json",
                       titles=("train loss", "validation loss", "validation EM / F1"),
                       series=[(name, COLORS[name], lambda e, k=key: e.get(k)) for key, name in CURVES])

    if preds:
        scored = {m: r for m, r in by_method.items() if r}
        qt = {m: breakdown(r, lambda x: question_type(x["question"])) for m, r in scored.items()}
        al = {m: breakdown(r, lambda x: answer_length(x["references"])) for m, r in scored.items()}
        qt_order = sorted(qt[ft], key=lambda g: (-qt[ft][g]["n"], g))
        al_order = [b for *_, b in LENGTH_BUCKETS if b in al[ft]] + (["no answer"] if "no answer" in al[ft] else [])
        page.add("F1 by question type",
                 H.img(_group_bars(qt, qt_order, "F1 by interrogative"), "F1 by question type"),
                 H.table(["type", *(f"{h} {m}" for m in qt for h in ("n", "F1"))],
                         [[g, *(x for m in qt for x in (qt[m].get(g, {}).get("n"), qt[m].get(g, {}).get("f1")))]
                          for g in qt_order], digits=1),
                 H.p("Type = the first Spanish interrogative in the question (por qué, cuánto, cuándo, dónde, quién, "
                     "cuál, cómo, qué); baselines on a sample have smaller n.", "muted"), anchor="question-type")
        page.add("F1 by answer length",
                 H.img(_group_bars(al, al_order, "F1 by length of the shortest reference"), "F1 by answer length"),
                 H.table(["answer length", *(f"{h} {m}" for m in al for h in ("n", "F1"))],
                         [[g, *(x for m in al for x in (al[m].get(g, {}).get("n"), al[m].get(g, {}).get("f1")))]
                          for g in al_order], digits=1), anchor="answer-length")
        page.add(f"Examples ({ft})", H.h3(f"Worst {n_ex}"), _examples(preds, n_ex, worst=True),
                 H.h3(f"Best {n_ex}"), _examples(preds, n_ex, worst=False), anchor="examples")
    else:
        page.add("Breakdowns", H.not_available(f"predictions ({tp.metrics / 'predictions.jsonl'})"), anchor="question-type")
    gen = [r for r in bpreds if r.get("method") == "generative"]
    if gen:
        page.add(f"Examples ({names['generative']})",
                 H.table(["id", "question", "raw reply", "answer", "references", "F1"],
                         [[r["id"], r["question"], r.get("raw", ""), r["prediction"] or "(empty)",
                           " | ".join(dict.fromkeys(r["references"])), r["f1"]] for r in gen[:n_ex]]),
                 anchor="generative-examples")

    if summary:
        page.add("Parameters", H.table(["", "value"], [[k, v] for k, v in sorted(summary.items()) if not isinstance(v, dict)],
                                       digits=4), anchor="parameters")
    page.add("Data", *_data_section(H.optional(tp.data / "clean_stats.json"), H.optional(tp.data / "split_stats.json")),
             anchor="data")
    page.add("Config", H.config_block(cfg), anchor="config")

    html_path = tp.reports / "index.html"
    md = "\n".join([f"# Report: {cfg.task.name} ({ft})", "", verdict, "",
                    H.markdown_table(["method", "set", "n", "EM", "F1"], [r[:5] for r in rows], digits=2),
                    f"Full report: {html_path}", ""])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
