"""The base model (no fine-tuning) on the same test prompts, in the same format."""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.core import causal_lm, tracking
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.runtime import seed_everything

from .model import score


@tracking.tracked("baselines")
def baselines(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    seed_everything(cfg.runtime.seed)
    # the tokenizer that encoded the data (same pad token), the untouched base weights
    tok = causal_lm.load_tokenizer(cfg, str(tp.data / "tokenized" / "tokenizer"))
    model, _ = causal_lm.load_base_lm(cfg, for_training=False)
    model.eval()
    summary, per = score(cfg, model, tok, "baselines")
    run.log({f"base/{k}": v for k, v in summary.items()})
    write_jsonl(tp.metrics / "baseline_predictions.jsonl", per)
    write_json(tp.metrics / "baselines.json", {"base": {"model": cfg.model.key, "format": cfg.prompt.format,
                                                        "test": summary}})
