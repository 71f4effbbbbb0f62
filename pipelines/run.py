"""Run one task end to end from a Hydra-composed config (outside `dvc repro`).

    python -m pipelines.run task=sentiment peft.r=4 model=mpnet
    python -m pipelines.run -m task=sentiment peft.r=4,8 peft.lora_alpha=16,32 peft.targets=qv,qkv model=minilm,mpnet
    python -m pipelines.run task=sentiment model=deberta-v3-base train=encoder_gpu train.dry_run=true

Each run gets its own directory (runs/<task>/<time>/, or multirun/<task>/<time>/<n>/ for a
sweep) holding its resolved params.yaml and every output, so a sweep never overwrites the
DVC-tracked default outputs. Stages run as subprocesses exactly as `dvc repro` runs them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pipelines.core import scrub  # captures the secret env values at process start
from pipelines.core.config import PROJECT_ROOT, TASKS, register_schemas, to_plain
from pipelines.core.params import package_models


class StageFailed(Exception):
    def __init__(self, cmd: list[str], returncode: int):
        super().__init__(f"{cmd[2]}: failed with exit code {returncode}")
        self.returncode = returncode


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT)
    if proc.returncode != 0:
        raise StageFailed(cmd, proc.returncode)


_RUN_DIR: list[Path] = []  # the run dir this job created (removed if the job fails)


def params_block(cfg: DictConfig) -> dict:
    """The resolved block as the stages read it, minus secrets: a value holding a secret (say
    `task.description=${oc.env:WANDB_API_KEY}`) is written as its unresolved interpolation, which
    each stage resolves again from the environment it inherits; a secret typed literally (or a
    secret-named key that is no interpolation) is written as *** (pass secrets through the env)."""
    from omegaconf import OmegaConf

    def walk(resolved, raw, name=""):
        if isinstance(resolved, dict):
            raw = raw if isinstance(raw, dict) else {}
            return {k: walk(v, raw.get(k), str(k)) for k, v in resolved.items()}
        if isinstance(resolved, list):
            raw = raw if isinstance(raw, list) and len(raw) == len(resolved) else [None] * len(resolved)
            return [walk(v, r) for v, r in zip(resolved, raw)]
        if isinstance(resolved, str) and (scrub.holds_secret(resolved) or (scrub.secret_name(name) and resolved)):
            if isinstance(raw, str) and "${" in raw and not scrub.holds_secret(raw):
                return raw
            return scrub.MASK
        return resolved

    return walk(to_plain(cfg), OmegaConf.to_container(cfg, resolve=False))


register_schemas()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    task = cfg.task.name
    spec = TASKS[task]  # stage order (the DVC graph, linearised), dry-run stage, headline metric
    out = Path(HydraConfig.get().runtime.output_dir).resolve()
    cfg.paths.root = str(out)
    cfg.paths.base_models = str((PROJECT_ROOT / cfg.paths.base_models).resolve())
    if not Path(cfg.data.root).is_absolute():
        cfg.data.root = str((PROJECT_ROOT / cfg.data.root).resolve())
    # one W&B group per run / sweep: <task>-run-<time> or <task>-multirun-<time> (jobs of a sweep together)
    hc = HydraConfig.get()
    mode = hc.mode.name.lower()
    cfg.tracking.group = f"{cfg.tracking.group}-{mode}-{Path(hc.sweep.dir if mode == 'multirun' else hc.run.dir).name}"
    _RUN_DIR.append(out)
    for f in (out / ".hydra").glob("*.yaml"):  # Hydra's copy of the command line: a key typed there
        f.write_text(scrub.scrub_text(f.read_text(encoding="utf-8")), encoding="utf-8")
    block = to_plain(cfg)
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump({task: params_block(cfg)}, sort_keys=False, allow_unicode=True))
    py = sys.executable
    if cfg.train.dry_run:
        _run([py, "-m", f"stages.{spec.dry_run_stage}", task, "--params", str(params), "--dry-run"])
        return None
    needed: set[str] = set()
    package_models(block, needed)
    for key in sorted(needed):
        if not (Path(cfg.paths.base_models) / key / "config.json").exists():
            _run([py, "-m", "stages.download_models", key, "--out", cfg.paths.base_models])
    for stage in spec.stage_names:
        _run([py, "-m", f"stages.{stage}", task, "--params", str(params)])
    headline = spec.test_metric  # what a sweep optimises / prints
    metrics = out / cfg.paths[headline.folder] / headline.file
    if not metrics.exists():
        return None
    import json

    value = json.loads(metrics.read_text())
    for k in headline.keys:
        value = value[k]
    return value


def _one_line(e: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line ("Could not find 'model/nope'";
    available options appended)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    head, rest = lines[0], lines[1:]
    if rest and rest[0].startswith("Available options"):
        options = [x for x in rest[1:] if not x.startswith(("Config search path", "provider="))]
        head += f" ({rest[0].rstrip(':').lower()}: {', '.join(options)})"
    key = getattr(e, "full_key", None)
    return f"{key}: {head}" if key and not head.startswith(str(key)) else head


class _QuietHydra:
    """stderr without Hydra's "Error executing job with overrides: [...]" line, which it writes
    after a failed job, i.e. after the stage's own `error:` line (that must stay the last)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return len(text) if text.startswith("Error executing job with overrides:") else self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _remove_run_dirs() -> None:
    for d in _RUN_DIR:
        shutil.rmtree(d, ignore_errors=True)


def cli() -> None:
    """`main` under the bad-input contract: a config Hydra or OmegaConf rejects, or a stage that
    fails, ends with one `error:` line on stderr and exit code 2 (a stage's own error line is
    already the last one it printed); a failed job's run dir is removed. A stage that crashed
    (a bug) keeps its exit code and traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from pipelines.core.errors import PipelineError

    os.environ["HYDRA_FULL_ERROR"] = "1"  # exceptions reach us instead of Hydra's printed report
    code, line = 0, None
    stderr, sys.stderr = sys.stderr, _QuietHydra(sys.stderr)
    try:
        main()
    except StageFailed as e:
        code = 2 if e.returncode == 2 else e.returncode
        line = None if e.returncode == 2 else f"error: {e}"
    except (HydraException, OmegaConfBaseException, PipelineError) as e:
        code, line = 2, f"error: {_one_line(e)}"
    except BaseException:
        _remove_run_dirs()
        raise
    finally:
        sys.stderr = stderr
    if code:
        _remove_run_dirs()
    if line:
        print(scrub.scrub_text(line), file=sys.stderr)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cli()
