"""The base model in the prompting modes (zero-shot, system prompt, few-shot) on the same inputs."""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.core import causal_lm, tracking
from pipelines.core.errors import PipelineError
from pipelines.core.io import write_json, write_jsonl
from pipelines.core.paths import TaskPaths
from pipelines.core.runtime import seed_everything

from .model import MODES, few_shot_examples, read_inputs, run_mode


@tracking.tracked("baselines")
def baselines(cfg: DictConfig, run=None) -> None:
    tp = TaskPaths(cfg)
    modes = list(cfg.evaluate.modes)
    if bad := [m for m in modes if m not in MODES or m == "fine_tuned"]:
        raise PipelineError(f"evaluate.modes: {bad[0]!r} is not a prompting mode (zero_shot, system_prompt, few_shot)")
    inputs = read_inputs(tp)  # input problems first, before the model is loaded
    shots = few_shot_examples(cfg, tp) if "few_shot" in modes else []
    seed_everything(cfg.runtime.seed)
    tok = causal_lm.load_tokenizer(cfg, str(tp.data / "tokenized" / "tokenizer"))  # same pad token as training
    model, _ = causal_lm.load_base_lm(cfg, for_training=False)
    model.eval()
    out, rows = {}, []
    run.open()  # before the first mode's generation, as before
    for mode in modes:
        summary, mine = run_mode(cfg, model, tok, mode, inputs, shots)
        # no wall-clock fields: the same seed must give a byte-identical metrics file
        out[mode] = {"model": cfg.model.key, "test": summary["all"],
                     "by_source": {k: v for k, v in summary.items() if k not in ("all", "seconds")}}
        if mode == "few_shot":
            out[mode]["shots"] = [s["id"] for s in shots]
        rows += mine
        run.log({f"{mode}/{k}": v for k, v in summary["all"].items()})
    write_jsonl(tp.metrics / "baseline_predictions.jsonl", rows)
    write_json(tp.metrics / "baselines.json", out)
