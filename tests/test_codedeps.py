"""dvc.yaml's code deps are closed under import: a stage re-runs when any of our modules it runs changes."""
from __future__ import annotations

import ast
import textwrap

import pytest

from pipelines.core import codedeps
from pipelines.core.config import PROJECT_ROOT

pytestmark = pytest.mark.fast


def test_every_stage_lists_the_code_it_runs():
    gaps = codedeps.missing()
    assert not gaps, "stages miss code deps (fix: python -m pipelines.core.codedeps --fix):\n" + "\n".join(
        f"  {s}: {' '.join(f)}" for s, f in gaps.items())


def test_no_stage_lists_code_it_no_longer_runs():
    extra = codedeps.stale()
    assert not extra, "stale code deps re-run stages for nothing (fix: python -m pipelines.core.codedeps --fix):\n" + \
        "\n".join(f"  {s}: {' '.join(f)}" for s, f in extra.items())


def test_exempt_modules_exist_and_package_markers_hold_no_code():
    exempt = codedeps.plumbing()
    assert exempt and all(why for why in exempt.values()), "every exemption says why"
    for path in exempt:
        assert (PROJECT_ROOT / path).is_file(), path
        if path.endswith("__init__.py"):
            body = ast.parse((PROJECT_ROOT / path).read_text()).body
            assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), \
                f"{path} is exempt as a package marker but holds code"


def test_closure_follows_function_level_and_relative_imports(tmp_path):
    """A fake tree: a stage whose function-level relative import reaches a third module."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "go.py").write_text("from pipelines.core.a import run\n")
    core = tmp_path / "pipelines" / "core"
    core.mkdir(parents=True)
    for pkg in (tmp_path / "pipelines", core):
        (pkg / "__init__.py").write_text("")
    (core / "a.py").write_text(textwrap.dedent("""
        import json

        def run():
            from . import b
            from .c import helper
            return b, helper, json
    """))
    (core / "b.py").write_text("")
    (core / "c.py").write_text("from pipelines.core import b\n")
    (core / "unused.py").write_text("")
    got = {str(p.relative_to(tmp_path)) for p in codedeps.closure(["stages.go"], tmp_path)}
    assert got == {"stages/__init__.py", "stages/go.py", "pipelines/__init__.py", "pipelines/core/__init__.py",
                   "pipelines/core/a.py", "pipelines/core/b.py", "pipelines/core/c.py"}


def test_a_task_stage_runs_its_function_module_and_config():
    roots = codedeps.stage_roots("python -m stages.finetune sentiment")
    files = {str(p.relative_to(PROJECT_ROOT)) for p in codedeps.closure(roots)}
    # the LoRA target presets live in core/models.py, reached only through the stage function's module
    assert {"stages/finetune.py", "pipelines/sentiment/config.py", "pipelines/sentiment/model.py",
            "pipelines/core/models.py", "pipelines/core/stage.py"} <= files
