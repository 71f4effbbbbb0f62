"""report stage of instruct: fine-tuned vs base model, curves, examples side by side.

Only metrics/eval.json is required; everything else is optional ("not available").
"""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.core import report as H
from pipelines.core.io import read_json, read_jsonl, write_text
from pipelines.core.paths import TaskPaths

METRICS = [("rouge_l", "ROUGE-L"), ("token_f1", "token F1"), ("eos_rate", "EOS rate"),
           ("mean_new_tokens", "new tokens"), ("loss", "test loss"), ("perplexity", "test ppl")]


def _check(test, where: str) -> dict:
    return H.numeric(test, where, ("rouge_l", "eos_rate"))


def report(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    ev = read_json(tp.metrics / "eval.json")
    test = _check(ev.get("test") if isinstance(ev, dict) else None, f"{tp.metrics / 'eval.json'}: test")
    base = (H.optional(tp.metrics / "baselines.json") or {}).get("base")
    summary = H.optional(tp.models / "train_summary.json") or {}
    log = H.optional(tp.models / "train_log.json")
    preds = H.optional(tp.metrics / "predictions.jsonl", read_jsonl) or []
    bpreds = {r["id"]: r for r in (H.optional(tp.metrics / "baseline_predictions.jsonl", read_jsonl) or [])}

    ft = f"{ev.get('model', cfg.model.key)} + {ev.get('method', cfg.peft.method)} ({ev.get('format')})"
    rows = [[ft, *(test.get(k) for k, _ in METRICS)]]
    verdict = (f"{ft}: test ROUGE-L {test['rouge_l']:.3f}, token-F1 {test.get('token_f1', 0):.3f}, "
               f"EOS rate {test['eos_rate']:.2f} on {test.get('n_generated')} generated answers")
    if base:
        b = _check(base.get("test"), f"{tp.metrics / 'baselines.json'}: base.test")
        rows.append([f"{base.get('model', cfg.model.key)} base (same prompts)", *(b.get(k) for k, _ in METRICS)])
        verdict += f"; base model ROUGE-L {b['rouge_l']:.3f}, EOS rate {b['eos_rate']:.2f}."
    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description, verdict)
    page.add("Results", H.table(["model", *(n for _, n in METRICS)], rows),
             H.p("ROUGE-L (LCS F-measure) and token F1 against the reference output on a seeded test sample; "
                 "EOS rate = share of replies that ended with an end-of-sequence token within the token budget; "
                 "test loss / perplexity over the completion tokens of every test example.", "muted"),
             anchor="results")
    H.training_section(page, log, tp.models / "train_log.json", **H.SFT_CURVES)
    if preds:
        n = cfg.evaluate.n_examples
        page.add("Examples (base vs fine-tuned)", H.table(
            ["instruction", "input", "reference", "base model", "fine-tuned", "ROUGE-L base → ft"],
            [[p["instruction"], p["input"], p["reference"], bpreds.get(p["id"], {}).get("prediction", "—"),
              p["prediction"] + ("" if p["eos"] else " [no EOS]"),
              f"{bpreds[p['id']]['rouge_l']:.2f} → {p['rouge_l']:.2f}" if p["id"] in bpreds else f"{p['rouge_l']:.2f}"]
             for p in preds[:n]]), anchor="examples")
    if summary:
        page.add("Parameters", H.table(["", "value"], [[k, v] for k, v in sorted(summary.items())
                                                       if not isinstance(v, (dict, list))], digits=4),
                 anchor="parameters")
    stats = H.optional(tp.data / "tokenize_stats.json")
    if stats:
        page.add("Data", H.table(["split", "examples", "mean tokens", "max tokens", "learned-token share",
                                  "dropped (too long)"],
                                 [[s, stats[s]["examples"], stats[s]["mean_tokens"], stats[s]["max_tokens"],
                                   stats[s]["learned_token_share"], stats[s].get("dropped_too_long")]
                                  for s in ("train", "val", "test") if s in stats]),
                 H.p(f"Prompt format {stats.get('format')}; pad token {stats.get('pad', {}).get('pad_token')} "
                     f"(was {stats.get('pad', {}).get('was')}).", "muted"), anchor="data")
    page.add("Config", H.config_block(cfg), anchor="config")
    html_path = tp.reports / "index.html"
    md = "\n".join([f"# Report: {cfg.task.name}", "", verdict, "",
                    H.markdown_table(["model", *(n for _, n in METRICS)], rows), f"Full report: {html_path}", ""])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
