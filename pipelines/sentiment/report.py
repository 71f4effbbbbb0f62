"""report stage: one self-contained HTML page + a Markdown summary of a sentiment run.

Only `metrics/eval.json` is required; every other input (baselines, training log, data stats,
predictions) is optional and its section says "not available" when the file is missing, so a
report can be made from a partial run.
"""
from __future__ import annotations

import math
import re

from omegaconf import DictConfig

from pipelines.core import report as H
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json, read_jsonl, write_text
from pipelines.core.paths import TaskPaths

PEFT_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tune"}
COLORS = {"macro-F1": "#3b6ea8", "accuracy": "#9ebfe3"}
TEXT_CHARS = 400  # examples are truncated: the page is for reading, predictions.jsonl has all


def _check_metrics(m, where: str) -> dict:
    if not isinstance(m, dict):
        raise PipelineError(f"{where}: expected a metrics object, got {type(m).__name__}")
    for key in ("accuracy", "macro_f1"):
        if not isinstance(m.get(key), (int, float)):
            raise PipelineError(f"{where}: missing or non-numeric {key!r}")
    return m


def _results(entry, where: str) -> dict[str, dict]:
    """{"test": M, "extra": {set: M}} -> {set: M} with the test set first."""
    if not isinstance(entry, dict) or "test" not in entry:
        raise PipelineError(f"{where}: expected an object with a 'test' metrics entry")
    out = {"test": _check_metrics(entry["test"], f"{where}.test")}
    for name, m in (entry.get("extra") or {}).items():
        out[name] = _check_metrics(m, f"{where}.extra.{name}")
    return out


def _baseline_label(key: str, entry: dict, cfg: DictConfig) -> str:
    if key == "tfidf":
        return "TF-IDF"
    prompt_model = entry.get("model") or cfg.baselines.prompting.model.key
    if key == "zero_shot":
        return f"zero-shot ({prompt_model})"
    if m := re.fullmatch(r"few_shot_(\d+)", key):
        return f"few-shot-{m.group(1)} ({prompt_model})"
    return key.replace("_", "-")


def _baseline_order(key: str) -> tuple:
    # baselines.json has sorted keys; show classic, then zero-shot, then few-shot by k
    m = re.fullmatch(r"few_shot_(\d+)", key)
    return ({"tfidf": 0, "zero_shot": 1}.get(key, 2 if m else 3), int(m.group(1)) if m else 0, key)


def _labels(cfg: DictConfig, m: dict) -> list[str]:
    # eval.json is written with sorted keys, so per_class order is not the label order
    labels = list(cfg.data.labels)
    return labels if len(labels) == len(m.get("confusion_matrix") or labels) else list(m.get("per_class", {}))


# ---------------------------------------------------------------- figures

def _bars(methods: dict[str, dict], sets: list[str]):
    names = list(methods)
    ncols = min(3, len(sets))
    nrows = math.ceil(len(sets) / ncols)

    def draw(fig):
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
        for ax, s in zip(axes, sets):
            for j, (metric, key) in enumerate((("macro-F1", "macro_f1"), ("accuracy", "accuracy"))):
                ys = [i + (j - 0.5) * 0.38 for i in range(len(names))]
                vals = [methods[n].get(s, {}).get(key, math.nan) for n in names]
                ax.barh(ys, [0 if math.isnan(v) else v for v in vals], height=0.36,
                        color=COLORS[metric], label=metric)
                for y, v in zip(ys, vals):
                    ax.text(0.01 if math.isnan(v) else v + 0.01, y, "n/a" if math.isnan(v) else f"{v:.3f}",
                            va="center", fontsize=7, color="#555" if math.isnan(v) else "#222")
            n = next((methods[m][s]["n"] for m in names if s in methods[m] and "n" in methods[m][s]), None)
            ax.set_title(f"{s} (n={n})" if n is not None else s)
            ax.set_xlim(0, 1.12)
            ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
            ax.grid(axis="x", color="#eee")
            ax.set_axisbelow(True)
        axes[0].set_yticks(range(len(names)), names)
        axes[0].invert_yaxis()
        # above the panels: inside one, it would cover the value labels of the last method
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=2, fontsize=7.5,
                   frameon=False)
        for ax in axes[len(sets):]:
            ax.set_visible(False)

    return H.figure_uri(draw, (3.6 * ncols + 1.8, (0.55 * len(names) + 0.9) * nrows))


def _confusions(cms: list[tuple[str, list[str], list[list[int]]]]):
    ncols = min(4, len(cms))
    nrows = math.ceil(len(cms) / ncols)

    def draw(fig):
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (name, labels, cm) in zip(axes, cms):
            rows = [sum(r) or 1 for r in cm]
            norm = [[v / rows[i] for v in r] for i, r in enumerate(cm)]  # row share: readable if imbalanced
            ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
            for i, r in enumerate(cm):
                for j, v in enumerate(r):
                    ax.text(j, i, f"{v}\n{norm[i][j]:.0%}", ha="center", va="center", fontsize=7.5,
                            color="white" if norm[i][j] > 0.6 else "#222")
            ax.set_xticks(range(len(labels)), labels)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(name, fontsize=8.5)
            ax.spines[:].set_visible(False)
        for ax in axes[len(cms):]:
            ax.set_visible(False)

    return H.figure_uri(draw, (2.75 * ncols, 2.75 * nrows))


# ---------------------------------------------------------------- sections

def _examples(rows: list[dict], n: int, errors_only: bool) -> str:
    if errors_only:
        rows = [r for r in rows if r.get("label") != r.get("pred")]
        # most confident mistakes first: they say more than coin flips
        rows.sort(key=lambda r: (-abs((r.get("prob_positive") or 0.5) - 0.5), str(r.get("id"))))
    else:
        rows = sorted(rows, key=lambda r: r.get("label") == r.get("pred"))  # stable: errors first
    if not rows:
        return H.p("none", "muted")
    out = []
    for r in rows[:n]:
        text = str(r.get("text", ""))
        text = text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"
        ok = "✓" if r.get("label") == r.get("pred") else "✗"
        out.append([r.get("id"), r.get("label"), r.get("pred"), ok, r.get("prob_positive"), text])
    return H.table(["id", "label", "pred", "ok", "P(positive)", "text"], out)


def _stats_table(obj) -> str:
    """Split stats of unknown shape: {split: n} or {split: {key: value or {sub: value}}}."""
    if not isinstance(obj, dict):
        return H.p(str(obj))
    rows, cols = [], []
    order = {"train": 0, "val": 1, "validation": 1, "test": 2}  # the file has sorted keys
    for split, v in sorted(obj.items(), key=lambda kv: (order.get(kv[0], 3), kv[0])):
        flat = {}
        if isinstance(v, dict):
            for k, x in v.items():
                flat.update({f"{k}.{s}": y for s, y in x.items()} if isinstance(x, dict) else {k: x})
        else:
            flat["n"] = v
        cols += [c for c in flat if c not in cols]
        rows.append((split, flat))
    cols.sort(key=lambda c: "." in c)  # totals before the per-class breakdown
    return H.table(["split", *cols], [[s, *(f.get(c) for c in cols)] for s, f in rows])


def _data_section(clean, splits) -> list[str]:
    out = []
    if clean:
        core = ("step", "removed", "remaining")  # other keys of a step (e.g. changed=) go to "note"
        steps = [[s.get(k) for k in core] + [", ".join(f"{k}={H.fmt(v)}" for k, v in s.items() if k not in core)]
                 for s in clean.get("steps", [])]
        out += [H.h3("Cleaning steps"), H.table([*core, "note"], steps)]
        facts = [[k, v] for k, v in clean.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
        out += [H.table(["", "value"], facts)] if facts else []
        classes = clean.get("class_counts") or clean.get("classes")
        if classes:
            out += [H.h3("Class counts after cleaning"), H.table(["class", "count"], classes.items())]
        if clean.get("lang_dropped_by_language"):
            out += [H.h3("Dropped by the language filter, by detected language"),
                    H.table(["language", "count"], sorted(clean["lang_dropped_by_language"].items(),
                                                          key=lambda kv: (-kv[1], kv[0])))]
        sample = clean.get("lang_dropped_sample") or []
        if sample:
            rows = [[r.get("id"), r.get("lang"), str(r.get("text", ""))[:TEXT_CHARS]] if isinstance(r, dict)
                    else [None, None, str(r)[:TEXT_CHARS]] for r in sample]
            out.append(H.details(f"Sample of {len(rows)} texts dropped by the language filter",
                                 H.table(["id", "lang", "text"], rows)))
    else:
        out.append(H.not_available("cleaning stats"))
    return out + [H.h3("Splits"), _stats_table(splits) if splits else H.not_available("split stats")]


def report(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    eval_path = tp.metrics / "eval.json"
    ev = read_json(eval_path)  # required: PipelineError naming the file if missing
    summary = H.optional(tp.models / "train_summary.json") or {}
    log = H.optional(tp.models / "train_log.json")
    baselines = H.optional(tp.metrics / "baselines.json")
    preds = H.optional(tp.metrics / "predictions.jsonl", read_jsonl)
    clean_stats = H.optional(tp.data / "clean_stats.json")
    split_stats = H.optional(tp.data / "split_stats.json")
    n_ex = int(cfg.report.n_examples)

    model = ev.get("model") or summary.get("model") or cfg.model.key
    method = summary.get("method") or ev.get("method") or cfg.peft.method
    ft_name = f"{model} {PEFT_NAMES.get(method, method)}"
    methods = {ft_name: _results(ev, str(eval_path))}
    for key, entry in sorted((baselines or {}).items(), key=lambda kv: _baseline_order(kv[0])):
        if isinstance(entry, dict) and "test" in entry:  # a skipped baseline may only leave a note
            methods[_baseline_label(key, entry, cfg)] = _results(entry, f"{tp.metrics / 'baselines.json'}: {key}")
    sets = list(dict.fromkeys(s for res in methods.values() for s in res))

    # verdict: best by test macro-F1 (ties: earlier method, i.e. the fine-tuned model)
    f1 = {n: r["test"]["macro_f1"] for n, r in methods.items()}
    best = max(f1, key=f1.get)
    verdict = f"Best on test macro-F1: {best} ({f1[best]:.3f})."
    if "TF-IDF" in f1:
        d = f1[ft_name] - f1["TF-IDF"]
        verb = "beats" if d > 0 else "does not beat"
        verdict += f" {ft_name} {verb} TF-IDF ({f1[ft_name]:.3f} vs {f1['TF-IDF']:.3f}, {d:+.3f})."
    else:
        verdict += " TF-IDF baseline not available."

    labels = _labels(cfg, ev["test"])
    rows = [[n, s, m.get("n"), m["accuracy"], m["macro_f1"],
             *(m.get("per_class", {}).get(lab, {}).get("f1") for lab in labels)]
            for n, res in methods.items() for s, m in res.items()]
    headers = ["method", "set", "n", "accuracy", "macro-F1", *(f"F1 {lab}" for lab in labels)]
    per_class = [[n, lab, c.get("precision"), c.get("recall"), c.get("f1"), c.get("support")]
                 for n, res in methods.items() for lab, c in res["test"].get("per_class", {}).items()]

    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description, verdict)
    page.add("Results", H.img(_bars(methods, sets), "macro-F1 and accuracy per method and set"),
             H.table(headers, rows),
             H.details("Per-class precision / recall / F1 on test",
                       H.table(["method", "class", "precision", "recall", "F1", "support"], per_class)),
             anchor="results")

    final = next((e for e in reversed(log or []) if "train_loss" in e), {})
    facts = [[k, final[k]] for k in ("train_loss", "epoch", "step") if k in final]
    H.training_section(page, log, tp.models / "train_log.json", H.table(["", "value"], facts) if facts else "",
                       alt="training and evaluation curves", x="epoch",
                       titles=("train loss vs step", "eval loss vs epoch", "eval metrics vs epoch"),
                       series=[("macro-F1", "#3b6ea8", lambda e: e.get("eval_macro_f1")),
                               ("accuracy", "#9ebfe3", lambda e: e.get("eval_accuracy"))])

    cms = [(n, _labels(cfg, r["test"]), r["test"]["confusion_matrix"])
           for n, r in methods.items() if r["test"].get("confusion_matrix")]
    page.add("Confusion matrices (test)",
             H.p("Rows: true label, columns: prediction; count and share of the row.", "muted"),
             H.img(_confusions(cms), "confusion matrices") if cms else H.not_available("confusion matrices"),
             anchor="confusion")

    if summary:
        best_metric = summary.get("metric_for_best", cfg.train.metric_for_best)
        known = {"model": "base model", "method": "fine-tuning method", "trainable_params": "trainable parameters",
                 "total_params": "total parameters", "trainable_pct": "trainable (%)",
                 "target_modules": "target modules", "metric_for_best": None,
                 "best_checkpoint_metric": f"best checkpoint {best_metric}"}
        kv = [[label, summary[k]] for k, label in known.items() if label and k in summary]
        kv += [[k, v] for k, v in sorted(summary.items()) if k not in known and not isinstance(v, dict)]
        page.add("Parameters", H.table(["", "value"], kv, digits=4), anchor="parameters")
    else:
        page.add("Parameters", H.not_available(f"training summary ({tp.models / 'train_summary.json'})"),
                 anchor="parameters")

    page.add("Data", *_data_section(clean_stats, split_stats), anchor="data")

    ex = []
    if preds is None:
        ex.append(H.not_available(f"predictions ({tp.metrics / 'predictions.jsonl'})"))
    else:
        ex += [H.h3(f"Misclassified test examples (most confident first, up to {n_ex})"),
               _examples([r for r in preds if r.get("set") == "test"], n_ex, errors_only=True)]
        for s in sets[1:]:
            ex += [H.h3(f"{s} examples (errors first, up to {n_ex})"),
                   _examples([r for r in preds if r.get("set") == s], n_ex, errors_only=False)]
    page.add(f"Examples ({ft_name})", *ex, anchor="examples")
    page.add("Config", H.config_block(cfg), anchor="config")

    html_path = tp.reports / "index.html"
    md = "\n".join([
        f"# Report: {cfg.task.name} ({ft_name})", "", verdict, "",
        H.markdown_table(["method", "set", "n", "accuracy", "macro-F1"], [r[:5] for r in rows]),
        *([f"Trainable parameters: {H.fmt(summary['trainable_params'])} of {H.fmt(summary['total_params'])}"
           f" ({100 * summary['trainable_params'] / summary['total_params']:.3g}%).", ""]
          if summary.get("trainable_params") and summary.get("total_params") else []),
        f"Full report: {html_path}", "",
    ])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
