"""One page across tasks: `reports/index.html`.

    python -m stages.index [--root .] [--out <root>/reports/index.html]

The page links every task's own report (`reports/<task>/index.html`), shows each task's
headline numbers (or that it has not run yet) and a cross-experiment table: the workspace run,
every DVC experiment and every Hydra run / multirun job found. It is built with the helpers of
`report.py`, so it is self-contained, makes no network request and has the same bytes for the
same inputs (no timestamps, no absolute paths; links are relative to `reports/`).

DVC experiments are read from their git refs with git plumbing rather than `dvc exp show`: this
runs as a DVC stage, and calling dvc from inside `dvc repro` would contend for the repo lock.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from . import report as H
from .config import TASKS
from .errors import PipelineError
from .io import write_text

# Each task's headline (spec.test_metric: a file under metrics/<task>/ and a key path), its key
# metrics (label, key path in that file: a few more numbers worth a glance; the task's own page
# has the rest) and its comparison table come from its spec (pipelines/core/registry.py).
# Missing keys show as "—", so an older eval.json still renders.
WHAT_RAN = ("model", "method", "format", "generator", "variant")  # top-level eval.json strings
MAX_CHANGES = 5  # params changes shown before the rest fold into "+N more"
# DVC names an experiment ref refs/exps/<2 hex of baseline>/<rest of baseline sha>/<exp name>
# (dvc/repo/experiments/refs.py); stash/apply/exec/celery/temp refs under refs/exps are not exps.
EXP_REF = re.compile(r"refs/exps/([0-9a-f]{2})/([0-9a-f]{38}|[0-9a-f]{62})/([^/]+)")


def _json(data: bytes, where: str) -> dict:
    """Parse a metrics file; anything but a JSON object is bad input naming `where`."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise PipelineError(f"{where}: not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise PipelineError(f"{where}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(obj, dict):
        raise PipelineError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _yaml(data: bytes, where: str) -> Any:
    try:
        return yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise PipelineError(f"{where}: invalid YAML: {' '.join(str(e).split())}") from None


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None  # missing = not run yet, not an error


def _dig(obj: Any, keys) -> Any:
    for k in keys.split(".") if isinstance(keys, str) else keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def headline(task: str, ev: dict | None) -> Any:
    return None if ev is None else TASKS[task].test_metric.read(ev)


def headline_label(task: str) -> str:
    return TASKS[task].test_metric.label


def _file(task: str) -> str:
    """The headline's file, relative to the project."""
    return f"metrics/{task}/{TASKS[task].test_metric.file}"


# ------------------------------------------------------------------------------------- git
def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes | None:
    """stdout of a git command run in `root`, or None when there is no git or no repository."""
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True)
    except FileNotFoundError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def _blobs(root: Path, specs: list[str]) -> dict[str, bytes | None]:
    """Contents of `<rev>:<path>` objects in one `git cat-file --batch` call (None = missing)."""
    out = _git(root, "cat-file", "--batch", stdin="".join(s + "\n" for s in specs).encode()) if specs else None
    if out is None:
        return dict.fromkeys(specs)
    found: dict[str, bytes | None] = {}
    pos = 0
    for spec in specs:  # answers come back in request order
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            found[spec] = out[pos:pos + size]
            pos += size + 1
        else:  # "<spec> missing" (or a tree / ambiguous name): the exp has no such file
            found[spec] = None
    return found


# --------------------------------------------------------------------------- table rows
@dataclass
class Row:
    source: str  # workspace | dvc exp | hydra run | hydra multirun
    name: str
    baseline: str = ""
    changes: list[str] = field(default_factory=list)  # params changed / Hydra overrides
    metrics: dict[str, Any] = field(default_factory=dict)  # task -> headline value
    link: str = ""  # relative to reports/: that run's own report page


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node} if prefix else {}


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def params_changes(params: Any, workspace: Any) -> list[str]:
    """`key=value` for every params.yaml leaf that differs from the workspace's (sorted)."""
    a, b = _flatten(params or {}), _flatten(workspace or {})
    return [f"{k}={_short(a[k])}" if k in a else f"{k} (absent)"
            for k in sorted(set(a) | set(b)) if a.get(k, object()) != b.get(k, object())]


def dvc_experiments(root: Path, workspace_params: Any) -> tuple[list[Row], str]:
    """One row per experiment ref, with its params diff and each task's headline metric."""
    prefix = _git(root, "rev-parse", "--show-prefix")  # a DVC project may sit in a git subdir
    if prefix is None:
        return [], "No git repository here: DVC experiments are not listed."
    prefix_s = prefix.decode().strip()
    listing = _git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/") or b""
    exps = []
    for line in listing.decode().splitlines():
        sha, ref = line.split(" ", 1)
        m = EXP_REF.fullmatch(ref)
        if m:
            exps.append((m.group(3), m.group(1) + m.group(2), sha, ref))
    files = ["params.yaml"] + [_file(t) for t in TASKS]
    blobs = _blobs(root, [f"{sha}:{prefix_s}{f}" for _, _, sha, _ in exps for f in files])
    rows = []
    for name, baseline, sha, ref in sorted(exps):
        def blob(f: str) -> bytes | None:
            return blobs[f"{sha}:{prefix_s}{f}"]

        params = blob("params.yaml")
        row = Row("dvc exp", name, baseline[:7])
        row.changes = (params_changes(_yaml(params, f"{ref}:params.yaml"), workspace_params)
                       if params is not None else ["(no params.yaml)"])
        for t in TASKS:
            data = blob(_file(t))
            if data is not None:
                row.metrics[t] = headline(t, _json(data, f"{ref}:{_file(t)}"))
        rows.append(row)
    note = "" if rows else "No DVC experiments found (refs/exps is empty): run `dvc exp run` to add some."
    return rows, note


def _run_dirs(root: Path):
    """Hydra job dirs under runs/ and multirun/: each holds .hydra/ (and params.yaml once started)."""
    for top in ("runs", "multirun"):
        for dirpath, dirnames, filenames in os.walk(root / top):
            if ".hydra" in dirnames or "params.yaml" in filenames:
                dirnames[:] = []  # a job's outputs hold no further jobs: don't walk them
                yield top, Path(dirpath)


def hydra_runs(root: Path) -> list[Row]:
    rows = []
    for top, job in _run_dirs(root):
        rel = job.relative_to(root).as_posix()
        params = _read(job / "params.yaml")
        params = _yaml(params, f"{rel}/params.yaml") if params is not None else None
        # the run's params.yaml is {task: block}; before it exists the path says runs/<task>/...
        task = next((k for k in params if k in TASKS), None) if isinstance(params, dict) else None
        task = task or next((p for p in Path(rel).parts[1:2] if p in TASKS), "?")
        overrides = _read(job / ".hydra" / "overrides.yaml")
        overrides = _yaml(overrides, f"{rel}/.hydra/overrides.yaml") if overrides is not None else []
        if not isinstance(overrides, list):
            raise PipelineError(f"{rel}/.hydra/overrides.yaml: expected a list of overrides")
        row = Row("hydra " + ("multirun" if top == "multirun" else "run"), rel,
                  changes=[str(o) for o in overrides if not str(o).startswith("task=")])
        if task in TASKS:
            data = _read(job / _file(task))
            if data is not None:
                row.metrics[task] = headline(task, _json(data, f"{rel}/{_file(task)}"))
            if (job / "reports" / task / "index.html").is_file():
                row.link = quote(f"../{rel}/reports/{task}/index.html")
        rows.append(row)
    return sorted(rows, key=lambda r: r.name)


# ------------------------------------------------------------------------------- the page
def _changes_cell(changes: list[str]) -> H.Raw:
    code = [f"<code>{H.esc(c)}</code>" for c in changes]
    if len(code) <= MAX_CHANGES:
        return H.Raw("<br>".join(code) or "—")
    rest = H.details(f"+{len(code) - MAX_CHANGES} more", "<br>".join(code[MAX_CHANGES:]))
    return H.Raw("<br>".join(code[:MAX_CHANGES]) + rest)


def experiments_table(rows: list[Row]) -> str:
    headers = ["source", "name", "baseline", "params changed / overrides",
               *(f"{t}: {TASKS[t].test_metric.keys[-1]}" for t in TASKS)]
    body = []
    for r in rows:
        name = H.Raw(f'<a href="{r.link}">{H.esc(r.name)}</a>') if r.link else r.name
        body.append([r.source, name, r.baseline or "—", _changes_cell(r.changes),
                     *(r.metrics.get(t) for t in TASKS)])
    return H.table(headers, body)


def task_section(root: Path, task: str, ev: dict | None, description: str) -> str:
    parts = [H.p(description, "muted")] if description else []
    label = headline_label(task)
    if ev is None:
        parts.append(f'<p class="na">not run yet: no {_file(task)} '
                     f'(<code>dvc repro {task}_report</code>)</p>')
    else:
        parts.append(f'<p class="lead">{H.esc(label)}: <strong>{H.esc(H.fmt(headline(task, ev)))}</strong></p>')
        ran = [f"{k} {ev[k]}" for k in WHAT_RAN if isinstance(ev.get(k), str)]
        if ran:
            parts.append(H.p(" · ".join(ran), "muted"))
        parts.append(H.table(["metric", "value"], [(lbl, _dig(ev, key)) for lbl, key in TASKS[task].key_metrics]))
        parts.append(_comparison(root, task, ev))
    if (root / "reports" / task / "index.html").is_file():
        parts.append(f'<p><a class="task-link" href="{task}/index.html">Full {H.esc(task)} report →</a></p>')
    else:
        parts.append(f'<p class="na">full report not generated yet (reports/{task}/index.html)</p>')
    return "\n".join(p for p in parts if p)


def _comparison(root: Path, task: str, ev: dict) -> str:
    """The run against its baselines on the headline metric, or the spec's own table (rag: the best
    retriever of each kind)."""
    spec = TASKS[task]
    if spec.comparison is not None:
        c = spec.comparison
        entries = ev.get(c.key) if isinstance(ev.get(c.key), dict) else {}
        rows = [(k, *(_dig(v, [key]) for _, key in c.columns)) for k, v in entries.items()]
        return H.h3(c.title) + H.table([c.row_header, *(h for h, _ in c.columns)], rows) if rows else ""
    data = _read(root / "metrics" / task / "baselines.json")
    if data is None:
        return ""
    baselines = _json(data, f"metrics/{task}/baselines.json")
    metric = spec.test_metric
    rows = [("fine-tuned (this run)", metric.read(ev))] + [(n, metric.read(b)) for n, b in baselines.items()]
    return H.h3("Against the baselines") + H.table(["method", metric.label], rows)


def build(root: Path) -> str:
    root = Path(root)
    params_data = _read(root / "params.yaml")
    workspace = _yaml(params_data, "params.yaml") if params_data is not None else {}
    workspace = workspace if isinstance(workspace, dict) else {}
    evals = {}
    for t in TASKS:
        data = _read(root / _file(t))
        evals[t] = _json(data, _file(t)) if data is not None else None

    head = _git(root, "rev-parse", "--short=7", "HEAD")
    rows = [Row("workspace", "workspace", head.decode().strip() if head else "",
                metrics={t: headline(t, ev) for t, ev in evals.items() if ev is not None})]
    exps, exp_note = dvc_experiments(root, workspace)
    runs = hydra_runs(root)
    rows += exps + runs

    done = sum(ev is not None for ev in evals.values())
    page = H.Page(
        title="tunedag: all tasks",
        subtitle="Each task's headline results with a link to its full report, and every experiment found "
                 "(DVC experiments in refs/exps, Hydra runs in runs/ and multirun/).",
        lead=f"{done} of {len(TASKS)} tasks have results · {len(exps)} DVC experiments · {len(runs)} Hydra runs",
    )
    for t in TASKS:
        description = _dig(workspace, [t, "task", "description"])
        page.add(t, task_section(root, t, evals[t], description if isinstance(description, str) else ""),
                 anchor=t)
    page.add("Cross-experiment table", experiments_table(rows),
             H.p("Each task column is that task's headline metric; — means the run has no metrics for it. "
                 "DVC experiments list the params.yaml keys that differ from the workspace's; Hydra runs "
                 "list their command-line overrides.", "muted"),
             H.p(exp_note, "muted") if exp_note else "", anchor="experiments")
    return page.render()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.index", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=".", help="project directory to read (default: .)")
    parser.add_argument("--out", help="page to write (default: <root>/reports/index.html; its links "
                                      "assume it lives in reports/)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    out = Path(args.out) if args.out else root / "reports" / "index.html"
    try:
        write_text(out, build(root))
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"[report_index] wrote {out}", file=sys.stderr)
