"""Bad input across all five tasks, through the real stages (issue 6, "Hardened inputs").

Every case of the matrix runs `python -m stages.<stage> <task> --params <file>` in a subprocess,
with W&B tracking on (offline) and a fake WANDB_API_KEY in the environment, and checks that
the stage
  * exits with 2 (a PipelineError), without a traceback,
  * ends stderr with exactly one `error: ...` line naming the offending file or field,
  * leaves none of its declared outputs (dvc.yaml) and no new file at all under the run dir,
    no `.*.tmp` leftovers of io.atomic_path either,
  * never writes the key: not to stdout/stderr, not to any file under the run dir (params
    file, logs, W&B dirs).
Inputs are a few lines each, so a case costs about the stage's imports.

Beside the matrix: the repairable twin of the unrepairable answer_start case (a logged repair,
exit 0), a successful stage that starts an offline W&B run with the key set (nothing of the key
in the run dir), and trust_remote_code (False unless a model config sets it, then one warning).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml
from conftest import BASE_MODELS, PROJECT_ROOT, base_model, make_params

FAKE_KEY = hashlib.sha1(b"tunedag: not a real W&B key").hexdigest()  # 40 hex chars, like a real one
SHARED = (PROJECT_ROOT / "../shared/data").resolve()
NEGATIVES = PROJECT_ROOT / "pipelines" / "rag" / "negatives_es.jsonl"
DVC_STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


# ------------------------------------------------------------------------------ helpers
def env_with_key(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_SILENT")}
    env.update(WANDB_API_KEY=FAKE_KEY, WANDB_DIR=str(tmp / "wandb_env"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


def params(tmp: Path, task: str, overrides: list[str] | None = None, edit: Callable[[dict], None] | None = None) -> Path:
    """The composed task block with outputs under tmp and W&B tracking on, offline."""
    path = make_params(tmp, task, overrides)
    doc = yaml.safe_load(path.read_text())
    doc[task]["tracking"].update(backend="wandb", mode="offline", dir="wandb_runs")
    if edit:
        edit(doc[task])
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def declared_outputs(dvc_stage: str | None) -> list[str]:
    """Glob patterns (relative to paths.root) of a DVC stage's outs, metrics and plots."""
    if dvc_stage is None:
        return []
    st = DVC_STAGES[dvc_stage]
    st = st.get("do", st)
    pats = []
    for kind in ("outs", "metrics", "plots"):
        for entry in st.get(kind, []):
            path = entry if isinstance(entry, str) else next(iter(entry))
            while "${" in path:  # foreach stages: ${key}, ${item} -> any name
                a = path.index("${")
                path = path[:a] + "*" + path[path.index("}", a) + 1:]
            pats.append(path)
    assert pats, dvc_stage
    return pats


def files(root: Path) -> set[str]:
    # files only: atomic_path creates the output's parent folder, an empty folder is no output
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def raw(tmp: Path, task: str, name: str, content: str | bytes) -> Path:
    """A file as the download stage would have left it in data/<task>/raw."""
    return write(tmp / "data" / task / "raw" / name, content)


def broken_model(tmp: Path) -> Path:
    """A copy of the MiniLM folder (config, tokenizer) without its weights."""
    src, dst = base_model("minilm"), tmp / "minilm-no-weights"
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "pytorch_model.bin"):
            shutil.copyfile(f, dst / f.name)
    return dst


# --- sentiment: the real Steam reviews format (appid, review, ..., voted_up, ...)
def steam_csv(n: int = 8, drop: str | None = None) -> str:
    with open(SHARED / "steam_reviews.csv", newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [next(reader) for _ in range(n)]
    keep = [i for i, h in enumerate(header) if h != drop]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerows([[r[i] for i in keep] for r in [header, *rows]])
    return out.getvalue()


def sentiment_split(tmp: Path) -> None:
    for name in ("train", "val", "test"):
        rows = [{"id": f"{name}{i}", "text": t, "label": l, "label_name": ["negative", "positive"][l]}
                for i, (t, l) in enumerate([("great game, fun with friends", 1), ("awful, refund it", 0)] * 3)]
        write(tmp / "data/sentiment/split" / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


# --- SQuAD format (extractive_qa, qgen_es)
CTX = ("Nikola Tesla nació en 1856 en Smiljan, en el Imperio austríaco. " + "Fue inventor e ingeniero. " * 6
       + "Murió en Nueva York en 1943.")


def squad(qas: list[dict], para: dict | None = None) -> str:
    para = {"context": CTX, "qas": qas} if para is None else para
    return json.dumps({"version": "1.1", "data": [{"title": "Nikola Tesla", "paragraphs": [para]}]}, ensure_ascii=False)


def qa(qid: str, start: int, text: str = "1856", **extra) -> dict:
    return {"id": qid, "question": "¿Cuándo nació Tesla?", "answers": [{"text": text, "answer_start": start}], **extra}


# answers that cannot be repaired: "1943" occurs, but ~190 characters from its answer_start
# (beyond data.clean.repair_window), "Belgrado" not at all -> no usable question is left
UNREPAIRABLE = [qa("far", 22, "1943"), qa("absent", 3, "Belgrado")]
SQUAD_FILE = "squad_es_v1.1_dev_small.json"


# --- instruct
def alpaca(*records: dict) -> str:
    return json.dumps(list(records))


# --- rag: our own small corpus and question file instead of the Bash manual
def rag_params(tmp: Path, corpus: Path, questions: Path = NEGATIVES, edit: Callable[[dict], None] | None = None,
               overrides: list[str] | None = None) -> Path:
    def narrow(b: dict) -> None:
        b["data"]["corpora"] = {"bash": {"path": str(corpus), "format": "text"}}
        b["data"]["question_sets"] = {"q": {**b["data"]["question_sets"]["bash_negatives"],
                                            "file": questions.name, "root": str(questions.parent)}}
        b["collections"] = {"bash-w300": b["collections"]["bash-w300"]}
        b["embeddings"] = {"bash-w300-minilm": {"collection": "bash-w300", "embedder": "minilm"}}
        b["embedders"] = {"minilm": b["embedders"]["minilm"]}
        b["run"].update(collections={"bash": "bash-w300"}, retriever="hybrid", embedder="minilm", similarity="cosine",
                        alpha=0.5, top_k=3)
        b["generate"]["systems"] = ["prompted"]
        if edit:
            edit(b)

    return params(tmp, "rag", overrides, narrow)


MANUAL = "# ALIAS\n\nLa orden alias define sinónimos de órdenes. Sin argumentos muestra la lista.\n"


def rag_downloaded(tmp: Path, corpus_bytes: bytes = MANUAL.encode(), questions: str | None = None,
                   edit: Callable[[dict], None] | None = None) -> Path:
    """rag params on a one-file corpus, with data/rag/raw filled by the real download code."""
    from pipelines.core.config import load_task_block
    from pipelines.rag import prep

    corpus = write(tmp / "src" / "manual.txt", corpus_bytes)
    qfile = write(tmp / "src" / "q.jsonl", questions) if questions is not None else NEGATIVES
    p = rag_params(tmp, corpus, qfile, edit)
    prep.download(load_task_block("rag", p))
    return p


def add_question_set(params_file: Path, name: str) -> Path:
    """The config gains a question set after the download stage ran (raw/ does not have it)."""
    doc = yaml.safe_load(params_file.read_text())
    sets = doc["rag"]["data"]["question_sets"]
    sets[name] = dict(next(iter(sets.values())))
    params_file.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return params_file


def bash_questions(n: int = 2) -> list[str]:
    return (SHARED / "bash_qa_es.jsonl").read_text(encoding="utf-8").splitlines()[:n]


def rag_chunks(tmp: Path) -> None:
    chunk = {"id": 0, "doc": "manual", "section": "ALIAS", "text": MANUAL, "n_words": 12}
    write(tmp / "data/rag/chunks/bash-w300.jsonl", json.dumps(chunk, ensure_ascii=False) + "\n")


def sums_mismatch(tmp: Path, name: str, content: bytes) -> Path:
    """A data folder whose `name` differs from what the real SHA256SUMS says."""
    src = tmp / "src"
    write(src / name, content)
    shutil.copyfile(SHARED / "SHA256SUMS", src / "SHA256SUMS")
    return src


def expected_sha(name: str) -> str:
    for line in (SHARED / "SHA256SUMS").read_text().splitlines():
        digest, _, fname = line.partition("  ")
        if fname == name:
            return digest
    raise AssertionError(name)


# ---------------------------------------------------------------------------------- matrix
@dataclass(frozen=True)
class Case:
    id: str
    task: str  # as given on the command line
    stage: str
    setup: Callable[[Path], Path | tuple[Path, list[str]]]  # -> params file (, extra CLI args)
    expect: tuple[str, ...]  # substrings of the error line
    dvc: str | None = None  # the dvc.yaml stage whose declared outputs must not appear

    @property
    def outputs(self) -> list[str]:
        return declared_outputs(self.dvc)


def _sentiment(overrides=None, edit=None):
    return lambda tmp: params(tmp, "sentiment", overrides, edit)


def _set(b: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        b = b[p]
    b[last] = value


CASES = [
    # ------------------------------------------------------------------ sentiment
    Case("sentiment-download-checksum-mismatch", "sentiment", "download",
         lambda tmp: params(tmp, "sentiment", [f"data.root={sums_mismatch(tmp, 'steam_reviews.csv', steam_csv().encode())}"]),
         ("steam_reviews.csv", "sha256 mismatch", expected_sha("steam_reviews.csv"),
          hashlib.sha256(steam_csv().encode()).hexdigest()), "sentiment_download"),
    Case("sentiment-clean-empty-csv", "sentiment", "clean",
         lambda tmp: (raw(tmp, "sentiment", "steam_reviews.csv", b""), params(tmp, "sentiment"))[1],
         ("raw/steam_reviews.csv", "empty file"), "sentiment_clean"),
    Case("sentiment-clean-missing-column", "sentiment", "clean",
         lambda tmp: (raw(tmp, "sentiment", "steam_reviews.csv", steam_csv(drop="voted_up")), params(tmp, "sentiment"))[1],
         ("steam_reviews.csv", "no column 'voted_up'", "data.label_field"), "sentiment_clean"),
    Case("sentiment-clean-invalid-utf8", "sentiment", "clean",
         lambda tmp: (raw(tmp, "sentiment", "steam_reviews.csv", steam_csv(3).encode() + b'570,"bad \xff\xfe bytes",3,True\n'),
                      params(tmp, "sentiment"))[1],
         ("steam_reviews.csv", "line 5", "not valid UTF-8"), "sentiment_clean"),
    Case("sentiment-params-unknown-key", "sentiment", "split",
         _sentiment(edit=lambda b: _set(b, "train.learning_rat", 0.1)),
         ("params.yaml", "sentiment.train.learning_rat", "not in 'TrainConfig'"), "sentiment_split"),
    Case("sentiment-params-wrong-type", "sentiment", "split",
         _sentiment(edit=lambda b: _set(b, "train.batch_size", "sixteen")),
         ("params.yaml", "sentiment.train.batch_size", "'sixteen'"), "sentiment_split"),
    Case("sentiment-params-malformed-yaml", "sentiment", "split",
         lambda tmp: write(tmp / "params.yaml", "sentiment: {task: {name: sentiment\n"),
         ("params.yaml", "invalid YAML at line 2"), "sentiment_split"),
    Case("sentiment-set-without-value", "sentiment", "split",
         lambda tmp: (params(tmp, "sentiment"), ["--set", "data.limit"]),
         ("--set 'data.limit'", "expected KEY=VALUE"), "sentiment_split"),
    Case("sentiment-set-invalid-yaml", "sentiment", "split",
         lambda tmp: (params(tmp, "sentiment"), ["--set", "data.limit=[1"]),
         ("--set 'data.limit=[1'", "not valid YAML"), "sentiment_split"),
    Case("sentiment-set-unknown-key", "sentiment", "split",
         lambda tmp: (params(tmp, "sentiment"), ["--set", "data.limt=5"]),
         ("--set data.limt=5", "sentiment.data.limt"), "sentiment_split"),
    Case("sentiment-tokenize-unknown-model-key", "sentiment", "tokenize",
         lambda tmp: (sentiment_split(tmp), params(tmp, "sentiment", ["model.key=no-such-model"]))[1],
         ("model.key", "unknown packaged model 'no-such-model'"), "sentiment_tokenize"),
    Case("sentiment-tokenize-model-path-missing", "sentiment", "tokenize",
         lambda tmp: (sentiment_split(tmp), params(tmp, "sentiment", ["model.source=path", f"model.path={tmp}/nope"]))[1],
         ("model.path", "nope is not a directory"), "sentiment_tokenize"),
    Case("sentiment-finetune-model-dir-without-weights", "sentiment", "finetune",
         lambda tmp: params(tmp, "sentiment", ["model.source=path", f"model.path={broken_model(tmp)}"]),
         ("minilm-no-weights", "model folder has no weights"), "sentiment_finetune"),
    # without the start-up check, baselines wrote its outputs and then crashed in wandb.init
    Case("sentiment-baselines-tracking-mode-typo", "sentiment", "baselines",
         lambda tmp: (sentiment_split(tmp), params(tmp, "sentiment", ["baselines.prompting.enabled=false"],
                                                   lambda b: _set(b, "tracking.mode", "ofline")))[1],
         ("sentiment.tracking.mode", "'ofline' is not one of offline, online, disabled"), "sentiment_baselines"),
    Case("sentiment-report-eval-json-missing", "sentiment", "report",
         _sentiment(), ("metrics/sentiment/eval.json", "file not found"), "sentiment_report"),
    Case("unknown-task", "sentimnt", "clean",
         _sentiment(), ("unknown task 'sentimnt'", "known tasks: extractive_qa"), None),
    # --------------------------------------------------------------- extractive_qa
    Case("extractive_qa-clean-truncated-json", "extractive_qa", "clean",
         lambda tmp: (raw(tmp, "extractive_qa", SQUAD_FILE, squad([qa("a", 22)])[:-40]), params(tmp, "extractive_qa"))[1],
         (SQUAD_FILE, "invalid JSON at line 1"), "extractive_qa_clean"),
    Case("extractive_qa-clean-missing-context", "extractive_qa", "clean",
         lambda tmp: (raw(tmp, "extractive_qa", SQUAD_FILE, squad([], {"qas": [qa("a", 22)]})), params(tmp, "extractive_qa"))[1],
         (SQUAD_FILE, "data[0].paragraphs[0]: missing field 'context'"), "extractive_qa_clean"),
    Case("extractive_qa-clean-answer-start-unrepairable", "extractive_qa", "clean",
         lambda tmp: (raw(tmp, "extractive_qa", SQUAD_FILE, squad(UNREPAIRABLE)), params(tmp, "extractive_qa"))[1],
         (SQUAD_FILE, "no question left after cleaning", "'dropped_no_valid_answer': 2"), "extractive_qa_clean"),
    Case("extractive_qa-split-wrong-type", "extractive_qa", "split",
         lambda tmp: params(tmp, "extractive_qa", edit=lambda b: _set(b, "data.split.val", "ten percent")),
         ("params.yaml", "extractive_qa.data.split.val", "'ten percent'"), "extractive_qa_split"),
    # -------------------------------------------------------------------- instruct
    Case("instruct-tokenize-unknown-model-source", "instruct", "tokenize",
         lambda tmp: params(tmp, "instruct", ["model.source=carrier-pigeon"]),
         ("model.source: 'carrier-pigeon' is not one of package, hub, path",), "instruct_tokenize"),
    Case("instruct-clean-missing-output", "instruct", "clean",
         lambda tmp: (raw(tmp, "instruct", "instructions_en_1100.json",
                          alpaca({"instruction": "Say hi.", "input": "", "output": "Hi."}, {"instruction": "Count.", "input": "3"})),
                      params(tmp, "instruct"))[1],
         ("instructions_en_1100.json", "[1]: missing field 'output'"), "instruct_clean"),
    Case("instruct-clean-empty-file", "instruct", "clean",
         lambda tmp: (raw(tmp, "instruct", "instructions_en_1100.json", ""), params(tmp, "instruct"))[1],
         ("instructions_en_1100.json", "empty file"), "instruct_clean"),
    Case("instruct-split-truncated-jsonl", "instruct", "split",
         lambda tmp: (write(tmp / "data/instruct/clean.jsonl",
                            '{"id": "a", "instruction": "Say hi.", "input": "", "output": "Hi."}\n'
                            '{"id": "b", "instruction": "Say bye.", "input": "", "output": "Bye."}\n'
                            '{"id": "c", "instruction": "Cou'), params(tmp, "instruct"))[1],
         ("data/instruct/clean.jsonl:3", "invalid JSON"), "instruct_split"),
    # --------------------------------------------------------------------- qgen_es
    # the SQuAD-es copy (raw/) used to be written before the biographies were sampled
    Case("qgen_es-download-wiki-window-empty", "qgen_es", "download",
         lambda tmp: params(tmp, "qgen_es", ["data.wiki.min_chars=900", "data.wiki.max_chars=100"]),
         ("data.wiki.min_chars/max_chars", "no biography of summaries_es-es.json between 900 and 100"), "qgen_es_download"),
    Case("qgen_es-clean-missing-question", "qgen_es", "clean",
         lambda tmp: (raw(tmp, "qgen_es", SQUAD_FILE, squad([{"answers": [{"text": "1856", "answer_start": 22}]}])),
                      params(tmp, "qgen_es"))[1],
         (SQUAD_FILE, "data[0].paragraphs[0].qas[0]: missing field 'question'"), "qgen_es_clean"),
    Case("qgen_es-clean-invalid-utf8", "qgen_es", "clean",
         lambda tmp: (raw(tmp, "qgen_es", SQUAD_FILE, squad([qa("a", 22)]).encode("latin-1")), params(tmp, "qgen_es"))[1],
         (SQUAD_FILE, "not valid UTF-8"), "qgen_es_clean"),
    Case("qgen_es-split-truncated-jsonl", "qgen_es", "split",
         lambda tmp: (write(tmp / "data/qgen_es/paragraphs.jsonl",
                            json.dumps({"id": "T#0", "title": "T", "context": CTX, "qas": []}) + '\n{"id": "T#1", "ti'),
                      params(tmp, "qgen_es"))[1],
         ("data/qgen_es/paragraphs.jsonl:2", "invalid JSON"), "qgen_es_split"),
    Case("qgen_es-baselines-tokenizer-missing", "qgen_es", "baselines",
         lambda tmp: (write(tmp / "data/qgen_es/split/inputs.jsonl", json.dumps(
             {"id": "T#0", "title": "T", "context": CTX, "source": "squad", "n": 2, "k": 1, "reference_questions": []}) + "\n"),
             params(tmp, "qgen_es", ["evaluate.modes=[zero_shot]"]))[1],
         ("data/qgen_es/tokenized/tokenizer", "not found (run the tokenize stage first)"), "qgen_es_baselines"),
    Case("qgen_es-judge-ratings-not-boolean", "qgen_es", "judge",
         lambda tmp: params(tmp, "qgen_es", ["judge.ratings=" + str(write(tmp / "ratings.jsonl", json.dumps(
             {"mode": "fine_tuned", "id": "T#0", "item": 1, "text": "¿Qué?", "usable": "sí"}) + "\n"))]),
         ("ratings.jsonl", "line 1: expected an object with a boolean 'usable'"), "qgen_es_judge"),
    Case("qgen_es-judge-dictionary-missing", "qgen_es", "judge",
         lambda tmp: params(tmp, "qgen_es", [f"judge.spelling.dictionary={tmp / 'es_XX'}"]),
         ("es_XX.dic", "Spanish dictionary not found", "hunspell-es"), "qgen_es_judge"),
    # ------------------------------------------------------------------------- rag
    Case("rag-download-checksum-mismatch", "rag", "download",
         lambda tmp: rag_params(tmp, sums_mismatch(tmp, "bash_manpage_es.txt",
                                                   (SHARED / "bash_manpage_es.txt").read_bytes()[:2000]) / "bash_manpage_es.txt"),
         ("bash_manpage_es.txt", "sha256 mismatch", expected_sha("bash_manpage_es.txt")), "rag_download"),
    Case("rag-download-corpus-folder-without-text", "rag", "download",
         lambda tmp: rag_params(tmp, write(tmp / "corpus" / "scan.pdf", b"%PDF-1.4").parent),
         ("corpus: corpus folder has no text files",), "rag_download"),
    Case("rag-clean-corpus-invalid-utf8", "rag", "clean",
         lambda tmp: rag_downloaded(tmp, "La orden alias.\n\nAño y señal.\n".encode("latin-1")),
         ("manual.txt", "not valid UTF-8"), "rag_clean"),
    Case("rag-clean-corpus-empty", "rag", "clean",
         lambda tmp: rag_downloaded(tmp, b"\n\n   \n"),
         ("manual.txt", "corpus is empty"), "rag_clean"),
    Case("rag-clean-questions-truncated-jsonl", "rag", "clean",
         lambda tmp: rag_downloaded(tmp, questions="\n".join(bash_questions(2)) + "\n" + bash_questions(3)[2][:60]),
         ("q.jsonl:3", "invalid JSON"), "rag_clean"),
    Case("rag-clean-question-missing-field", "rag", "clean",
         lambda tmp: rag_downloaded(tmp, questions=json.dumps({"id": "q1", "evidence": ["alias"]}) + "\n"),
         ("q.jsonl", "row 1", "field 'question' missing"), "rag_clean"),
    Case("rag-clean-question-set-not-downloaded", "rag", "clean",
         lambda tmp: add_question_set(rag_downloaded(tmp), "later"),
         ("data/rag/raw", "question set 'later' missing", "re-run the download stage"), "rag_clean"),
    Case("rag-chunk-overlap-not-below-size", "rag", "chunk",
         lambda tmp: rag_params(tmp, NEGATIVES, edit=lambda b: _set(b, "collections.bash-w300.overlap", 300)),
         ("collections.bash-w300.overlap", "< size (300); got 300"), "rag_chunk"),
    Case("rag-chunk-set-unknown-collection", "rag", "chunk",
         lambda tmp: (rag_params(tmp, NEGATIVES), ["--set", "select=bash-w999"]),
         ("select: unknown collection 'bash-w999'",), "rag_chunk"),
    Case("rag-generate-top-k-zero", "rag", "generate",
         lambda tmp: rag_params(tmp, NEGATIVES, edit=lambda b: _set(b, "run.top_k", 0)),
         ("run.top_k: must be > 0",), "rag_generate_prompted"),
    Case("rag-embed-unknown-embedder-key", "rag", "embed",
         lambda tmp: (rag_chunks(tmp), rag_params(tmp, NEGATIVES, edit=lambda b: _set(b, "embedders.minilm.key", "minlm")))[1],
         ("embedders.minilm.key", "unknown packaged model 'minlm'"), "rag_embed"),
    Case("rag-embed-model-dir-without-weights", "rag", "embed",
         lambda tmp: (rag_chunks(tmp), rag_params(tmp, NEGATIVES, edit=lambda b: b["embedders"]["minilm"].update(
             source="path", path=str(broken_model(tmp)))))[1],
         ("minilm-no-weights", "model folder has no weights"), "rag_embed"),
]


def run(tmp: Path, task: str, stage: str, params_file: Path, extra: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", task, "--params", str(params_file), *extra],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, env=env_with_key(tmp))


def assert_no_key_anywhere(tmp: Path, *texts: str) -> None:
    for t in texts:
        assert FAKE_KEY not in t
    files = [p for p in tmp.rglob("*") if p.is_file()]
    for p in files:
        assert FAKE_KEY.encode() not in p.read_bytes(), f"the W&B key was written to {p}"


def test_matrix_spans_tasks_and_stages():
    assert len(CASES) >= 18 and len({c.id for c in CASES}) == len(CASES)
    assert {c.dvc.split("_")[0] if c.dvc else None for c in CASES} >= {"sentiment", "extractive", "instruct", "qgen", "rag"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, case):
    got = case.setup(tmp_path)
    params_file, extra = got if isinstance(got, tuple) else (got, [])
    before = files(tmp_path)
    proc = run(tmp_path, case.task, case.stage, params_file, extra)

    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-4000:]
    for needle in case.expect:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"

    for pattern in case.outputs:
        assert not list(tmp_path.glob(pattern)), f"declared output {pattern} left behind"
    assert not [p for p in tmp_path.rglob(".*.tmp")], "atomic_path temp dir left behind"
    assert files(tmp_path) - before == set(), "the failed stage created files"
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


# ------------------------------------------------------------------- beside the matrix
def test_repairable_answer_start_is_a_logged_repair(tmp_path):
    """The twin of extractive_qa-clean-answer-start-unrepairable: one offset 3 characters off is
    repaired, logged and counted; the two unrepairable answers are dropped; exit 0."""
    raw(tmp_path, "extractive_qa", SQUAD_FILE, squad([qa("off_by_3", 25), *UNREPAIRABLE]))
    proc = run(tmp_path, "extractive_qa", "clean", params(tmp_path, "extractive_qa"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'repaired': 1" in proc.stdout and "'dropped_no_valid_answer': 2" in proc.stdout
    out = tmp_path / "data/extractive_qa"
    [row] = [json.loads(l) for l in (out / "clean.jsonl").read_text().splitlines()]
    assert row["id"] == "off_by_3" and row["answers"] == [{"text": "1856", "answer_start": 22}]
    stats = json.loads((out / "clean_stats.json").read_text())
    assert stats["answers"] == {"repaired": 1, "not_found": 1, "too_far": 1}
    assert stats["repair_examples"] == [{"id": "off_by_3", "reason": "repaired", "text": "1856", "from": 25, "to": 22}]


def test_successful_stage_with_offline_wandb_never_writes_the_key(tmp_path):
    """A real stage that starts an offline W&B run (sentiment baselines, TF-IDF only: no model
    load), the fake key in the environment and also reachable from the config through an
    `${oc.env:...}` interpolation: the run is recorded, the key is nowhere."""
    sentiment_split(tmp_path)
    p = params(tmp_path, "sentiment", ["baselines.prompting.enabled=false"],
               lambda b: _set(b, "task.description", "owner ${oc.env:WANDB_API_KEY}"))
    proc = run(tmp_path, "sentiment", "baselines", p)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "metrics/sentiment/baselines.json").exists()
    runs = list((tmp_path / "wandb_runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = {p.name for p in runs[0].rglob("*") if p.is_file()}
    assert any(f.endswith(".wandb") for f in files) and "debug.log" in files, files
    # the run's config holds the masked interpolation, and the data went in (not an empty run)
    record = next(runs[0].glob("*.wandb")).read_bytes()
    assert b"owner ***" in record and b"tfidf/test/macro_f1" in record
    assert_no_key_anywhere(tmp_path, proc.stdout, proc.stderr)


def test_scrub_masks_secret_names_and_env_values(monkeypatch):
    from pipelines.core.tracking import _scrub

    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    cfg = {"model": {"key": "minilm", "hub_token": "abc", "max_new_tokens": 8},
           "api_key": "k", "notes": ["see hf_" + "x" * 30], "sft": {"distinct_pad_token": True}}
    assert _scrub(cfg) == {"model": {"key": "minilm", "hub_token": "***", "max_new_tokens": 8},
                           "api_key": "***", "notes": ["see ***"], "sft": {"distinct_pad_token": True}}


def test_trust_remote_code_false_unless_set_then_one_warning(monkeypatch, capsys):
    """Every base-model load gets trust_remote_code explicitly: False by default; when a model
    config sets it, True and one warning line naming the model, however many loads."""
    import transformers

    from pipelines.core import models
    from pipelines.core.config import compose
    from pipelines.sentiment.model import _tokenizer

    calls = []
    real = transformers.AutoTokenizer.from_pretrained

    def spy(path, *args, **kw):
        calls.append(kw)
        return real(path, *args, **kw)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    monkeypatch.setattr(models, "_REMOTE_CODE_WARNED", set())
    base = [f"paths.base_models={BASE_MODELS}"]

    _tokenizer(compose("sentiment", base))
    assert calls[-1]["trust_remote_code"] is False
    assert "trust_remote_code" not in capsys.readouterr().err

    cfg = compose("sentiment", [*base, "model.trust_remote_code=true"])
    for _ in range(2):
        _tokenizer(cfg)
        assert calls[-1]["trust_remote_code"] is True
    assert models.load_kwargs(cfg.model)["trust_remote_code"] is True
    err = [l for l in capsys.readouterr().err.splitlines() if "trust_remote_code" in l]
    assert err == ["warning: model: trust_remote_code=True runs code from minilm"]

    # the rag embedders share the helper, each named by its config key
    rag = compose("rag", ["experiment=rag_study_hub"])
    assert [k for k, m in rag.embedders.items() if models.trust_remote_code(m, f"embedders.{k}")] == ["jina-es"]
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: embedders.jina-es: trust_remote_code=True runs code from {rag.embedders['jina-es'].hub_id}"]
