"""report stage of qgen_es: question-quality metrics per mode, curves, 5 example outputs.

Only metrics/eval.json (the fine-tuned model) is required; the prompting modes come from
metrics/baselines.json when present.
"""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.core import report as H
from pipelines.core.io import read_json, read_jsonl, write_text
from pipelines.core.paths import TaskPaths

# (key, header, higher is better?)
METRICS = [("count_ok", "count exact", True), ("tf_ok", "T/F count exact", True),
           ("tf_share_error", "|T/F share − asked|", False), ("format_valid", "format valid", True),
           ("leakage", "answer leakage", False), ("near_duplicate_rate", "near-duplicates", False),
           ("grounding", "grounding", True), ("terminated", "terminated", True),
           ("rouge_l", "ROUGE-L vs refs", True), ("bleu", "BLEU vs refs", True)]
MODE_NAMES = {"zero_shot": "zero-shot", "system_prompt": "system prompt", "few_shot": "few-shot",
              "fine_tuned": "fine-tuned"}


def _check(test, where: str) -> dict:
    return H.numeric(test, where, ("count_ok", "terminated"))


def report(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    ev = read_json(tp.metrics / "eval.json")
    modes = {"fine_tuned": {"test": _check(ev.get("test") if isinstance(ev, dict) else None,
                                           f"{tp.metrics / 'eval.json'}: test"), "by_source": ev.get("by_source", {})}}
    base = H.optional(tp.metrics / "baselines.json") or {}
    for m, entry in base.items():
        modes[m] = {"test": _check(entry.get("test"), f"{tp.metrics / 'baselines.json'}: {m}.test"),
                    "by_source": entry.get("by_source", {})}
    order = [m for m in ("zero_shot", "system_prompt", "few_shot", "fine_tuned") if m in modes]
    order += [m for m in modes if m not in order]
    log = H.optional(tp.models / "train_log.json")
    rows = (H.optional(tp.metrics / "baseline_predictions.jsonl", read_jsonl) or []) + \
        [{**r, "mode": "fine_tuned"} for r in (H.optional(tp.metrics / "predictions.jsonl", read_jsonl) or [])]

    ft = modes["fine_tuned"]["test"]
    n_req = f"{cfg.data.n_questions} questions ({cfg.data.n_true_false} true/false)"
    verdict = (f"Asked for {n_req} on {ft.get('n')} texts, the fine-tuned {cfg.model.key} returns exactly that many "
               f"in {ft['count_ok']:.0%} of replies, the right number of T/F items in {ft.get('tf_ok', 0):.0%}, "
               f"terminates in {ft['terminated']:.0%}")
    if "zero_shot" in modes:
        z = modes["zero_shot"]["test"]
        verdict += (f"; zero-shot: {z['count_ok']:.0%} / {z.get('tf_ok', 0):.0%} / {z['terminated']:.0%}")
    verdict += "."

    def table_for(source: str | None) -> str:
        body = []
        for m in order:
            t = modes[m]["test"] if source is None else modes[m]["by_source"].get(source)
            if t:
                body.append([MODE_NAMES.get(m, m), t.get("n"), *(t.get(k) for k, _, _ in METRICS)])
        return H.table(["mode", "texts", *(h for _, h, _ in METRICS)], body)

    sources = sorted({s for m in modes.values() for s in m["by_source"]})
    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description, verdict)
    page.add("Question quality per mode", table_for(None),
             *(x for s in sources for x in (H.h3({"squad": "Held-out SQuAD-es paragraphs (with reference questions)",
                                                  "wiki": "Wikipedia biographies (no references)"}.get(s, s)),
                                            table_for(s))),
             H.p("Per reply, then averaged: count exact = exactly N items; T/F count exact = exactly K items phrased "
                 "as true/false; format valid = share of items that are a ¿…? question or a statement ending in "
                 "“¿Verdadero o falso?”; leakage = reply contains answers or options; near-duplicates = share of "
                 f"item pairs with ROUGE-L ≥ {cfg.evaluate.dup_threshold}; grounding = share of an item's content "
                 "words found in the text; terminated = EOS reached without runaway repetition; ROUGE-L/BLEU of the "
                 "items against the paragraph's SQuAD-es questions (held-out paragraphs only). Higher is better "
                 "except for |T/F share − asked|, leakage and near-duplicates.", "muted"),
             anchor="results")
    H.training_section(page, log, tp.models / "train_log.json", **H.SFT_CURVES)
    if rows:
        by = {(r["mode"], r["id"]): r for r in rows}
        ids = list(dict.fromkeys(r["id"] for r in rows if r["mode"] == "fine_tuned"))
        # examples from both sources, biographies first
        ids = sorted(ids, key=lambda i: (not str(i).startswith("wiki:"), ids.index(i)))[:cfg.evaluate.n_examples]
        parts = []
        for i in ids:
            first = next(by[(m, i)] for m in order if (m, i) in by)
            parts.append(H.h3(f"{first['title']} ({first['source']})"))
            parts.append(H.table(["mode", "output", "count / T/F / terminated"],
                                 [[MODE_NAMES.get(m, m), by[(m, i)]["output"] or "(empty)",
                                   f"{by[(m, i)]['n_items']} / {'ok' if by[(m, i)]['tf_ok'] else 'no'} / "
                                   f"{'yes' if by[(m, i)]['terminated'] else 'no'}"] for m in order if (m, i) in by]))
        page.add(f"{len(ids)} example outputs", *parts, anchor="examples")
    stats = H.optional(tp.data / "split_stats.json")
    if stats:
        page.add("Data", H.table(["split", "paragraphs", "examples", "requests (N/K)"],
                                 [[s, stats[s]["paragraphs"], stats[s]["examples"], stats[s]["requests"]]
                                  for s in ("train", "val", "test") if s in stats]),
                 H.p(f"Generation inputs: {stats.get('inputs')}. Splits by article.", "muted"), anchor="data")
    page.add("Config", H.config_block(cfg), anchor="config")
    html_path = tp.reports / "index.html"
    md = "\n".join([f"# Report: {cfg.task.name}", "", verdict, "",
                    H.markdown_table(["mode", *(h for _, h, _ in METRICS)],
                                     [[MODE_NAMES.get(m, m), *(modes[m]["test"].get(k) for k, _, _ in METRICS)]
                                      for m in order]), f"Full report: {html_path}", ""])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
