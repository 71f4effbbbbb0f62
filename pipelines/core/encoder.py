"""Fine-tuning an encoder with a task head (sentiment: sequence classification, extractive_qa:
span start/end), one path for both: load the base with its head, wrap it with PEFT, train with
`training.fit` on the tokenized data (dynamic padding), save, load back for evaluation. The task
supplies its head, its datasets and metrics, and any model kwargs (label maps, dropout).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig

from .errors import PipelineError
from .models import load_kwargs, read_model_type, resolve
from .paths import TaskPaths


@dataclass(frozen=True)
class Head:
    auto_class: str  # the transformers Auto class of the model with this head
    peft_task: str  # PEFT's task type for it


def tokenizer(cfg: DictConfig, model_cfg: DictConfig | None = None):
    m = model_cfg or cfg.model
    path = resolve(m, cfg.paths.base_models)  # model config problems before the heavy import
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, **load_kwargs(m))


def load_tokenized(tp: TaskPaths):
    from datasets import load_from_disk

    path = tp.data / "tokenized"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the tokenize stage first)")
    # in memory: transforms (sort, remove_columns) must not write cache files into a DVC output
    return load_from_disk(str(path), keep_in_memory=True)


def finetune(cfg: DictConfig, run, head: Head, datasets: Callable[[Any], tuple[dict, dict]],
             model_kwargs: dict | None = None, adjust: Callable[[Any, dict], dict] | None = None,
             trainer_cls: Any = None, **arg_overrides) -> None:
    """Train `head` on <data>/tokenized and save it under <models>.

    datasets(ds) -> (Trainer kwargs: train_dataset, eval_dataset, compute_metrics; extra fields
    for train_summary.json). model_kwargs: extra `from_pretrained` kwargs of the base model.
    adjust(model, summary) -> summary, after PEFT (e.g. freezing more weights). trainer_cls:
    default transformers.Trainer. arg_overrides go to TrainingArguments."""
    from .finetuned import save_finetuned
    from .runtime import seed_everything
    from .training import apply_peft, fit

    src = resolve(cfg.model, cfg.paths.base_models)  # config problems first, before any data work or torch import
    seed_everything(cfg.runtime.seed)
    import transformers

    ds = load_tokenized(TaskPaths(cfg))
    trainer_kw, extra = datasets(ds)
    tok = tokenizer(cfg)
    cls = getattr(transformers, head.auto_class)
    model = cls.from_pretrained(src, **load_kwargs(cfg.model), **(model_kwargs or {}))
    model_type = read_model_type(src, cfg.model)
    model, summary = apply_peft(model, cfg.peft, model_type, head.peft_task)
    if adjust is not None:
        summary = adjust(model, summary)
    print(f"[finetune] {cfg.model.key} ({model_type}) {summary['method']}: trainable {summary['trainable_params']:,} "
          f"of {summary['total_params']:,} ({summary['trainable_pct']}%) targets={summary['target_modules']}")

    trainer, seconds = fit(cfg, run, lambda args, callbacks: (trainer_cls or transformers.Trainer)(
        model=model, args=args, data_collator=transformers.DataCollatorWithPadding(tok), processing_class=tok,
        callbacks=callbacks, **trainer_kw), **arg_overrides)
    run.summary.update({"trainable_params": summary["trainable_params"], "total_params": summary["total_params"]})
    save_finetuned(cfg, trainer, tok, src, summary, seconds, **extra)


def load_finetuned(cfg: DictConfig, head: Head, **base_kwargs):
    """The fine-tuned encoder with its head, in eval mode, and its tokenizer."""
    from .finetuned import load_finetuned as load

    return load(cfg, head.auto_class, base_kwargs=base_kwargs)
