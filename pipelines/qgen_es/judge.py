"""judge stage of qgen_es: read every generated item the way a teacher would, for every mode.

The evaluate and baselines stages generate (and score the list's format); this stage reads
their replies item by item:
* words: share of an item's words Hunspell (hunspell-es) knows or the source text holds;
* answerable: a short question is answered by extractive_qa's fine-tuned model from the text
  with a score at or above a threshold chosen on validation paragraphs (their own questions vs
  questions of another article), never on the inputs reported here;
* supported: a true/false statement is supported by one sentence (true) or differs from it in
  exactly one swapped answer (false, checks.support);
* diversity: near-duplicates (from the generate stages) and distinct first-three-word openings;
* usable: all words valid and (answerable | supported) - calibrated against hand ratings.
The same checks run on the SQuAD-es reference questions of the inputs: the word-validity goal is
relative to them. Every metric is a mean over inputs with a bootstrap 95% interval.
Outputs: metrics/quality.json (the task's headline) and metrics/generations.jsonl (every reply,
item by item, with its verdicts: readable without running anything).
"""
from __future__ import annotations

import random
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from pipelines.core.errors import PipelineError
from pipelines.core.intervals import paired_bootstrap, summarise
from pipelines.core.io import read_json, read_jsonl, write_json, write_jsonl
from pipelines.core.paths import TaskPaths, project_relative

from . import checks
from .quality import _well_formed, is_true_false, parse_questions

# the quoted fallback of truefalse.to_statement: grammatical, but not a statement a teacher writes
FALLBACK = re.compile(r'la respuesta a "[^"]*" es', re.I)
# the list-level metrics of the generate stages, carried into the summary (higher is better unless noted)
CARRIED = ("count_ok", "tf_ok", "terminated", "format_valid", "near_duplicate_rate", "leakage")
ITEM_METRICS = ("items_all_valid", "word_validity", "answerable", "statements_supported", "statements_true",
                "statements_false_swap", "tf_fallback", "distinct_openings", "usable")


# ------------------------------------------------------------------------------- answerability
def load_reader(cfg: DictConfig, tp: TaskPaths):
    from pipelines.core.finetuned import load_finetuned

    ac = cfg.judge.answerability
    final = Path(ac.final)
    if not final.is_absolute() and not (Path(cfg.paths.root) / final).exists():
        final = project_relative(ac.final)  # a Hydra run dir reuses the project's model
    elif not final.is_absolute():
        final = Path(cfg.paths.root) / final
    if not (final / "tunedag.json").exists():
        raise PipelineError(f"{final}: no fine-tuned extractive_qa model (judge.answerability.final; "
                            f"run `dvc repro extractive_qa_finetune`)")
    qa_cfg = OmegaConf.create({"model": OmegaConf.to_container(ac.model), "paths": {"base_models": str(tp.base_models)}})
    return load_finetuned(qa_cfg, "AutoModelForQuestionAnswering", final)


def qa_scores(cfg: DictConfig, model, tok, pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """The reader's prediction for each (question, context): {"text", "score", ...} (rag.reader.read)."""
    from pipelines.rag.reader import read  # the extractive_qa model over given contexts, one home for it

    ac = cfg.judge.answerability
    return read(model, tok, [q for q, _ in pairs], [[c] for _, c in pairs], max_length=ac.max_length,
                doc_stride=ac.doc_stride, max_answer_length=ac.max_answer_length, batch_size=ac.batch_size,
                rank_by=ac.rank_by)


def calibration_pairs(paragraphs: Sequence[dict], n: int, seed: int) -> tuple[list[tuple[str, str]], list[bool]]:
    """n questions asked of their own paragraph (True) and n asked of a paragraph of another
    article (False), seeded. `paragraphs`: {title, context, qas: [{question}]}."""
    rng = random.Random(seed)
    own = [(qa["question"], p["context"], p["title"]) for p in paragraphs for qa in p["qas"] if qa.get("answer")]
    titles = sorted({p["title"] for p in paragraphs})
    if len(own) < 1 or len(titles) < 2:
        raise PipelineError(f"judge: the answerability threshold needs questions of >= 2 validation articles "
                            f"(got {len(own)} questions, {len(titles)} articles)")
    pos = rng.sample(own, min(n, len(own)))
    by_title = defaultdict(list)
    for p in paragraphs:
        by_title[p["title"]].append(p["context"])
    neg = []
    for q, _, title in rng.sample(own, min(n, len(own))):
        other = rng.choice([t for t in titles if t != title])
        neg.append((q, rng.choice(by_title[other])))
    return [(q, c) for q, c, _ in pos] + neg, [True] * len(pos) + [False] * len(neg)


def choose_threshold(scores, answerable):
    from pipelines.rag.reader import choose_threshold as choose

    return choose(scores, answerable)


# ------------------------------------------------------------------------------- per item / reply
def judge_items(items: Sequence[str], context: str, title: str, speller: checks.Speller, answer_ok: dict,
                max_swap_words: int) -> list[dict]:
    """Each item's verdicts. answer_ok: short question text -> (answerable, score, span)."""
    out = []
    for text in items:
        tf = is_true_false(text)
        v = speller.validity(text, context)
        row = {"text": text, "kind": "true_false" if tf else "short", "well_formed": _well_formed(text),
               "unknown_words": v["unknown"], "word_share": v["share"], "all_valid": v["all_valid"]}
        if tf:
            s = checks.support(checks.statement_body(text), context, max_swap_words, topic=title)
            row.update(support=s["verdict"], support_sentence=s["sentence"], missing=s["missing"],
                       fallback=bool(FALLBACK.search(text)))
            row["usable"] = v["all_valid"] and s["verdict"] != "unsupported"
        else:
            ok, score, span = answer_ok.get(text, (False, None, ""))
            row.update(answerable=ok, qa_score=score, qa_span=span)
            row["usable"] = v["all_valid"] and ok
        out.append(row)
    return out


def _share(rows: Sequence[dict], pred) -> float | None:
    return sum(bool(pred(r)) for r in rows) / len(rows) if rows else None


def reply_metrics(items: Sequence[dict]) -> dict:
    """One reply's item metrics (None where a metric has no item to read)."""
    shorts = [i for i in items if i["kind"] == "short"]
    tfs = [i for i in items if i["kind"] == "true_false"]
    n_words = [(i["word_share"], i) for i in items if i["word_share"] is not None]
    return {
        "items_all_valid": _share(items, lambda i: i["all_valid"]),
        "word_validity": sum(s for s, _ in n_words) / len(n_words) if n_words else None,
        "answerable": _share(shorts, lambda i: i["answerable"]),
        "statements_supported": _share(tfs, lambda i: i["support"] != "unsupported"),
        "statements_true": _share(tfs, lambda i: i["support"] == "true"),
        "statements_false_swap": _share(tfs, lambda i: i["support"] == "false_swap"),
        "tf_fallback": _share(tfs, lambda i: i["fallback"]),
        "distinct_openings": checks.distinct_openings([i["text"] for i in items]),
        "usable": _share(items, lambda i: i["usable"]),
    }


def summary(rows: Sequence[dict], keys: Sequence[str], n_boot: int, seed: int) -> dict:
    """Per key: the mean over rows (inputs) and its bootstrap 95% interval as key_ci; n = rows.
    An input without the items a key reads (no true/false statement, say) does not count for it."""
    out: dict = {"n": len(rows)}
    for k in keys:
        s = summarise([None if r.get(k) is None else float(r[k]) for r in rows], n_boot=n_boot, seed=seed)
        out[k] = s["mean"]  # None when no input has an item it reads (say, no short question at all)
        out[f"{k}_ci"] = [s["lo"], s["hi"]]
    return out


# ------------------------------------------------------------------------------- hand ratings
def agreement(ratings: Sequence[dict], generations: Sequence[dict]) -> dict:
    """How often the automatic `usable` verdict equals the hand rating, on the rated items whose
    text is still the generated one (mode, input id, item number and text all match)."""
    current = {(g["mode"], g["id"], j, it["text"]): it["usable"]
               for g in generations for j, it in enumerate(g["items"], 1)}
    matched = []
    for r in ratings:
        key = (r.get("mode"), r.get("id"), r.get("item"), r.get("text"))
        if key in current and isinstance(r.get("usable"), bool):
            matched.append((r["usable"], current[key], r["mode"]))
    if not matched:
        return {"rated": len(ratings), "matched": 0, "agreement": None}
    agree = [h == a for h, a, _ in matched]
    s = summarise(agree)
    return {"rated": len(ratings), "matched": len(matched), "agreement": s["mean"], "agreement_ci": [s["lo"], s["hi"]],
            "hand_usable": sum(h for h, _, _ in matched) / len(matched),
            "auto_usable": sum(a for _, a, _ in matched) / len(matched),
            "false_accept": sum((not h) and a for h, a, _ in matched),  # auto says usable, the reader did not
            "false_reject": sum(h and not a for h, a, _ in matched)}


def read_ratings(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = read_jsonl(path)
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not isinstance(r.get("usable"), bool):
            raise PipelineError(f"{path}: line {i}: expected an object with a boolean 'usable'")
    return rows


# ------------------------------------------------------------------------------- stage
def _val_paragraphs(tp: TaskPaths) -> list[dict]:
    stats = read_json(tp.data / "split_stats.json")
    val = set(stats.get("val", {}).get("articles", []))
    return [p for p in read_jsonl(tp.data / "paragraphs.jsonl") if p["title"] in val]


def _reply_rows(tp: TaskPaths) -> list[dict]:
    rows = read_jsonl(tp.metrics / "predictions.jsonl")
    base = tp.metrics / "baseline_predictions.jsonl"
    if base.exists():
        rows = read_jsonl(base) + rows
    return rows


def judge(cfg: DictConfig, run=None) -> None:
    tp, jc, seed = TaskPaths(cfg), cfg.judge, cfg.runtime.seed
    # the cheap inputs first: a bad dictionary or ratings path fails before any model loads
    speller = checks.Speller(checks.load_dictionary(jc.spelling.dictionary))
    ratings_path = Path(jc.ratings)
    if not ratings_path.is_absolute():
        ratings_path = project_relative(jc.ratings)
    ratings = read_ratings(ratings_path)
    inputs = {r["id"]: r for r in read_jsonl(tp.data / "split" / "inputs.jsonl")}
    replies = _reply_rows(tp)
    unknown = sorted({r["id"] for r in replies} - set(inputs))
    if unknown:
        raise PipelineError(f"{tp.metrics / 'predictions.jsonl'}: replies for inputs not in split/inputs.jsonl "
                            f"({unknown[0]}); re-run the generate stages")
    parsed = [(r, parse_questions(r["output"])) for r in replies]
    refs = [(inp, [q for q in (inp.get("reference_questions") or []) if q.strip()]) for inp in inputs.values()]

    # one reader pass: calibration pairs, every short item, every reference question
    model, tok = load_reader(cfg, tp)
    cal_pairs, cal_labels = calibration_pairs(_val_paragraphs(tp), jc.answerability.calibration_questions, seed)
    asked = sorted({(t, inputs[r["id"]]["context"]) for r, items in parsed for t in items if not is_true_false(t)}
                   | {(q, inp["context"]) for inp, qs in refs for q in qs})
    preds = qa_scores(cfg, model, tok, cal_pairs + asked)
    cal_preds, ask_preds = preds[:len(cal_pairs)], preds[len(cal_pairs):]
    threshold, how = choose_threshold([p["score"] for p in cal_preds], cal_labels)
    how = {k: v for k, v in how.items() if k not in ("grid", "accuracies")}
    print(f"[qgen_es:judge] answerability threshold {threshold:.3f} ({jc.answerability.rank_by}) chosen on "
          f"{len(cal_pairs)} validation pairs: accuracy {how['accuracy']:.3f}", file=sys.stderr)
    answers = {pair: (p["score"] is not None and p["score"] >= threshold and bool(p["text"].strip()), p["score"],
                      p["text"]) for pair, p in zip(asked, ask_preds)}

    generations, per_mode = [], defaultdict(list)
    for r, items in parsed:
        inp = inputs[r["id"]]
        ok = {q: v for (q, c), v in answers.items() if c == inp["context"]}
        judged = judge_items(items, inp["context"], inp["title"], speller, ok, jc.max_swap_words)
        m = {**{k: r.get(k) for k in CARRIED}, **reply_metrics(judged)}
        per_mode[r["mode"]].append({**m, "source": r["source"], "id": r["id"]})
        generations.append({"mode": r["mode"], "id": r["id"], "source": r["source"], "title": r["title"],
                            "n": r["n"], "k": r["k"], "output": r["output"], "eos": r["eos"], "metrics": m,
                            "items": judged})
    ref_rows = []
    for inp, qs in refs:
        if qs:
            ok = {q: v for (q, c), v in answers.items() if c == inp["context"]}
            judged = judge_items(qs, inp["context"], inp["title"], speller, ok, jc.max_swap_words)
            ref_rows.append({**reply_metrics(judged), "source": inp["source"], "id": inp["id"]})

    keys = (*CARRIED, *ITEM_METRICS)
    modes = {}
    for mode, rows in per_mode.items():
        modes[mode] = {"all": summary(rows, keys, jc.n_boot, seed),
                       "by_source": {s: summary([x for x in rows if x["source"] == s], keys, jc.n_boot, seed)
                                     for s in sorted({x["source"] for x in rows})}}
    reference = summary(ref_rows, ITEM_METRICS, jc.n_boot, seed)
    # fine-tuned minus each prompting mode, paired over inputs
    paired = {}
    if "fine_tuned" in per_mode:
        ft = {x["id"]: x for x in per_mode["fine_tuned"]}
        for mode, rows in per_mode.items():
            if mode == "fine_tuned":
                continue
            other = {x["id"]: x for x in rows}
            ids = sorted(set(ft) & set(other))
            paired[mode] = {}
            for k in ("usable", "items_all_valid", "answerable", "statements_supported", "count_ok"):
                d, lo, hi, p = paired_bootstrap([_num(ft[i].get(k)) for i in ids], [_num(other[i].get(k)) for i in ids],
                                                n_boot=jc.n_boot, seed=seed)
                paired[mode][k] = {"diff": d, "ci": [lo, hi], "p_not_better": p}
    agree = agreement(ratings, generations)
    # the derived training statements, read like generated ones (names of their own paragraph known)
    train_tf = [(t["statement"], e["context"]) for e in read_jsonl(tp.data / "split" / "train.jsonl")
                for t in e.get("true_false", [])]
    fb = [x for x in train_tf if FALLBACK.search(x[0])]
    natural = [x for x in train_tf if not FALLBACK.search(x[0])]
    training = {"statements": len(train_tf), "fallback_share": len(fb) / len(train_tf) if train_tf else None,
                "fallback_all_valid": _share(fb, lambda x: speller.validity(*x)["all_valid"]),
                "natural_all_valid": _share(natural, lambda x: speller.validity(*x)["all_valid"])}
    write_jsonl(tp.metrics / "generations.jsonl", generations)
    out = {"model": cfg.model.key, "inputs": len(inputs), "input_ids": sorted(inputs),
           "modes": {m: modes[m]["all"] for m in modes},
           "by_source": {m: modes[m]["by_source"] for m in modes}, "reference": reference,
           "fine_tuned_vs": paired, "answerability_threshold": {"value": threshold, "rank_by": jc.answerability.rank_by,
                                                                 "calibration": how, "chosen_on": "validation paragraphs: "
                                                                 "own questions vs another article's"},
           "hand_ratings": agree, "training_true_false": training}
    write_json(tp.metrics / "quality.json", out)
    for mode in sorted(modes):
        a = modes[mode]["all"]
        print(f"[qgen_es:judge] {mode}: usable {_f(a.get('usable'))}, all words valid {_f(a.get('items_all_valid'))}, "
              f"answerable {_f(a.get('answerable'))}, supported {_f(a.get('statements_supported'))} "
              f"({a['n']} inputs)", file=sys.stderr)
    print(f"[qgen_es:judge] reference questions: all words valid {_f(reference.get('items_all_valid'))}, "
          f"answerable {_f(reference.get('answerable'))}; hand ratings: {agree}", file=sys.stderr)


def _num(v):
    return None if v is None else float(v)


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def rating_sample(generations: Sequence[dict], n: int, modes: Sequence[str] = ("fine_tuned", "few_shot"),
                  seed: int = 0) -> list[dict]:
    """A seeded sample of n items, split evenly over `modes`, as rating rows to fill in
    (usable: null). How data/qgen_es/hand_ratings.jsonl was drawn."""
    rng = random.Random(seed)
    out = []
    for i, mode in enumerate(modes):
        pool = [(g, j, it) for g in generations if g["mode"] == mode for j, it in enumerate(g["items"], 1)]
        take = n // len(modes) + (i < n % len(modes))
        for g, j, it in sorted(rng.sample(pool, min(take, len(pool))), key=lambda x: (x[0]["id"], x[1])):
            out.append({"mode": mode, "id": g["id"], "item": j, "text": it["text"], "usable": None, "note": ""})
    return out


if __name__ == "__main__":  # python -m pipelines.qgen_es.judge [N]: rows to rate, from the committed generations
    import json

    gens = read_jsonl(project_relative("metrics/qgen_es/generations.jsonl"))
    for row in rating_sample(gens, int(sys.argv[1]) if len(sys.argv) > 1 else 40):
        print(json.dumps(row, ensure_ascii=False))
