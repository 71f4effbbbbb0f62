"""report stage of rag: what was chosen on which tuning set, retrieval per reported set, the answers
of every system with 95% intervals, a few answers with their cited chunks; the full grid collapsed."""
from __future__ import annotations

from collections import defaultdict

from omegaconf import DictConfig

from pipelines.core import report as H
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json, read_jsonl, write_text
from pipelines.core.paths import TaskPaths

COLS = ["hit@1", "hit@5", "hit@10", "recall@5", "mrr@10", "ndcg@10"]
ANSWER_COLS = [("cites_any", "cites a chunk"), ("citation_valid", "citations valid"),
               ("cites_relevant", "cites a relevant chunk"), ("refusal_on_unanswerable", "refuses when absent"),
               ("false_refusal", "refuses when present"), ("f1", "token F1"), ("em", "EM"),
               ("spanish", "in Spanish"), ("eos", "EOS"), ("evidence_in_prompt", "evidence in prompt")]
SYSTEM_NAMES = {"raft": "RAFT fine-tuned generator", "prompted": "prompted generator (not fine-tuned)",
                "reader": "extractive reader (extractive_qa model)"}
CHART = [("cites_any", "cites"), ("cites_relevant", "cites relevant"), ("refusal_on_unanswerable", "refuses (neg.)"),
         ("false_refusal", "false refusal"), ("f1", "token F1")]


def _label(row: dict) -> str:
    if row["retriever"] == "bm25":
        return "BM25"
    return f"{row['retriever']} {row['embedder']} {row['similarity']}" + (
        f" ({row['pooling']})" if row["retriever"] == "dense" else f" α={row.get('alpha')}")


def _ci(m: dict, key: str) -> str:
    v, ci = m.get(key), m.get(f"{key}_ci")
    if v is None:
        return "-"
    if ci and ci[0] is not None:
        return f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"{v:.2f}"


def _hit_bars(grid: list[dict], sets: list[str]) -> str:
    """hit@5 of every embedder x similarity (dense, max pooling) and BM25 per collection, one panel per set."""
    def draw(fig):
        axes = fig.subplots(1, len(sets), squeeze=False)[0]
        for ax, qs in zip(axes, sets):
            rows = [r for r in grid if r["question_set"] == qs and r.get("n")
                    and (r["retriever"] == "bm25" or (r["retriever"] == "dense" and r["pooling"] == "max"))]
            rows.sort(key=lambda r: (r["collection"], r["embedder"], r["similarity"]))
            labels = [f"{r['collection']} · {'BM25' if r['retriever'] == 'bm25' else r['embedder'] + ' ' + r['similarity'][:3]}"
                      for r in rows]
            ax.barh(range(len(rows)), [r["hit@5"] for r in rows], color="#3b6ea8")
            ax.set_yticks(range(len(rows)), labels, fontsize=6)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_xlabel("hit@5")
            ax.set_title(qs, fontsize=9)
    return H.img(H.figure_uri(draw, (4.2 * len(sets), 0.25 * max(8, len(grid) / max(1, 3 * len(sets))) + 1.2)),
                 "hit@5 per embedder x similarity x collection")


def _alpha_plot(curve: list[dict], metric: str, chosen: dict) -> str:
    def draw(fig):
        ax = fig.add_subplot()
        by = defaultdict(list)
        for r in curve:
            by[(r["embedder"], r["similarity"])].append((r["alpha"], r[metric]))
        for (emb, sim), pts in sorted(by.items()):
            pts.sort()
            ax.plot(*zip(*pts), marker="o", label=f"{emb} {sim}")
        if chosen.get("alpha") is not None:
            ax.axvline(chosen["alpha"], color="#c0504d", ls="--", lw=1)
        ax.set_xlabel("α (weight of the dense score; 0 = BM25 only)")
        ax.set_ylabel(f"{metric} (tuning set)")
        ax.legend(fontsize=6.5)
    return H.img(H.figure_uri(draw, (6.5, 3.2)), "hybrid alpha curve on the tuning set")


def _answer_chart(answers: dict, sets: list[str]) -> str:
    """Key answer metrics per system with their 95% intervals, one panel per question set pair."""
    def draw(fig):
        axes = fig.subplots(1, len(sets), squeeze=False)[0]
        systems = list(answers)
        w = 0.8 / max(1, len(systems))
        for ax, (ans_set, neg_set) in zip(axes, sets):
            for j, sy in enumerate(systems):
                vals, lo, hi = [], [], []
                for key, _ in CHART:
                    m = answers[sy].get(neg_set if key == "refusal_on_unanswerable" else ans_set, {})
                    v, ci = m.get(key), m.get(f"{key}_ci") or [None, None]
                    vals.append(v or 0.0)
                    lo.append((v - ci[0]) if v is not None and ci[0] is not None else 0)
                    hi.append((ci[1] - v) if v is not None and ci[1] is not None else 0)
                xs = [i + j * w for i in range(len(CHART))]
                ax.bar(xs, vals, w, yerr=[lo, hi], capsize=2, label=sy)
            ax.set_xticks([i + w * (len(systems) - 1) / 2 for i in range(len(CHART))], [n for _, n in CHART],
                          fontsize=7, rotation=20)
            ax.set_ylim(0, 1)
            ax.set_title(f"{ans_set} (+ {neg_set})", fontsize=9)
            ax.legend(fontsize=7)
    return H.img(H.figure_uri(draw, (6.0 * len(sets), 3.2)), "answer metrics per system with 95% intervals")


def report(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    ev = read_json(tp.metrics / "eval.json")
    grid = read_json(tp.metrics / "retrieval.json")
    if not isinstance(ev, dict) or "retrieval" not in ev or "choice" not in ev or not isinstance(grid, list):
        raise PipelineError(f"{tp.metrics}: eval.json/retrieval.json are not rag metrics files (re-run rag_evaluate)")
    choice_full = read_json(tp.data / "choice.json")
    ch = ev["choice"]
    metric = ch["metric"]
    lead = [f"retriever chosen on {ch['tune_set']} ({ch['questions']} questions of training articles): "
            f"{ch['retriever']} {ch['embedder']} {ch['similarity']}"
            + (f" α={ch['alpha']}" if ch.get("alpha") is not None else "")
            + f", top-{ch['top_k']}"]
    for qs, m in ev["retrieval"].items():
        if m.get("n"):
            lead.append(f"{qs}: hit@5 {m['hit@5']:.2f}")
    raft = ev.get("answers", {}).get("raft", {})
    if "squad_test" in raft:
        m = raft["squad_test"]
        lead.append(f"RAFT answers on SQuAD-es test: cites relevant {m.get('cites_relevant') or 0:.2f}, "
                    f"F1 {m.get('f1') or 0:.2f}")
    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description, "; ".join(lead))

    # ---- what was chosen, on what
    cands = choice_full.get("candidates", [])[:12]
    n_chunks = len(read_jsonl(tp.data / "chunks" / f"{ch['collection']}.jsonl")) if ch.get("collection") else 0
    page.add("Choice on the tuning set",
             H.p(f"Tuned on {ch['tune_set']} only (SQuAD-es questions of extractive_qa's training articles "
                 f"against all {n_chunks} paragraphs), by "
                 f"{metric} (ties: MRR@10). Chosen: retriever, embedder, similarity, pooling, hybrid α "
                 f"and top-k ({ch['top_k_rule']}). Not tuned: the bash chunking ({cfg.run.collections.get('bash')}, "
                 f"fixed by config: there is no tuning set of bash questions). The reader's refusal threshold is "
                 f"chosen on the tuning sets too; the RAFT generator trains on training-article questions. "
                 f"The bash questions, bash negatives and SQuAD-es test articles are reported once, below."),
             H.table(["variant", "questions", *COLS], [[c["variant"], c["n"], *(c.get(k) for k in COLS)] for c in cands]),
             _alpha_plot(choice_full.get("alpha_curve", []), metric, ch) if choice_full.get("alpha_curve") else "",
             anchor="choice")

    # ---- retrieval on the reported sets
    by_set: dict[str, list[dict]] = defaultdict(list)
    for row in grid:
        if row.get("n") and row.get("role", "test") == "test":
            by_set[row["question_set"]].append(row)
    reported = [qs for qs in ev["retrieval"] if ev["retrieval"][qs].get("n")]
    head_rows = [[qs, ev["variant"][qs], ev["retrieval"][qs]["n"], *(ev["retrieval"][qs].get(c) for c in COLS)]
                 for qs in reported]
    parts = [H.table(["question set", "chosen variant", "questions", *COLS], head_rows),
             _hit_bars(grid, [qs for qs in reported]) if reported else ""]
    for qs, rows in by_set.items():
        rows = sorted(rows, key=lambda r: (-r.get("hit@5", 0), -r.get("mrr@10", 0), r["variant"]))
        parts.append(H.details(f"All {len(rows)} variants on {qs}", H.table(
            ["collection", "retriever", "embedder", "similarity", "pooling", "hybrid α", "questions", *COLS],
            [[r["collection"], r["retriever"], r["embedder"], r["similarity"], r["pooling"],
              "-" if r.get("alpha") is None else r["alpha"], r["n"], *(r.get(c) for c in COLS)] for r in rows])))
    parts.append(H.p("A chunk is relevant when it contains one of the question's evidence strings (after whitespace "
                     "normalisation); SQuAD: the question's own paragraph. These variants are shown for comparison; "
                     "reading the best of them off this table would be choosing on the test set.", "muted"))
    page.add("Retrieval on the reported sets", *parts, anchor="retrieval")

    # ---- answers
    answers = ev.get("answers", {})
    if answers:
        rows = []
        for sy, sets in answers.items():
            for qs, m in sets.items():
                rows.append([SYSTEM_NAMES.get(sy, sy), qs, m["n"], *(_ci(m, k) for k, _ in ANSWER_COLS)])
        pairs = [(a, b) for a, b in (("squad_test", "squad_test_negatives"), ("bash", "bash_negatives"))
                 if any(a in s for s in answers.values())]
        parts = [H.table(["system", "question set", "answers", *(n for _, n in ANSWER_COLS)], rows),
                 _answer_chart(answers, pairs) if pairs else "",
                 H.p("Intervals: 95% bootstrap over the questions. Token F1 / EM against the reference (citations "
                     "stripped); they cannot see a correct answer phrased differently, nor an answer copied from the "
                     "right chunk but cited wrongly (cites relevant does). A question set's answers are a seeded "
                     "sample (generate_limit) where generation is the CPU cost.", "muted")]
        chunk_of = {}
        n = int(cfg.evaluate.get("n_examples", 5))
        for qs in ("squad_test", "bash", "bash_negatives", "squad_test_negatives"):
            f = tp.data / "answers" / "raft" / f"{qs}.jsonl"
            if not f.exists():
                continue
            ex = []
            for a in read_jsonl(f)[:n]:
                col = a["variant"].split("|", 1)[0]
                if col not in chunk_of:
                    chunk_of[col] = read_jsonl(tp.data / "chunks" / f"{col}.jsonl")
                given = "<br>".join(f"[{i}] {H.esc(chunk_of[col][cid]['section'])}: {H.esc(chunk_of[col][cid]['text'][:140])}…"
                                    for i, cid in enumerate(a["chunk_ids"], 1))
                ex.append([a["question"], a["answer"], a["reference"] or "(unanswerable)", H.Raw(given)])
            parts.append(H.h3(f"RAFT answers: {qs}"))
            parts.append(H.table(["question", "answer", "reference", "chunks given"], ex))
        page.add("Answers", *parts, anchor="answers")
    log = H.optional(tp.models / "train_log.json", read_json)
    H.training_section(page, log, tp.models / "train_log.json", **H.SFT_CURVES)
    stats = tp.data / "clean" / "stats.json"
    if stats.exists():
        s = read_json(stats)
        page.add("Data", H.table(["corpus", "documents", "paragraphs", "words"],
                                 [[k, v["documents"], v["paragraphs"], v["words"]] for k, v in s["corpora"].items()]),
                 H.table(["question set", "role", "questions", "answerable"],
                         [[k, cfg.data.question_sets[k].role if k in cfg.data.question_sets else "?", v["questions"],
                           v["answerable"]] for k, v in s["question_sets"].items()]), anchor="data")
    page.add("Config", H.config_block(cfg), anchor="config")
    html_path = tp.reports / "index.html"
    md_rows = [[qs, ev["variant"][qs], ev["retrieval"][qs]["hit@5"], ev["retrieval"][qs]["mrr@10"]] for qs in reported]
    md_ans = [[sy, qs, *(_ci(m, k) for k in ("cites_any", "cites_relevant", "refusal_on_unanswerable", "false_refusal", "f1"))]
              for sy, sets in answers.items() for qs, m in sets.items()]
    md = "\n".join([f"# Report: {cfg.task.name}", "", page.lead, "",
                    H.markdown_table(["set", "variant", "hit@5", "MRR@10"], md_rows), "",
                    H.markdown_table(["system", "set", "cites", "cites relevant", "refuses (neg.)", "false refusal", "F1"],
                                     md_ans),
                    f"Full report: {html_path}", ""])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
