"""The task registry (pipelines/core/registry.py): a sixth task defined only by its own files runs
through the real runner, and the five specs agree with stages/, their packages and dvc.yaml."""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pipelines.core import registry
from pipelines.core.config import PROJECT_ROOT, TASKS, task_schema
from pipelines.core.errors import PipelineError
from pipelines.core.registry import Metric, Stage, TaskSpec

# what a project copy needs to run stages and compose configs (no DVC, no data, no models)
COPY = ["pipelines", "stages", "conf", "dvc.yaml", "pyproject.toml"]
TEXT = "uno dos tres cuatro\ncinco seis siete ocho nueve\ndiez uno dos\n"  # 12 words, 10 distinct

# The sixth task, whole: its package (spec, schema, stage functions) and its conf/task file.
WORDCOUNT = {
    "pipelines/wordcount/__init__.py": '"""wordcount: words of a text file (a task defined by a test)."""\n',
    "pipelines/wordcount/spec.py": '''
        from pipelines.core.registry import Metric, Stage, TaskSpec

        SPEC = TaskSpec(
            name="wordcount",
            package=__package__,
            schema="config:WordcountConfig",
            stages=(Stage("clean", "count:clean"), Stage("evaluate", "count:evaluate", records_run_info=True)),
            test_metric=Metric("eval.json", ("test", "words")),
            validation_metric=None,
            key_metrics=(("distinct words", "test.distinct"),),
            dry_run_stage="clean",
        )
        ''',
    "pipelines/wordcount/config.py": '''
        from dataclasses import dataclass, field

        from pipelines.core.schema import PathsConfig, RuntimeConfig, TaskInfo, TrackingConfig


        @dataclass
        class WordcountData:
            root: str = "."
            file: str = "words.txt"
            min_len: int = 1  # shorter words are not counted


        @dataclass
        class WordcountTrain:
            dry_run: bool = False


        @dataclass
        class WordcountConfig:
            task: TaskInfo = field(default_factory=lambda: TaskInfo(name="wordcount"))
            paths: PathsConfig = field(default_factory=PathsConfig)
            data: WordcountData = field(default_factory=WordcountData)
            train: WordcountTrain = field(default_factory=WordcountTrain)
            tracking: TrackingConfig = field(default_factory=TrackingConfig)
            runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
        ''',
    "pipelines/wordcount/count.py": '''
        from pipelines.core.errors import PipelineError
        from pipelines.core.io import read_json, write_json
        from pipelines.core.paths import TaskPaths, project_relative


        def clean(cfg, run=None):
            src = project_relative(cfg.data.root) / cfg.data.file
            if not src.is_file():
                raise PipelineError(f"{src}: not found")
            words = [w for w in src.read_text(encoding="utf-8").split() if len(w) >= cfg.data.min_len]
            write_json(TaskPaths(cfg).data / "words.json", words)


        def evaluate(cfg, run=None):
            words = read_json(TaskPaths(cfg).data / "words.json")
            write_json(TaskPaths(cfg).metrics / "eval.json", {"test": {"words": len(words), "distinct": len(set(words))}})
        ''',
    "conf/task/wordcount.yaml": '''
        # @package _global_
        defaults:
          - /schema/wordcount
          - /tracking: disabled
          - _self_

        task:
          name: wordcount
          description: words of a text file

        data:
          root: corpus
        ''',
}


def _py(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True, env=env)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project plus the wordcount task's files; nothing of the copy is edited."""
    repo = tmp_path_factory.mktemp("sixth")
    for name in COPY:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    for rel, text in WORDCOUNT.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    (repo / "corpus").mkdir()
    (repo / "corpus/words.txt").write_text(TEXT)
    return repo


def _unchanged(repo: Path) -> None:
    """Every file that came from the project is byte-identical to the project's."""
    for name in COPY:
        src = PROJECT_ROOT / name
        files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        for f in files:
            rel = f.relative_to(PROJECT_ROOT)
            assert (repo / rel).read_bytes() == f.read_bytes(), rel


@pytest.mark.fast  # ~10 s: seven small subprocesses, no torch
def test_sixth_task_through_the_runner(project):
    # params.yaml regenerated by the real command: the new task's block comes last (order 100)
    _ok(_py(project, "-m", "pipelines.core.params"))
    doc = yaml.safe_load((project / "params.yaml").read_text())
    assert list(doc) == ["download", *TASKS, "wordcount"]
    assert doc["wordcount"]["data"] == {"root": "corpus", "file": "words.txt", "min_len": 1}
    assert doc["wordcount"]["tracking"]["mode"] == "disabled"

    # two stages as DVC would call them (default --params params.yaml)
    assert "[wordcount:clean] done" in _ok(_py(project, "-m", "stages.clean", "wordcount")).stderr
    assert json.loads((project / "data/wordcount/words.json").read_text()) == TEXT.split()
    _ok(_py(project, "-m", "stages.evaluate", "wordcount"))
    assert json.loads((project / "metrics/wordcount/eval.json").read_text()) == {"test": {"words": 12, "distinct": 10}}
    info = json.loads((project / "metrics/wordcount/run_info.json").read_text())  # the spec's records_run_info
    assert info["config"]["task"]["name"] == "wordcount" and info["config"]["data"]["min_len"] == 1

    # --set reaches the new schema; evaluate sees what clean wrote
    _ok(_py(project, "-m", "stages.clean", "wordcount", "--set", "data.min_len=4"))
    _ok(_py(project, "-m", "stages.evaluate", "wordcount"))
    longer = [w for w in TEXT.split() if len(w) >= 4]
    assert json.loads((project / "metrics/wordcount/eval.json").read_text())["test"] == {
        "words": len(longer), "distinct": len(set(longer))} == {"words": 8, "distinct": 8}

    # bad input: one error line, exit 2, nothing written
    def listing():
        return sorted(p.relative_to(project) for p in project.rglob("*") if "__pycache__" not in p.parts)

    before = listing()
    for args, message in (
            (["stages.clean", "wordcount", "--set", "data.nope=1"], "error: --set data.nope=1: wordcount.data.nope: "),
            (["stages.clean", "wordcount", "--set", "data.min_len=many"], "error: --set data.min_len=many: wordcount.data.min_len: "),
            (["stages.finetune", "wordcount"], "error: task 'wordcount' has no stage 'finetune'")):
        proc = _py(project, "-m", *args)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and last.startswith(message), proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
    assert listing() == before

    # the index page has a section for it, with its headline and key metric
    _ok(_py(project, "-m", "stages.index", "--root", "."))
    html = (project / "reports/index.html").read_text()
    section = html[html.index('<section id="wordcount">'):]
    section = section[:section.index("</section>")]
    assert "test.words: <strong>8</strong>" in section and "distinct words" in section
    assert "wordcount: words</th>" in html  # its column in the cross-experiment table

    # the Hydra route runs the spec's stages into its own run dir and returns the headline
    proc = _ok(_py(project, "-m", "pipelines.run", "task=wordcount", "hydra.run.dir=runs/t"))
    assert "stages.clean wordcount" in proc.stdout and "stages.evaluate wordcount" in proc.stdout
    ev = json.loads((project / "runs/t/metrics/wordcount/eval.json").read_text())
    assert ev == {"test": {"words": 12, "distinct": 10}}

    _unchanged(project)


# -------------------------------------------------------------------- the five specs
def _dvc_task_stages() -> dict[str, set[str]]:
    """task -> the stages dvc.yaml runs for it (`python -m stages.<stage> <task>`)."""
    found: dict[str, set[str]] = {}
    for name, st in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"].items():
        cmd = (st.get("do") or st)["cmd"]
        m = re.match(r"python -m stages\.(\w+)(?: (\S+))?", cmd)
        assert m, f"{name}: {cmd}"
        if m.group(2) in TASKS:
            found.setdefault(m.group(2), set()).add(m.group(1))
            assert name.startswith(f"{m.group(2)}_{m.group(1)}"), f"{name}: {cmd}"
    return found


def _top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.FunctionDef):  # stage functions: (cfg, run) — the runner passes its run
                names.add(f"{node.name}/{len(node.args.args)}")
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


@pytest.mark.fast
def test_task_order_is_the_projects():
    # params.yaml's block order and the index page follow it (`params --check` guards the former)
    assert list(TASKS) == ["sentiment", "extractive_qa", "instruct", "qgen_es", "rag"]
    assert len({s.order for s in TASKS.values()}) == len(TASKS)


@pytest.mark.fast
@pytest.mark.parametrize("task", list(TASKS))
def test_spec_matches_stages_package_and_dvc(task):
    spec = TASKS[task]
    assert spec.package == f"pipelines.{task}" and spec.name == task
    for stage in spec.stages:
        entry = PROJECT_ROOT / "stages" / f"{stage.name}.py"
        assert entry.is_file() and f'main("{stage.name}")' in entry.read_text(), entry
        module, fn = stage.target.split(":")
        # by AST: stage modules import torch and friends
        names = _top_level_names(PROJECT_ROOT / "pipelines" / task / f"{module}.py")
        assert fn in names, stage
        assert f"{fn}/1" not in names, f"{stage}: a stage function takes (cfg, run)"
    schema = task_schema(task)  # config modules are cheap to import
    assert dataclasses.is_dataclass(schema) and schema.__module__ == f"pipelines.{task}.config"
    assert _dvc_task_stages()[task] == set(spec.stage_names)
    # the runner's flags where the old name branches were
    assert [s.name for s in spec.stages if s.launchable] == (["finetune"] if "finetune" in spec.stage_names else [])
    assert [s.name for s in spec.stages if s.records_run_info] == ["evaluate"]


@pytest.mark.fast
@pytest.mark.parametrize("task", list(TASKS))
def test_metrics_name_keys_the_committed_files_hold(task):
    spec = TASKS[task]
    ev = json.loads((PROJECT_ROOT / "metrics" / task / spec.test_metric.file).read_text())
    assert isinstance(spec.test_metric.read(ev), (int, float))
    for label, key in spec.key_metrics:  # present (rag's citation rates are null when nothing cites)
        *parents, leaf = key.split(".")
        assert leaf in Metric("eval.json", tuple(parents)).read(ev), (label, key)
    if spec.validation_metric is not None:
        m = spec.validation_metric
        value = m.read(json.loads((PROJECT_ROOT / m.folder / task / m.file).read_text()))
        assert isinstance(value, float), (task, m)
    if spec.comparison is not None:
        entries = ev[spec.comparison.key]
        assert entries and all(key in row for row in entries.values() for _, key in spec.comparison.columns)


@pytest.mark.fast
def test_modules_imported_by_name():
    assert TASKS["qgen_es"].stage_modules("download") == ["pipelines.qgen_es.spec", "pipelines.qgen_es.config",
                                                          "pipelines.qgen_es.data"]
    assert TASKS["rag"].stage_modules("finetune") == ["pipelines.rag.spec", "pipelines.rag.config", "pipelines.rag.raft"]
    assert TASKS["rag"].stage_modules("evaluate") == ["pipelines.rag.spec", "pipelines.rag.config",
                                                      "pipelines.rag.evaluation"]
    assert registry.spec_modules() == [f"pipelines.{t}.spec" for t in TASKS]


@pytest.mark.fast
def test_reading_the_specs_imports_no_task_code():
    code = ("import sys; from pipelines.core import config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'numpy') "
            "or (m.startswith('pipelines.') and m.count('.') == 2 and not m.startswith('pipelines.core.') "
            "and not m.endswith('.spec'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.fast
def test_unknown_task_and_malformed_specs():
    with pytest.raises(PipelineError, match="unknown task 'sentimnt'; known tasks: extractive_qa, instruct"):
        registry.get("sentimnt")
    base = dict(name="t", package="pipelines.t", schema="config:TConfig", stages=(Stage("clean", "data:clean"),),
                test_metric=Metric("eval.json", ("test", "x")), validation_metric=None, dry_run_stage="clean")
    TaskSpec(**base)
    for change, problem in ((dict(dry_run_stage="finetune"), "dry_run_stage 'finetune' is not one of its stages"),
                            (dict(stages=(Stage("a", "m:f"), Stage("a", "m:g"))), "duplicate stage names"),
                            (dict(schema="config.TConfig"), "'config.TConfig' is not 'module:name'"),
                            (dict(test_metric=Metric("s.json", ("x",), folder="models")), "test_metric must be a file under metrics/"),
                            (dict(validation_metric=Metric("s.json", ("x",), goal="up")), "goal is max|min")):
        with pytest.raises(ValueError, match=re.escape(problem)):
            TaskSpec(**{**base, "dry_run_stage": "clean", **change})
