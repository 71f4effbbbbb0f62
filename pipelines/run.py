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
import subprocess
import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pipelines.core.config import PROJECT_ROOT, TASKS, register_schemas, to_plain
from pipelines.core.params import package_models


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"stage failed ({proc.returncode}): {' '.join(cmd)}")


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
    block = to_plain(cfg)
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump({task: block}, sort_keys=False, allow_unicode=True))
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


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
