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
# quality.json (judge stage): (key, header), every value a mean over inputs with its 95% interval
QUALITY = [("usable", "usable items"), ("items_all_valid", "all words valid"), ("answerable", "short answerable"),
           ("statements_supported", "statements supported"), ("statements_true", "… as true"),
           ("statements_false_swap", "… as one-swap false"), ("distinct_openings", "distinct openings"),
           ("count_ok", "count exact"), ("tf_ok", "T/F count exact"), ("near_duplicate_rate", "near-duplicates"),
           ("terminated", "terminated")]
MODE_NAMES = {"zero_shot": "zero-shot", "system_prompt": "system prompt", "few_shot": "few-shot",
              "fine_tuned": "fine-tuned"}


def _ci(row: dict, key: str) -> str:
    v, ci = row.get(key), row.get(f"{key}_ci")
    if v is None:
        return "–"
    return f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else f"{v:.2f}"


def quality_section(page, q: dict, order: list[str], gens: list[dict]) -> str:
    """The judge's table (every mode + the reference questions), its threshold and the hand-rating
    agreement; returns the verdict sentence."""
    modes = q.get("modes", {})
    rows = [[MODE_NAMES.get(m, m), modes[m].get("n"), *(_ci(modes[m], k) for k, _ in QUALITY)]
            for m in order if m in modes]
    ref = q.get("reference", {})
    rows.append(["SQuAD-es reference questions", ref.get("n"), *(_ci(ref, k) for k, _ in QUALITY)])
    thr = q.get("answerability_threshold", {})
    cal = thr.get("calibration", {})
    hr = q.get("hand_ratings", {})
    agree = (f"The automatic verdict (usable = all words valid and answerable/supported) agrees with the committed "
             f"hand ratings on {hr['agreement']:.0%} [{hr['agreement_ci'][0]:.0%}, {hr['agreement_ci'][1]:.0%}] of "
             f"{hr['matched']} rated items (hand: {hr['hand_usable']:.0%} usable, automatic: {hr['auto_usable']:.0%}; "
             f"{hr['false_accept']} accepted that the reader rejected, {hr['false_reject']} the reverse)."
             if hr.get("agreement") is not None else
             f"No hand rating matches the current generations ({hr.get('rated', 0)} rated items).")
    tr = q.get("training_true_false", {})
    fb = (f"Training targets: {tr.get('statements')} true/false statements, {_pct(tr.get('fallback_share'))} of them "
          f"the quoted fallback (all words valid: {_pct(tr.get('fallback_all_valid'))}; natural statements: "
          f"{_pct(tr.get('natural_all_valid'))}).")
    page.add("What a teacher would keep", H.table(["mode", "texts", *(h for _, h in QUALITY)], rows),
             H.p("Means over the held-out inputs with bootstrap 95% intervals. All words valid: every word of the "
                 "item is known to Hunspell (hunspell-es, inflections included) or occurs in the source text "
                 "(names). Short answerable: extractive_qa's fine-tuned model answers the question from the text "
                 f"with a score ≥ {thr.get('value', float('nan')):.3f} ({thr.get('rank_by')}), the threshold with "
                 f"the best accuracy ({_pct(cal.get('accuracy'))}) on {cal.get('n')} validation-paragraph pairs "
                 "(each question asked of its own paragraph vs of another article's). Statements supported: one "
                 "sentence of the text holds every content word (true) or all but one swapped run of them (false). "
                 "Distinct openings: share of distinct first three words in a list. What these cannot see: whether "
                 "a question is worth asking, whether a false statement is plausible, grammar beyond single words.",
                 "muted"), H.p(agree), H.p(fb, "muted"), anchor="quality")
    if gens:
        flagged = [(g, it) for g in gens if g["mode"] == "fine_tuned" for it in g["items"] if not it["usable"]][:12]
        if flagged:
            page.add("Fine-tuned items the checks reject (first 12)",
                     H.table(["text", "input", "why"],
                             [[it["text"], g["title"], _why(it)] for g, it in flagged]), anchor="rejected")
    ft = modes.get("fine_tuned", {})
    return (f"Fine-tuned: {_ci(ft, 'usable')} of items usable (all words valid {_ci(ft, 'items_all_valid')}, "
            f"reference questions {_ci(ref, 'items_all_valid')}; short answerable {_ci(ft, 'answerable')}; "
            f"statements supported {_ci(ft, 'statements_supported')}). ")


def compare_section(page, q: dict, others: dict[str, str], order: list[str]) -> None:
    """This run beside other generators' judged runs (evaluate.compare), mode by mode."""
    from pipelines.core.paths import project_relative

    keys = [k for k in QUALITY if k[0] in ("usable", "items_all_valid", "answerable", "statements_supported",
                                           "count_ok", "tf_ok", "near_duplicate_rate", "terminated")]
    runs = {q.get("model", "this run"): q}
    notes = []
    for name, path in others.items():
        other = H.optional(project_relative(path))
        if other is None:
            notes.append(f"{name}: {path} not found")
            continue
        if other.get("input_ids") != q.get("input_ids"):
            notes.append(f"{name}: judged on other inputs than this run ({path})")
        runs[name] = other
    rows = [[name, MODE_NAMES.get(m, m), *(_ci(r["modes"][m], k) for k, _ in keys)]
            for m in order for name, r in runs.items() if m in r.get("modes", {})]
    ref = q.get("reference", {})
    rows.append(["SQuAD-es reference questions", "", *(_ci(ref, k) for k, _ in keys)])
    page.add("Generators side by side", H.table(["generator", "mode", *(h for _, h in keys)], rows),
             H.p("Same held-out inputs, same checks and thresholds; "
                 + "; ".join([f"{n}: {p}" for n, p in others.items()] + notes) + ".", "muted"), anchor="generators")


def _why(it: dict) -> str:
    why = []
    if not it["all_valid"]:
        why.append("unknown words: " + ", ".join(it["unknown_words"]))
    if it["kind"] == "short" and not it.get("answerable"):
        why.append("not answerable from the text")
    if it["kind"] == "true_false" and it.get("support") == "unsupported":
        why.append("no sentence supports it (missing: " + ", ".join(it.get("missing") or []) + ")")
    return "; ".join(why)


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0%}"


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
    quality = H.optional(tp.metrics / "quality.json")
    gens = H.optional(tp.metrics / "generations.jsonl", read_jsonl) or []
    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description, "")
    if quality:
        verdict = quality_section(page, quality, order, gens) + verdict
        if cfg.report.compare:
            compare_section(page, quality, dict(cfg.report.compare), order)
    page.lead = verdict
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
    md = "\n".join([f"# Report: {cfg.task.name}", "", verdict, "", *(
        [H.markdown_table(["mode", *(h for _, h in QUALITY)],
                          [[MODE_NAMES.get(m, m), *(_ci(quality["modes"][m], k) for k, _ in QUALITY)]
                           for m in order if m in quality.get("modes", {})]), ""] if quality else []),
                    H.markdown_table(["mode", *(h for _, h, _ in METRICS)],
                                     [[MODE_NAMES.get(m, m), *(modes[m]["test"].get(k) for k, _, _ in METRICS)]
                                      for m in order]), f"Full report: {html_path}", ""])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
