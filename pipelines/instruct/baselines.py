"""The base model (no fine-tuning) on the same test prompts, in the same format."""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.core import sft, tracking
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.runtime import seed_everything

from .model import score


def baselines(cfg: DictConfig) -> None:
    tp = TaskPaths(cfg)
    seed_everything(cfg.runtime.seed)
    # the tokenizer that encoded the data (same pad token), the untouched base weights
    tok = sft.load_tokenizer(cfg, str(tp.data / "tokenized" / "tokenizer"))
    model, _ = sft.load_base_lm(cfg, for_training=False)
    model.eval()
    summary, per = score(cfg, model, tok, "baselines")
    run = tracking.start(cfg, "baselines")
    run.log({f"base/{k}": v for k, v in summary.items()})
    run.finish()
    write_jsonl(tp.metrics / "baseline_predictions.jsonl", per)
    write_json(tp.metrics / "baselines.json", {"base": {"model": cfg.model.key, "format": cfg.prompt.format,
                                                        "test": summary}})
