"""reports/index.html: one page across tasks and experiments, checked as bytes and in a real browser.

The scratch project holds the real metrics of two tasks, one DVC experiment ref made with git
plumbing (named the way DVC names them) and one Hydra multirun job dir.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from pipelines.core.config import PROJECT_ROOT, TASKS

CHROMIUM = Path("/usr/bin/chromium")
EXP_NAME = "tidy-lark"
EXP_MACRO_F1 = 0.8011
MULTIRUN = "multirun/sentiment/2026-01-02_03-04-05/1"
RUN_MACRO_F1 = 0.7654
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def _git(repo: Path, *args: str, stdin: str | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, **(env or {})})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def _copy(rel: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(PROJECT_ROOT / rel, dest)


def make_project(root: Path) -> Path:
    """sentiment + rag have run (real metrics), the other three have not."""
    root.mkdir()
    _copy("params.yaml", root / "params.yaml")
    for rel in ("metrics/sentiment/eval.json", "metrics/sentiment/baselines.json", "metrics/rag/eval.json",
                "reports/sentiment/index.html"):
        _copy(rel, root / rel)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "baseline")
    baseline = _git(root, "rev-parse", "HEAD")

    # a DVC experiment: a commit on top of the baseline, never checked out, under DVC's ref name
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sentiment"]["peft"]["r"] = 4
    ev = json.loads((root / "metrics/sentiment/eval.json").read_text())
    ev["test"]["macro_f1"] = EXP_MACRO_F1
    index = {"GIT_INDEX_FILE": str(root / ".git" / "exp-index")}
    _git(root, "read-tree", "HEAD", env=index)
    for path, text in (("params.yaml", yaml.safe_dump(params, sort_keys=False)),
                       ("metrics/sentiment/eval.json", json.dumps(ev, indent=2))):
        blob = _git(root, "hash-object", "-w", "--stdin", stdin=text)
        _git(root, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=index)
    tree = _git(root, "write-tree", env=index)
    exp = _git(root, "commit-tree", tree, "-p", baseline, "-m", "dvc: commit experiment")
    _git(root, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/{EXP_NAME}", exp)
    _git(root, "update-ref", "refs/exps/stash", exp)  # DVC's queue stash: not an experiment

    # a Hydra multirun job dir as pipelines.run leaves it (git-ignored in a real project)
    job = root / MULTIRUN
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- task=sentiment\n- peft.r=4\n- model=mpnet\n")
    (job / "params.yaml").write_text(yaml.safe_dump({"sentiment": params["sentiment"]}, sort_keys=False))
    ev["test"]["macro_f1"] = RUN_MACRO_F1
    (job / "metrics/sentiment").mkdir(parents=True)
    (job / "metrics/sentiment/eval.json").write_text(json.dumps(ev))
    (job / "reports/sentiment").mkdir(parents=True)
    (job / "reports/sentiment/index.html").write_text("<!DOCTYPE html><title>sentiment run</title>")
    return root


def run_index(root: Path, out: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "stages.index", "--root", str(root)] + (["--out", str(out)] if out else [])
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True)


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start:html.index("</section>", start)]


# ------------------------------------------------------------------------ no browser
def test_index_deterministic_not_run_yet_and_rows(tmp_path):
    a, b = make_project(tmp_path / "a"), tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b, symlinks=True)  # same inputs (git refs included) at another path
    for root in (a, b):
        proc = run_index(root)
        assert proc.returncode == 0, proc.stderr
    html = (a / "reports/index.html").read_text()
    assert (b / "reports/index.html").read_text() == html, "same inputs must give identical bytes"
    assert run_index(a).returncode == 0 and (a / "reports/index.html").read_text() == html
    assert str(tmp_path) not in html

    for task in ("extractive_qa", "instruct", "qgen_es"):
        assert "not run yet" in _section(html, task), task
    for task in ("sentiment", "rag"):
        assert "not run yet" not in _section(html, task), task
    assert 'href="sentiment/index.html"' in _section(html, "sentiment")
    assert "full report not generated yet" in _section(html, "rag")  # no reports/rag in the scratch project

    table = _section(html, "experiments")
    rows = table.split("<tr>")[2:]  # after the header row
    names = [re.sub(r"<[^>]+>", "", r.split("</td>")[1]) for r in rows]  # second column, tags dropped
    assert names == ["workspace", EXP_NAME, MULTIRUN]
    assert "stash" not in table
    exp_row, run_row = rows[1], rows[2]
    assert "<code>sentiment.peft.r=4</code>" in exp_row and exp_row.count("<code>") == 1
    assert f"{EXP_MACRO_F1:.3f}" in exp_row and f"{RUN_MACRO_F1:.3f}" in run_row
    assert "<code>peft.r=4</code><br><code>model=mpnet</code>" in run_row and "task=" not in run_row
    assert f'<a href="../{MULTIRUN}/reports/sentiment/index.html">{MULTIRUN}</a>' in run_row  # its own report


@pytest.mark.parametrize("bad", ["metrics/instruct/eval.json", f"{MULTIRUN}/metrics/sentiment/eval.json"])
def test_malformed_eval_json_is_a_one_line_error_naming_the_file(tmp_path, bad):
    root = make_project(tmp_path / "p")
    assert run_index(root).returncode == 0
    before = (root / "reports/index.html").read_bytes()
    (root / bad).parent.mkdir(parents=True, exist_ok=True)
    (root / bad).write_text('{"test": {"rouge_l": 0.5,,}}')
    proc = run_index(root)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: invalid JSON at line 1"), proc.stderr
    assert (root / "reports/index.html").read_bytes() == before, "a failed run must not touch the page"


def test_no_git_repository_still_renders(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    proc = run_index(root, tmp_path / "out.html")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "out.html").read_text()
    assert html.count("not run yet") == 5 and "No git repository here" in html


# --------------------------------------------------------------------------- browser
def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_index_page_in_headless_chromium(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's chromium "
                    "(`make test` installs it; or apt-get install --no-install-recommends chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e .[test] (pinned in pyproject.toml)")
    root = make_project(tmp_path / "p")
    proc = run_index(root)
    assert proc.returncode == 0, proc.stderr
    page_url = (root / "reports/index.html").resolve().as_uri()
    task_url = (root / "reports/sentiment/index.html").resolve().as_uri()
    shot = tmp_path / "index.png"

    requests, aborted, console = [], [], []

    def gate(route):  # only the page (and later the task page it links to) may load
        if route.request.url in (page_url, task_url):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    with sync_playwright() as pw, tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, viewport={"width": 1280, "height": 800},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            ctx.on("request", lambda r: requests.append(r.url))
            ctx.route("**/*", gate)
            page = ctx.new_page()
            page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
            page.goto(page_url, wait_until="load")
            page.screenshot(path=str(shot), full_page=True)

            assert page.title() == "tunedag: all tasks"
            assert page.locator("h1").inner_text() == "tunedag: all tasks"
            for task in TASKS:
                assert page.locator(f"section#{task} h2").inner_text().startswith(task)
                assert page.locator(f'nav.toc a[href="#{task}"]').count() == 1
            assert page.locator("section#extractive_qa .na").first.inner_text().startswith("not run yet")
            table = page.locator("section#experiments table")
            assert table.locator("tbody tr").count() == 3
            exp_row = table.locator("tr", has_text=EXP_NAME)
            assert "sentiment.peft.r=4" in exp_row.inner_text() and f"{EXP_MACRO_F1:.3f}" in exp_row.inner_text()
            run_row = table.locator("tr", has_text=MULTIRUN)
            assert "hydra multirun" in run_row.inner_text() and f"{RUN_MACRO_F1:.3f}" in run_row.inner_text()
            assert requests == [page_url], f"the page made requests beyond itself: {requests}"

            link = page.locator("section#sentiment a.task-link")
            assert link.get_attribute("href") == "sentiment/index.html"
            assert link.evaluate("a => a.href") == task_url
            link.click()
            page.wait_for_url(task_url)
            assert "sentiment" in page.title().lower()
        finally:
            ctx.close()

    assert requests == [page_url, task_url], requests
    assert not aborted and not console, (aborted, console)
    width, height = _png_size(shot)
    assert width == 1280 and height > 800 and shot.stat().st_size > 20_000, (width, height, shot.stat().st_size)
