"""Bad config values and the silent cases of issue 17 through the real stages (the matrix of
tests/test_bad_inputs.py, same contract: exit 2, one `error:` line last, no traceback, no outputs,
no temp dirs, the fake W&B key nowhere).

Config values outside what the schema declares fail when the stage loads its params (before any
heavy import); the data cases fail in the stage that reads the offending file, naming it.
"""
from __future__ import annotations

import json

import pytest
import yaml
from test_bad_inputs import (
    NEGATIVES,
    Case,
    _set,
    bash_questions,
    params,
    rag_downloaded,
    rag_params,
    raw,
    run,
    steam_csv,
    test_bad_input as check_case,  # an alias: pytest does not collect it twice
    write,
)


def _edit(task: str, dotted: str, value):
    return lambda tmp: params(tmp, task, edit=lambda b: _set(b, dotted, value))


def _yaml_text(task: str, old: str, new: str):
    """The params file as a user would type it (`eval_strategy: no`, unquoted)."""
    def setup(tmp):
        p = params(tmp, task)
        text = p.read_text()
        assert old in text, old
        p.write_text(text.replace(old, new, 1))
        return p
    return setup


def _no_epochs(task: str):
    return lambda tmp: params(tmp, task, edit=lambda b: b["train"].update(epochs=0, max_steps=-1))


def _one_class(tmp):
    rows = [{"id": f"r{i}", "text": f"great game number {i}", "label": 1, "label_name": "positive", "game": None}
            for i in range(12)]
    write(tmp / "data/sentiment/clean.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return params(tmp, "sentiment")


def _evidence_nowhere(tmp):
    # questions about the real Bash manual, asked of a one-paragraph corpus about `alias`
    return rag_downloaded(tmp, questions="\n".join(bash_questions(3)) + "\n")


LR = "sentiment.train.learning_rate"
CASES = [
    # ------------------------------------------------------ values the libraries reject (tracebacks before)
    Case("schema-sentiment-negative-learning-rate", "sentiment", "finetune", _edit("sentiment", "train.learning_rate", -1e-3),
         ("params.yaml", f"{LR}: must be > 0, got -0.001"), "sentiment_finetune"),
    Case("schema-sentiment-nan-learning-rate", "sentiment", "finetune", _edit("sentiment", "train.learning_rate", float("nan")),
         ("params.yaml", f"{LR}: must be > 0, got nan"), "sentiment_finetune"),
    Case("schema-instruct-nan-learning-rate-set", "instruct", "finetune", lambda tmp: (params(tmp, "instruct"),
                                                                                    ["--set", "train.learning_rate=.nan"]),
         ("--set train.learning_rate=.nan", "instruct.train.learning_rate: must be > 0, got nan"), "instruct_finetune"),
    Case("schema-sentiment-batch-size-zero", "sentiment", "finetune", _edit("sentiment", "train.batch_size", 0),
         ("sentiment.train.batch_size: must be >= 1, got 0",), "sentiment_finetune"),
    Case("schema-qgen_es-grad-accum-zero", "qgen_es", "finetune", _edit("qgen_es", "train.grad_accum", 0),
         ("qgen_es.train.grad_accum: must be >= 1, got 0",), "qgen_es_finetune"),
    Case("schema-sentiment-scheduler-typo", "sentiment", "finetune", _edit("sentiment", "train.scheduler", "cosin"),
         ("sentiment.train.scheduler: 'cosin' is not one of linear, cosine, cosine_with_restarts",), "sentiment_finetune"),
    Case("schema-sentiment-eval-strategy-epochs", "sentiment", "finetune", _edit("sentiment", "train.eval_strategy", "epochs"),
         ("sentiment.train.eval_strategy: 'epochs' is not one of epoch, steps, no",), "sentiment_finetune"),
    Case("schema-sentiment-eval-strategy-unquoted-no", "sentiment", "finetune",
         _yaml_text("sentiment", "eval_strategy: epoch", "eval_strategy: no"),
         ('sentiment.train.eval_strategy: got false (YAML reads no/off/yes/on as booleans: quote it, "no")',),
         "sentiment_finetune"),
    Case("schema-extractive_qa-eval-strategy-unquoted-no-set", "extractive_qa", "finetune",
         lambda tmp: (params(tmp, "extractive_qa"), ["--set", "train.eval_strategy=no"]),
         ("--set train.eval_strategy=no", 'extractive_qa.train.eval_strategy: got false', 'quote it, "no"'),
         "extractive_qa_finetune"),
    Case("schema-sentiment-lora-dropout-1.5", "sentiment", "finetune", _edit("sentiment", "peft.lora_dropout", 1.5),
         ("sentiment.peft.lora_dropout: must be >= 0 and < 1, got 1.5",), "sentiment_finetune"),
    Case("schema-instruct-lora-r-zero", "instruct", "finetune", _edit("instruct", "peft.r", 0),
         ("instruct.peft.r: must be >= 1, got 0",), "instruct_finetune"),
    Case("schema-sentiment-warmup-ratio-above-1", "sentiment", "finetune", _edit("sentiment", "train.warmup_ratio", 1.5),
         ("sentiment.train.warmup_ratio: must be >= 0 and <= 1, got 1.5",), "sentiment_finetune"),
    Case("schema-sentiment-peft-bias-typo", "sentiment", "finetune", _edit("sentiment", "peft.bias", "lora"),
         ("sentiment.peft.bias: 'lora' is not one of none, all, lora_only",), "sentiment_finetune"),
    Case("schema-sentiment-launcher-typo", "sentiment", "finetune", _edit("sentiment", "launcher.name", "torchrn"),
         ("sentiment.launcher.name: 'torchrn' is not one of local, torchrun, accelerate",), "sentiment_finetune"),
    Case("schema-instruct-dtype-typo", "instruct", "finetune", _edit("instruct", "model.dtype", "bf16"),
         ("instruct.model.dtype: 'bf16' is not one of float32, bfloat16, float16",), "instruct_finetune"),
    Case("schema-instruct-prompt-format-typo", "instruct", "tokenize", _edit("instruct", "prompt.format", "chatml"),
         ("instruct.prompt.format: 'chatml' is not one of alpaca, chat, phi3",), "instruct_tokenize"),
    Case("schema-extractive_qa-n-best-zero", "extractive_qa", "evaluate", _edit("extractive_qa", "evaluate.n_best", 0),
         ("extractive_qa.evaluate.n_best: must be >= 1, got 0",), "extractive_qa_evaluate"),
    Case("schema-qgen_es-tf-position-typo", "qgen_es", "split", _edit("qgen_es", "data.tf_position", "last"),
         ("qgen_es.data.tf_position: 'last' is not one of end, start, random",), "qgen_es_split"),
    Case("schema-rag-retriever-typo", "rag", "retrieve",
         lambda tmp: rag_params(tmp, NEGATIVES, edit=lambda b: _set(b, "run.retriever", "hybird")),
         ("rag.run.retriever: 'hybird' is not one of dense, bm25, hybrid",), "rag_retrieve"),
    Case("schema-rag-similarity-list-typo", "rag", "retrieve",
         lambda tmp: rag_params(tmp, NEGATIVES, edit=lambda b: _set(b, "retrieve.similarities", ["cosine", "cosin"])),
         ("rag.retrieve.similarities[1]: 'cosin' is not one of cosine, euclidean, dot",), "rag_retrieve"),
    Case("schema-rag-collection-method-typo", "rag", "chunk",
         lambda tmp: rag_params(tmp, NEGATIVES, edit=lambda b: _set(b, "collections.bash-w300.method", "sentences")),
         ("rag.collections.bash-w300.method: 'sentences' is not one of words, structure, paragraph",), "rag_chunk"),
    Case("schema-sentiment-threads-zero", "sentiment", "split", _edit("sentiment", "runtime.threads", {"default": 0}),
         ("sentiment.runtime.threads.default: must be >= 1, got 0",), "sentiment_split"),
    # --------------------------------------------------------------------------- silent before
    Case("schema-instruct-limit-zero", "instruct", "split", _edit("instruct", "data.limit", 0),
         ("instruct.data.limit: must be >= 1, got 0",), "instruct_split"),
    Case("schema-instruct-limit-negative", "instruct", "split", _edit("instruct", "data.limit", -1),
         ("instruct.data.limit: must be >= 1, got -1",), "instruct_split"),
    Case("schema-qgen_es-limit-zero", "qgen_es", "split", _edit("qgen_es", "data.limit", 0),
         ("qgen_es.data.limit: must be >= 1, got 0",), "qgen_es_split"),
    Case("schema-qgen_es-limit-negative", "qgen_es", "split", _edit("qgen_es", "data.limit", -1),
         ("qgen_es.data.limit: must be >= 1, got -1",), "qgen_es_split"),
    Case("schema-sentiment-epochs-zero", "sentiment", "finetune", _no_epochs("sentiment"),
         ("sentiment.train.epochs: must be > 0 unless train.max_steps > 0, got 0",), "sentiment_finetune"),
    Case("schema-instruct-epochs-zero", "instruct", "finetune", _no_epochs("instruct"),
         ("instruct.train.epochs: must be > 0 unless train.max_steps > 0, got 0",), "instruct_finetune"),
    Case("sentiment-split-one-class", "sentiment", "split", _one_class,
         ("data/sentiment/clean.jsonl", "every row has label 'positive'", "at least 2 of data.labels"), "sentiment_split"),
    Case("sentiment-clean-labels-shorter-than-file", "sentiment", "clean",
         lambda tmp: (raw(tmp, "sentiment", "steam_reviews.csv", steam_csv()),
                      params(tmp, "sentiment", edit=lambda b: _set(b, "data.labels", ["negative"])))[1],
         ("steam_reviews.csv", "row 1", "voted_up='True' is class 1", "data.labels names only 1"), "sentiment_clean"),
    Case("rag-clean-corpus-nul-bytes", "rag", "clean", lambda tmp: rag_downloaded(tmp, b"\x00" * 64),
         ("manual.txt", "contains NUL bytes (byte 0)", "not a text file"), "rag_clean"),
    Case("rag-clean-evidence-nowhere-in-corpus", "rag", "clean", _evidence_nowhere,
         ("data.question_sets.q (q.jsonl)", "no evidence string of its 3 answerable questions", "corpus 'bash'"), "rag_clean"),
    # ------------------------------------------------------------------------- entry-point inputs
    Case("params-is-a-folder", "sentiment", "split",
         lambda tmp: (tmp / "conf-folder").mkdir() or tmp / "conf-folder",
         ("conf-folder: is a folder, not a params file",), "sentiment_split"),
    Case("max-threads-not-a-number", "sentiment", "split", lambda tmp: params(tmp, "sentiment"),
         ("TUNEDAG_MAX_THREADS: 'abc' is not a whole number >= 1",), "sentiment_split"),
]
ENV = {"max-threads-not-a-number": {"TUNEDAG_MAX_THREADS": "abc"}}


def test_matrix_covers_the_issue_cases():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, case, monkeypatch):
    for k, v in ENV.get(case.id, {}).items():
        monkeypatch.setenv(k, v)  # run() builds the stage's environment from os.environ
    check_case(tmp_path, case)  # the matrix's own assertions (tests/test_bad_inputs.py)


# ------------------------------------------------------------------- beside the matrix
def test_rag_evidence_partly_missing_is_a_counted_warning(tmp_path):
    """One question's evidence is in the corpus, another's is not (cleaning can change a quoted
    string): the set is cleaned, exit 0, and one warning counts and names the unreachable one."""
    found = {"id": "alias", "question": "¿Qué hace alias?", "evidence": ["define sinónimos de órdenes"], "answer": "x"}
    lost = {"id": "lost", "question": "¿Qué hace -n?", "evidence": ["Lee órdenes pero no las ejecuta."], "answer": "y"}
    p = rag_downloaded(tmp_path, questions="".join(json.dumps(q, ensure_ascii=False) + "\n" for q in (found, lost)))
    proc = run(tmp_path, "rag", "clean", p)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("warning:")]
    assert warnings == ["warning: data.question_sets.q (q.jsonl): 1 of 2 answerable questions have no evidence string "
                        "in corpus 'bash' (unreachable for every retriever): lost"], proc.stderr
    rows = (tmp_path / "data/rag/clean/questions/q.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in rows] == ["alias", "lost"]


def test_quoted_no_is_accepted(tmp_path):
    """The fix the YAML-boolean message asks for works: `eval_strategy: "no"` loads as the string."""
    from pipelines.core.config import load_task_block

    p = params(tmp_path, "sentiment")
    p.write_text(p.read_text().replace("eval_strategy: epoch", 'eval_strategy: "no"', 1))
    assert load_task_block("sentiment", p).train.eval_strategy == "no"
    assert yaml.safe_load(p.read_text())["sentiment"]["train"]["eval_strategy"] == "no"

