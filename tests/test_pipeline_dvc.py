"""The real pipeline on a tiny budget, run by DVC in a scratch copy of the project:
every stage of every task runs end to end on a subset of the real data with the real packaged
models, DVC re-runs only what a param change affects, and the same seed gives identical metrics."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import squad_official
import yaml
from conftest import BASE_MODELS, base_model

from pipelines.core.config import PROJECT_ROOT, compose, to_plain
from pipelines.core.params import render
from pipelines.core.squad import clean_title

TINY_QA = [
    "data.limit=24",
    "train.max_steps=4",
    "train.eval_steps=2",
    "train.logging_steps=1",
    "train.batch_size=8",
    "baselines.generative.max_examples=4",
    "baselines.generative.max_new_tokens=8",
    "tracking.mode=disabled",
]
TINY = [
    "data.limit=160",
    "train.max_steps=6",
    "train.eval_strategy=steps",
    "train.eval_steps=3",
    "train.logging_steps=2",
    "train.batch_size=8",
    "baselines.prompting.max_examples=12",
    "baselines.prompting.shots=[0,2]",
    "tracking.mode=disabled",
]
TINY_SFT = [
    "train.max_steps=2",
    "train.eval_steps=1",
    "train.logging_steps=1",
    "train.batch_size=2",
    "evaluate.generation.max_new_tokens=12",
    "tracking.mode=disabled",
]
TINY_INSTRUCT = [*TINY_SFT, "data.limit=12", "evaluate.generation.max_examples=3"]
TINY_QGEN = [*TINY_SFT, "data.limit=6", "data.test_inputs=2", "data.wiki.limit=2", "evaluate.few_shot_k=1",
             "judge.answerability.calibration_questions=20"]
TINY_RAG = ["choose.top_ks=[2]", "generate.generation.max_new_tokens=12", "data.question_sets.bash_negatives.limit=2",
            "data.question_sets.squad_test.generate_limit=3", "data.question_sets.squad_test_negatives.limit=6",
            "data.question_sets.squad_test_negatives.generate_limit=2", "data.question_sets.squad_tune_negatives.limit=6",
            "raft.train_examples=6", "raft.val_examples=2", "raft.k=2", "train.max_steps=2", "train.eval_steps=1",
            "train.logging_steps=1", "train.batch_size=2", "generate.reader.tune_questions=4", "tracking.mode=disabled"]
COPY = ["dvc.yaml", "stages", "pipelines", "conf", "requirements-models.txt", "pyproject.toml",
        "data/qgen_es/hand_ratings.jsonl", "reports/sweeps/qgen_es-qwen2.5-coder-0.5b/quality.json"]


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=repo,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _set_param(repo: Path, dotted: str, value) -> None:
    path = repo / "params.yaml"
    doc = yaml.safe_load(path.read_text())
    node = doc
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    for key in ("minilm", "me5-small", "smollm2-135m"):
        base_model(key)
    repo = tmp_path_factory.mktemp("tinyrepo")
    for name in COPY:
        src = PROJECT_ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / name,
                                                           **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    # params: the committed defaults with a tiny budget; only the models this run needs
    doc = yaml.safe_load(render().split("\n", 3)[-1])
    doc = {"download": {"models": ["me5-small", "minilm", "smollm2-135m"]}}
    for task, overrides in (("sentiment", TINY), ("extractive_qa", TINY_QA), ("instruct", TINY_INSTRUCT),
                            ("qgen_es", TINY_QGEN)):
        block = to_plain(compose(task, overrides))
        block["data"]["root"] = str((PROJECT_ROOT / block["data"]["root"]).resolve())
        doc[task] = block
    doc["rag"] = _tiny_rag(repo, to_plain(compose("rag", TINY_RAG)))
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    # reuse the materialised models (hard links: instant) and record them without re-running
    for key in doc["download"]["models"]:
        shutil.copytree(BASE_MODELS / key, repo / "models" / "base" / key, copy_function=os.link)
    _dvc(repo, "commit", "-f", "download_models")
    return repo


def _tiny_rag(repo: Path, block: dict) -> dict:
    """rag on a folder corpus (the manual's first 420 lines, in two files) with the questions whose
    evidence is in it, and a SQuAD-es file of every article's first two paragraphs (tuning set, RAFT
    examples, test articles: the real article split); one collection per corpus with MiniLM."""
    src = (PROJECT_ROOT / block["data"]["root"]).resolve()
    lines = (src / "bash_manpage_es.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:420]
    corpus = repo.parent / "rag_corpus"
    corpus.mkdir()
    (corpus / "parte1.txt").write_text("".join(lines[:200]), encoding="utf-8")
    (corpus / "parte2.txt").write_text("".join(lines[200:]), encoding="utf-8")
    text = " ".join("".join(lines).split())
    qs = [r for r in _jsonl(src / "bash_qa_es.jsonl") if any(" ".join(e.split()) in text for e in r["evidence"])]
    assert len(qs) >= 4
    (repo.parent / "qs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qs[:4]),
                                         encoding="utf-8")
    squad = json.loads((src / "squad_es_v1.1_dev_small.json").read_text(encoding="utf-8"))
    for art in squad["data"]:
        art["paragraphs"] = art["paragraphs"][:2]
    (repo.parent / "squad_small.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    data = block["data"]
    data["root"] = str(src)
    data["corpora"] = {"bash": {"path": str(corpus), "format": "text"},
                       "squad_es": {"path": str(repo.parent / "squad_small.json"), "format": "squad"}}
    data["question_sets"]["bash"] = {**data["question_sets"]["bash"], "file": str(repo.parent / "qs.jsonl")}
    data["question_sets"]["bash_negatives"]["root"] = str(PROJECT_ROOT / "pipelines/rag")
    block["collections"] = {k: v for k, v in block["collections"].items() if k in ("bash-w300", "bash-struct", "squad-para")}
    block["embeddings"] = {"bash-w300-minilm": {"collection": "bash-w300", "embedder": "minilm"},
                           "squad-para-minilm": {"collection": "squad-para", "embedder": "minilm"}}
    block["embedders"] = {"minilm": block["embedders"]["minilm"]}
    return block


def test_tiny_pipeline_runs_end_to_end(repo):
    out = _dvc(repo, "repro")
    ran = _ran(out)
    assert {"sentiment_download", "sentiment_clean", "sentiment_split", "sentiment_tokenize",
            "sentiment_finetune", "sentiment_evaluate", "sentiment_baselines", "sentiment_report"} <= ran
    assert not any(s.startswith("download_models") for s in ran), "materialised models must be reused"
    ev = json.loads((repo / "metrics/sentiment/eval.json").read_text())
    assert ev["test"]["n"] == 32 and 0.0 <= ev["test"]["macro_f1"] <= 1.0
    assert ev["extra"]["probe_reviews"]["n"] >= 40
    bl = json.loads((repo / "metrics/sentiment/baselines.json").read_text())
    assert {"tfidf", "zero_shot", "few_shot_2"} <= set(bl)
    summary = json.loads((repo / "models/sentiment/train_summary.json").read_text())
    assert 0 < summary["trainable_params"] < summary["total_params"] and summary["steps"] == 6
    html = (repo / "reports/sentiment/index.html").read_text()
    assert "macro" in html.lower() and "data:image/png;base64," in html
    assert {f"extractive_qa_{s}" for s in ("download", "clean", "split", "tokenize", "finetune", "evaluate",
                                          "baselines", "report")} <= ran
    for task in ("instruct", "qgen_es"):
        assert {f"{task}_{s}" for s in ("download", "clean", "split", "tokenize", "finetune", "evaluate",
                                        "baselines", "report")} <= ran
    assert {"rag_download", "rag_clean", "rag_chunk@bash-w300", "rag_chunk@bash-struct", "rag_embed@bash-w300-minilm",
            "rag_retrieve", "rag_choose", "rag_tokenize", "rag_finetune", "rag_generate_raft", "rag_generate_prompted",
            "rag_generate_reader", "rag_evaluate", "rag_report", "report_index"} <= ran
    index = (repo / "reports/index.html").read_text()
    assert "not run yet" not in index and all(f'href="{t}/index.html"' in index for t in
                                              ("sentiment", "extractive_qa", "instruct", "qgen_es", "rag"))
    assert "Data and pipelines are up to date" in _dvc(repo, "repro")


def test_rag_outputs(repo):
    ev = json.loads((repo / "metrics/rag/eval.json").read_text())
    ch = json.loads((repo / "data/rag/choice.json").read_text())
    assert ch["tune_set"] == "squad_tune" and ch["top_k"] == 2 and ch["candidates"]
    assert set(ev["variant"]) == {"bash", "bash_negatives", "squad_test", "squad_test_negatives"}  # tuning sets not reported
    assert ev["variant"]["bash"].startswith("bash-w300|") and ev["variant"]["squad_test"].startswith("squad-para|")
    assert ev["retrieval"]["bash"]["n"] == 4 and 0 <= ev["retrieval"]["bash"]["hit@5"] <= 1
    for system in ("raft", "prompted", "reader"):
        a = ev["answers"][system]
        assert a["bash"]["n"] == 4 and a["bash_negatives"]["n_unanswerable"] == 2 and a["squad_test"]["n"] == 3
        assert a["squad_test_negatives"]["n_unanswerable"] == 2 and len(a["bash"]["f1_ci"]) == 2
    assert ev["answers"]["reader"]["squad_test"]["citation_valid"] in (None, 1.0)  # valid by construction
    grid = json.loads((repo / "metrics/rag/retrieval.json").read_text())
    kinds = {(r["collection"], r["retriever"], r["similarity"], r["pooling"]) for r in grid if r["question_set"] == "bash"}
    assert ("bash-struct", "bm25", "-", "-") in kinds  # BM25 on every collection, dense where embedded
    assert {("bash-w300", "dense", s, p) for s in ("cosine", "euclidean", "dot") for p in ("max", "mean", "first")} <= kinds
    answers = _jsonl(repo / "data/rag/answers/raft/bash.jsonl")
    assert all(len(a["chunk_ids"]) == 2 for a in answers)
    neg = _jsonl(repo / "data/rag/answers/raft/squad_test_negatives.jsonl")
    chunks = _jsonl(repo / "data/rag/chunks/squad-para.jsonl")
    qs = {q["id"]: q for q in _jsonl(repo / "data/rag/clean/questions/squad_test_negatives.jsonl")}
    for a in neg:  # asked without their own article: none of its paragraphs is given
        assert all(chunks[i]["doc"].rsplit("#", 1)[0] != qs[a["id"]]["exclude_title"] for i in a["chunk_ids"])
    examples = _jsonl(repo / "data/rag/raft_examples.jsonl")
    assert {e["split"] for e in examples} == {"train", "val"}
    meta = json.loads((repo / "data/rag/embeddings/bash-w300-minilm/meta.json").read_text())
    assert meta["windows"] > meta["chunks"] and meta["truncated_chunks"] > 0  # 300-word chunks need > 1 window
    html = (repo / "reports/rag/index.html").read_text()
    assert "Choice on the tuning set" in html and "data:image/png;base64," in html and "chunks given" in html


def test_rag_retrieval_knobs_do_not_reembed_or_retrain(repo):
    _set_param(repo, "rag.retrieve.hybrid.alphas", [0.5, 0.7])
    _set_param(repo, "rag.run.top_k", 3)
    ran = _ran(_dvc(repo, "repro"))
    answering = {"rag_generate_raft", "rag_generate_prompted", "rag_generate_reader"}
    assert {"rag_retrieve", "rag_choose", "rag_evaluate"} | answering <= ran
    assert ran <= {"rag_retrieve", "rag_choose", "rag_evaluate", "rag_report", "report_index"} | answering, ran
    assert all(len(a["chunk_ids"]) == 3 for a in _jsonl(repo / "data/rag/answers/raft/bash.jsonl"))
    # a generator-training knob re-trains and re-answers, but embeds and retrieves nothing again
    _set_param(repo, "rag.train.learning_rate", 5.0e-4)
    ran = _ran(_dvc(repo, "repro"))
    assert "rag_finetune" in ran and not {s for s in ran if s.startswith(("rag_embed", "rag_retrieve", "rag_chunk"))}, ran


def test_sft_tasks_outputs(repo):
    ins = json.loads((repo / "metrics/instruct/eval.json").read_text())["test"]
    assert ins["n_generated"] == 3 and 0 <= ins["rouge_l"] <= 1 and 0 <= ins["eos_rate"] <= 1 and ins["loss"] > 0
    assert json.loads((repo / "metrics/instruct/baselines.json").read_text())["base"]["test"]["n_generated"] == 3
    summary = json.loads((repo / "models/instruct/train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["pad"]["pad_token"] == "<|endoftext|>" and not summary["train_on_inputs"]
    assert "ROUGE-L" in (repo / "reports/instruct/index.html").read_text()
    q = json.loads((repo / "metrics/qgen_es/eval.json").read_text())
    assert q["test"]["n"] == 4 and set(q["by_source"]) == {"squad", "wiki"}
    bl = json.loads((repo / "metrics/qgen_es/baselines.json").read_text())
    assert set(bl) == {"zero_shot", "system_prompt", "few_shot"} and all(v["test"]["n"] == 4 for v in bl.values())
    html = (repo / "reports/qgen_es/index.html").read_text()
    for mode in ("zero-shot", "system prompt", "few-shot", "fine-tuned"):
        assert f"<td>{mode}</td>" in html, mode
    # the judge read every mode's items; the generations file holds every reply, item by item
    quality = json.loads((repo / "metrics/qgen_es/quality.json").read_text())
    assert set(quality["modes"]) == {"zero_shot", "system_prompt", "few_shot", "fine_tuned"}
    assert all(m["n"] == 4 and 0 <= m["items_all_valid"] <= 1 for m in quality["modes"].values())
    assert quality["answerability_threshold"]["calibration"]["n"] == 40 and quality["reference"]["n"] == 2
    gens = _jsonl(repo / "metrics/qgen_es/generations.jsonl")
    assert len(gens) == 16 and all({"output", "items", "metrics"} <= set(g) for g in gens)
    assert "What a teacher would keep" in html
    inputs = _jsonl(repo / "data/qgen_es/split/inputs.jsonl")
    # SQuAD-es articles per split as extractive_qa's: the judge's model never saw a test article
    qa_split = json.loads((repo / "data/extractive_qa/split_stats.json").read_text())
    assert {r["title"] for r in inputs if r["source"] == "squad"} <= {clean_title(t) for t in qa_split["test"]["titles"]}
    train_titles = {r["title"] for r in _jsonl(repo / "data/qgen_es/split/train.jsonl")}
    assert not {r["title"] for r in inputs if r["source"] == "squad"} & train_titles


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_qa_outputs_and_metric_recomputed_independently(repo):
    """EM/F1 in eval.json equal the official script's on the predictions file, to 1e-6."""
    ev = json.loads((repo / "metrics/extractive_qa/eval.json").read_text())["test"]
    preds = _jsonl(repo / "metrics/extractive_qa/predictions.jsonl")
    test = _jsonl(repo / "data/extractive_qa/split/test.jsonl")
    assert ev["n"] == len(preds) == len(test) == 24
    # the references in the predictions file are the test split's answers
    assert {p["id"]: p["references"] for p in preds} == {r["id"]: [a["text"] for a in r["answers"]] for r in test}
    official = squad_official.evaluate([(p["id"], p["references"]) for p in preds], {p["id"]: p["prediction"] for p in preds})
    assert abs(official["exact_match"] - ev["exact_match"]) < 1e-6
    assert abs(official["f1"] - ev["f1"]) < 1e-6
    assert ev["normalisation"]["official"]["f1"] == ev["f1"] and "es" in ev["normalisation"]
    # per-question rows carry what the acceptance asks for
    assert {"id", "prediction", "references", "em", "f1"} <= set(preds[0])
    bl = json.loads((repo / "metrics/extractive_qa/baselines.json").read_text())
    assert bl["untrained"]["test"]["n"] == 24 and bl["generative"]["test"]["n"] == 4 and bl["generative"]["sampled"]
    # no test article was seen in training
    titles = {s: {r["title"] for r in _jsonl(repo / f"data/extractive_qa/split/{s}.jsonl")} for s in ("train", "test")}
    assert not titles["train"] & titles["test"]
    # the default encoder (multilingual-e5-small) trained with its word embeddings frozen
    from safetensors import safe_open

    summary = json.loads((repo / "models/extractive_qa/train_summary.json").read_text())
    assert summary["model"] == "me5-small" and summary["frozen"] == "word embeddings"
    with safe_open(repo / "models/extractive_qa/final/model.safetensors", "pt") as tuned, \
            safe_open(BASE_MODELS / "me5-small/model.safetensors", "pt") as base:
        assert tuned.get_tensor("bert.embeddings.word_embeddings.weight").equal(base.get_tensor("embeddings.word_embeddings.weight"))
        assert not tuned.get_tensor("bert.encoder.layer.11.output.dense.weight").equal(base.get_tensor("encoder.layer.11.output.dense.weight"))
    html = (repo / "reports/extractive_qa/index.html").read_text()
    assert "F1 by question type" in html and "F1 by answer length" in html and "data:image/png;base64," in html


def test_evaluate_knob_reruns_only_evaluate(repo):
    _set_param(repo, "sentiment.evaluate.batch_size", 7)
    ran = _ran(_dvc(repo, "repro"))
    assert "sentiment_evaluate" in ran
    assert ran <= {"sentiment_evaluate", "sentiment_report", "report_index"}, ran


def test_lora_rank_change_killed_mid_training_resumes_from_last_checkpoint(repo):
    """A LoRA-rank change re-runs finetune onward only; SIGKILL `dvc repro` mid-training: nothing
    looks finished, and the next `dvc repro` goes on from the last checkpoint (adapter + optimizer
    state) instead of step 0."""
    import signal
    import time

    _set_param(repo, "sentiment.peft.r", 4)
    for key, value in (("max_steps", 20), ("eval_steps", 4), ("save_total_limit", 10)):
        _set_param(repo, f"sentiment.train.{key}", value)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "disabled", "DVC_NO_ANALYTICS": "1"}
    models = repo / "models/sentiment"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dvc"), "repro", "sentiment_finetune"], cwd=repo,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (models / "checkpoints/checkpoint-8/trainer_state.json").exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint-8 within 300 s"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage: no cleanup code runs
        proc.wait()
    # the killed stage left no output that looks complete
    assert not (models / "final").exists() and not (models / "train_summary.json").exists()
    out = _dvc(repo, "repro")
    ran = _ran(out)
    assert {"sentiment_finetune", "sentiment_evaluate"} <= ran
    assert ran <= {"sentiment_finetune", "sentiment_evaluate", "sentiment_report", "report_index"}, ran
    m = re.search(r"resuming from \S*checkpoint-(\d+) \(step (\d+)\)", out)
    assert m and int(m.group(2)) >= 8, out[-3000:]
    summary = json.loads((models / "train_summary.json").read_text())
    assert summary["steps"] == 20 and 0 < summary["trainable_params"]
    steps = [e["step"] for e in json.loads((models / "train_log.json").read_text()) if "loss" in e]
    assert steps[0] < int(m.group(2)) < steps[-1]  # one log: before and after the kill
    assert not (models / "checkpoints").exists()  # a finished run has nothing to resume
    assert not list(models.glob(".*.tmp"))


def test_same_seed_identical_metrics(repo):
    tasks = ("sentiment", "extractive_qa", "instruct", "qgen_es")
    files = [f"metrics/{t}/eval.json" for t in tasks]
    files += ["metrics/rag/eval.json", "metrics/rag/retrieval.json"]
    files += [f"metrics/{t}/run_info.json" for t in (*tasks, "rag")]  # resolved config + library versions
    _dvc(repo, "repro")  # everything current first (earlier tests changed params and ran single stages)
    info = json.loads((repo / "metrics/sentiment/run_info.json").read_text())
    assert info["versions"]["torch"].startswith("2.13.0") and info["config"]["peft"]["r"] == 4
    before = {p: (repo / p).read_bytes() for p in files}
    # one dvc call re-runs training and evaluation of every task (bf16 autocast of QA and SFT included);
    # not the baselines: the generative ones decode with the same code as the evaluate stages, and
    # re-running them all cost ~1 min of the suite
    stages = [f"{t}_{s}" for t in tasks for s in ("finetune", "evaluate")]
    stages += ["rag_embed@bash-w300-minilm", "rag_retrieve", "rag_choose", "rag_generate_prompted", "rag_evaluate"]
    ran = _ran(_dvc(repo, "repro", "-f", "-s", *stages))
    assert ran == set(stages), ran
    for p, content in before.items():
        assert (repo / p).read_bytes() == content, f"{p} changed between two runs with the same seed"


def test_editing_lora_presets_marks_finetune_changed(repo):
    """Code deps are closed under import (tests/test_codedeps.py): the LoRA target presets live in
    core/models.py, which sentiment_finetune reaches only through its stage function's module, and
    an edit there makes DVC see sentiment_finetune (and what follows it) as changed."""
    _dvc(repo, "repro")  # up to date first
    models_py = repo / "pipelines/core/models.py"
    original = models_py.read_text()
    edited = original.replace('"bert": {"qv": ["query", "value"], "qkv": ["query", "key", "value"],',
                              '"bert": {"qv": ["query", "value"], "qkv": ["query", "value", "key"],')
    assert edited != original, "TARGET_PRESETS layout changed: update this test"
    try:
        models_py.write_text(edited)
        changed = _changed(repo)
        assert "sentiment_finetune" in changed, changed
        # a finetune-only dependency: data stages are not disturbed
        assert not {"sentiment_download", "sentiment_clean", "sentiment_split"} & changed, changed
    finally:
        models_py.write_text(original)
    assert not _changed(repo)


def _changed(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed."""
    out = _dvc(repo, "status", "--json")
    return set(json.loads(out[out.index("{"):out.rindex("}") + 1]))
