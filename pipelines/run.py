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

from pipelines.core.config import PROJECT_ROOT, register_schemas, to_plain
from pipelines.core.params import package_models

# stage order per task family (the DVC graph, linearised)
STAGES: dict[str, list[str]] = {
    "sentiment": ["download", "clean", "split", "tokenize", "finetune", "evaluate", "baselines", "report"],
    "extractive_qa": ["download", "clean", "split", "tokenize", "finetune", "evaluate", "baselines", "report"],
    "instruct": ["download", "clean", "split", "tokenize", "finetune", "evaluate", "baselines", "report"],
    "qgen_es": ["download", "clean", "split", "tokenize", "finetune", "evaluate", "baselines", "report"],
    # every chunking and embedding of the config, then retrieval of all variants at once
    "rag": ["download", "clean", "chunk", "embed", "retrieve", "generate", "evaluate", "report"],
}
# the stage whose --dry-run prints a task's plan (models, parameters, memory) without weights
DRY_RUN_STAGE = {"rag": "embed"}
# the headline metric a Hydra sweep optimises / prints, per task
HEADLINE = {"sentiment": ("eval.json", ("test", "macro_f1")), "extractive_qa": ("eval.json", ("test", "f1")),
            "instruct": ("eval.json", ("test", "rouge_l")), "qgen_es": ("eval.json", ("test", "count_ok")),
            "rag": ("eval.json", ("retrieval", "bash", "hit@5"))}


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"stage failed ({proc.returncode}): {' '.join(cmd)}")


register_schemas()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    task = cfg.task.name
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
        _run([py, "-m", f"stages.{DRY_RUN_STAGE.get(task, 'finetune')}", task, "--params", str(params), "--dry-run"])
        return None
    needed: set[str] = set()
    package_models(block, needed)
    for key in sorted(needed):
        if not (Path(cfg.paths.base_models) / key / "config.json").exists():
            _run([py, "-m", "stages.download_models", key, "--out", cfg.paths.base_models])
    for stage in STAGES[task]:
        _run([py, "-m", f"stages.{stage}", task, "--params", str(params)])
    fname, keys = HEADLINE[task]
    metrics = out / cfg.paths.metrics / fname
    if not metrics.exists():
        return None
    import json

    value = json.loads(metrics.read_text())
    for k in keys:
        value = value[k]
    return value


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
