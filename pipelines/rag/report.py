"""report stage of rag: every retrieval variant compared, the run's answers with their cited chunks."""
from __future__ import annotations

from collections import defaultdict

from omegaconf import DictConfig

from pipelines.core import report as H
from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json, read_jsonl, write_text
from pipelines.core.paths import TaskPaths

COLS = ["hit@1", "hit@5", "hit@10", "recall@5", "mrr@10", "ndcg@10"]
ANSWER_COLS = [("evidence_in_prompt", "evidence in prompt"), ("citation_valid", "citations valid"),
               ("cites_any", "cites a chunk"),
               ("cites_relevant", "cites a relevant chunk"), ("refusal_on_unanswerable", "refuses when absent"),
               ("false_refusal", "refuses when present"), ("f1", "token F1"), ("rouge_l", "ROUGE-L"),
               ("spanish", "in Spanish"), ("eos", "EOS")]


def _label(row: dict) -> str:
    if row["retriever"] == "bm25":
        return "BM25"
    return f"{row['retriever']} {row['embedder']} {row['similarity']}" + (
        f" ({row['pooling']})" if row["retriever"] == "dense" else f" α={row.get('alpha')}")


def _hit_plot(rows: list[dict], ks: list[int], title: str) -> str:
    def draw(fig):
        ax = fig.add_subplot()
        for r in rows:
            ys = [r.get(f"hit@{k}") for k in ks]
            ax.plot(ks, ys, marker="o", label=f"{r['collection']} · {_label(r)}")
        ax.set_xlabel("top-k")
        ax.set_ylabel("hit@k")
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.legend(fontsize=6.5, loc="lower right")
    return H.img(H.figure_uri(draw, (7.0, 3.6)), title)


def report(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    ev = read_json(tp.metrics / "eval.json")
    grid = read_json(tp.metrics / "retrieval.json")
    if not isinstance(ev, dict) or "retrieval" not in ev or not isinstance(grid, list):
        raise PipelineError(f"{tp.metrics}: eval.json/retrieval.json are not rag metrics files")
    ks = sorted(set(cfg.retrieve.ks))
    by_set: dict[str, list[dict]] = defaultdict(list)
    for row in grid:
        if row.get("n"):
            by_set[row["question_set"]].append(row)
    lead = []
    for qs, m in ev["retrieval"].items():
        if m.get("n"):
            lead.append(f"{qs}: hit@5 {m['hit@5']:.2f}, MRR@10 {m['mrr@10']:.2f}")
    best = ev.get("best", {})
    for key in sorted(best):
        if key.endswith("/hybrid"):
            lead.append(f"best hybrid on {key.split('/')[0]}: hit@5 {best[key]['hit@5']:.2f}")
    page = H.Page(f"Report: {cfg.task.name}", cfg.task.description,
                  f"Run variant {ev['variant']} — " + "; ".join(lead))
    for qs, rows in by_set.items():
        rows = sorted(rows, key=lambda r: (-r.get("hit@5", 0), -r.get("mrr@10", 0), r["variant"]))
        table = H.table(["collection", "retriever", "embedder", "similarity", "pooling", "hybrid α", "questions", *COLS],
                        [[r["collection"], r["retriever"], r["embedder"], r["similarity"], r["pooling"],
                          "-" if r.get("alpha") is None else r["alpha"], r["n"], *(r.get(c) for c in COLS)]
                         for r in rows])
        # the plot: BM25 and the best dense and hybrid per collection (the full grid is the table)
        pick: dict[tuple, dict] = {}
        for r in rows:
            key = (r["collection"], r["retriever"])
            pick.setdefault(key, r)
        page.add(f"Retrieval: {qs}", table, _hit_plot(list(pick.values()), ks, f"{qs}: hit@k, best per collection × retriever"),
                 H.p("A chunk is relevant when it contains one of the question's evidence strings (after whitespace "
                     "normalisation); SQuAD: the question's own paragraph. recall@k counts evidence strings found. "
                     "Pooling: how a chunk's token windows become one score — max (best window), mean (mean "
                     "vector), first (the first window only: plain truncation).", "muted"),
                 anchor=f"retrieval-{H.slug(qs)}")
    if ev.get("answers"):
        rows = [[qs, m["n"], *(m.get(k) for k, _ in ANSWER_COLS)] for qs, m in ev["answers"].items()]
        parts = [H.table(["question set", "answers", *(n for _, n in ANSWER_COLS)], rows),
                 H.p(f"Generator {ev.get('generator')} answers from the top {cfg.run.top_k} chunks of {ev['variant']}.",
                     "muted")]
        chunks = {c["id"]: c for c in read_jsonl(tp.data / "chunks" / f"{cfg.run.collection}.jsonl")}
        n = int(cfg.evaluate.get("n_examples", 5))
        for qs in ev["answers"]:
            f = tp.data / "answers" / f"{qs}.jsonl"
            if not f.exists():
                continue
            ex = []
            for a in read_jsonl(f)[:n]:
                cited = "<br>".join(f"[{i}] #{cid} {H.esc(chunks[cid]['section'])}: {H.esc(chunks[cid]['text'][:160])}…"
                                    for i, cid in enumerate(a["chunk_ids"], 1))
                ex.append([a["question"], a["answer"], a["reference"], H.Raw(cited)])
            parts.append(H.h3(f"Examples: {qs}"))
            parts.append(H.table(["question", "answer", "reference", "chunks given (rank, id, section)"], ex))
        page.add("Answers", *parts, anchor="answers")
    stats = tp.data / "clean" / "stats.json"
    if stats.exists():
        s = read_json(stats)
        page.add("Data", H.table(["corpus", "documents", "paragraphs", "words"],
                                 [[k, v["documents"], v["paragraphs"], v["words"]] for k, v in s["corpora"].items()]),
                 H.table(["question set", "questions", "answerable"],
                         [[k, v["questions"], v["answerable"]] for k, v in s["question_sets"].items()]), anchor="data")
    page.add("Config", H.config_block(cfg), anchor="config")
    html_path = tp.reports / "index.html"
    md_rows = []
    for key in sorted(best):
        md_rows.append([key, best[key]["variant"], best[key]["hit@5"], best[key]["mrr@10"]])
    md = "\n".join([f"# Report: {cfg.task.name}", "", page.lead, "",
                    H.markdown_table(["set/retriever", "best variant", "hit@5", "MRR@10"], md_rows),
                    f"Full report: {html_path}", ""])
    write_text(html_path, page.render())
    write_text(tp.reports / "summary.md", md)
    print(md, end="")
