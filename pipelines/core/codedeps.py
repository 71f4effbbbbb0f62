"""Which of our own modules each DVC stage runs, so that dvc.yaml's code deps are closed under import.

    python -m pipelines.core.codedeps          # list missing (and stale) code deps per stage; exit 1 if any
    python -m pipelines.core.codedeps --fix    # add the missing ones to the stages' `deps:`, drop the stale

A stage's code is the `stages/<name>.py` its command runs plus, for task stages, the task's spec,
the module holding the stage function and the task's config module (all imported by name at run
time, which no import statement shows; a stage over all tasks reads every spec). From there every
`import` is followed (function-level ones included) through `pipelines/` and `stages/`, with the
`__init__.py` of each package on the way. A listed folder covers its files. Modules that cannot
change any output are exempted in `dvc-plumbing.txt` (one path a line, `# why`). Not a stage
dependency itself: no stage imports it.
"""
from __future__ import annotations

import ast
import re
import shlex
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OWN = ("pipelines", "stages")
PLUMBING_FILE = ROOT / "dvc-plumbing.txt"


def _module_file(name: str, root: Path = ROOT) -> Path | None:
    parts = name.split(".")
    if parts[0] not in OWN:
        return None
    base = root.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _packages(name: str) -> list[str]:
    """`a.b.c` -> ["a", "a.b"]: the packages whose __init__ runs before a.b.c."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def imports_of(path: Path, root: Path = ROOT) -> frozenset[str]:
    """Our modules that `path` imports anywhere in its body."""
    rel = path.relative_to(root).with_suffix("")
    pkg = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(pkg[: len(pkg) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            # `from pkg import name`: a submodule if such a file exists, else a name in pkg
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if _module_file(name, root) is not None:
                found.add(name)
    return frozenset(found)


def closure(roots: list[str], root: Path = ROOT) -> set[Path]:
    """Files of every own module reachable from the `roots` modules (packages' __init__ included)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or _module_file(name, root) is None:
            continue
        seen.add(name)
        todo.extend(_packages(name))
        todo.extend(imports_of(_module_file(name, root), root))
    return {_module_file(n, root) for n in seen}


def stage_roots(cmd: str) -> list[str]:
    """The modules a `python -m stages.<name> [task]` command runs."""
    argv = shlex.split(cmd)
    if argv[:2] != ["python", "-m"] or not argv[2].startswith("stages."):
        return []
    roots = [argv[2]]
    task = argv[3].removeprefix("task=") if len(argv) > 3 and not argv[3].startswith("$") else None
    from . import registry

    if task:
        # its spec, the schema's module and the stage function's module (registry.py)
        roots += registry.get(task).stage_modules(argv[2].split(".", 1)[1])
    elif ROOT / "pipelines/core/registry.py" in closure(roots):
        roots += registry.spec_modules()  # a stage over all tasks (stages.index) reads every spec
    return roots


def _expand(dvc: dict) -> dict[str, dict]:
    """dvc.yaml stages with `foreach` collapsed to one entry (deps do not depend on the item)."""
    out = {}
    for name, st in dvc["stages"].items():
        out[name] = st.get("do", st)
    return out


def plumbing(root: Path = ROOT) -> dict[str, str]:
    """Exempted paths -> why."""
    path = root / PLUMBING_FILE.name
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry, _, why = line.partition("#")
        if entry.strip():
            out[entry.strip()] = why.strip()
    return out


def _stage_code(root: Path):
    """(stage, its deps, the own code files it runs) for every dvc.yaml stage."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    for name, st in _expand(dvc).items():
        roots = stage_roots(re.sub(r"\$\{[^}]*\}", "$X", st["cmd"]))
        yield name, [str(d) for d in st.get("deps", [])], {str(p.relative_to(root)) for p in closure(roots, root)}


def missing(root: Path = ROOT) -> dict[str, list[str]]:
    """dvc stage -> own code files it runs that are neither among its deps nor exempted."""
    exempt = plumbing(root)
    gaps = {}
    for name, deps, need in _stage_code(root):
        lacking = [f for f in sorted(need) if f not in exempt
                   and not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
        if lacking:
            gaps[name] = lacking
    return gaps


def stale(root: Path = ROOT) -> dict[str, list[str]]:
    """dvc stage -> listed own .py deps it no longer runs (they would re-run it for nothing)."""
    out = {}
    for name, deps, need in _stage_code(root):
        extra = [d for d in deps if d.endswith(".py") and d.split("/")[0] in OWN and d not in need]
        if extra:
            out[name] = extra
    return out


def fix(gaps: dict[str, list[str]], extra: dict[str, list[str]], root: Path = ROOT) -> None:
    """Append missing deps to each stage's `deps:` list in dvc.yaml and drop stale ones, keeping its
    layout and comments."""
    path = root / "dvc.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    out, stage, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^  (\w[\w-]*):\s*$", line)
        if m:
            stage = m.group(1)
        out.append(line)
        dm = re.match(r"^(\s+)deps:\s*$", line)
        if dm and (stage in gaps or stage in extra):
            # keep the existing entries but the stale ones, then add ours with the same indentation
            i += 1
            indent = None
            while i < len(lines) and re.match(r"^\s+- ", lines[i]):
                indent = indent or lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                if lines[i].strip()[2:] not in extra.get(stage, ()):
                    out.append(lines[i])
                i += 1
            out.extend(f"{indent}- {f}\n" for f in gaps.get(stage, ()))
            continue
        i += 1
    path.write_text("".join(out), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gaps, extra = missing(), stale()
    if "--fix" in argv and (gaps or extra):
        fix(gaps, extra)
        gaps, extra = missing(), stale()
    for stage, files in gaps.items():
        print(f"{stage}: missing {' '.join(files)}")
    for stage, files in extra.items():
        print(f"{stage}: not run (stale) {' '.join(files)}")
    return 1 if gaps or extra else 0


if __name__ == "__main__":
    sys.exit(main())
