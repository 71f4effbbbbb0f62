"""Stage functions of the extractive_qa task (called by stages/<name>.py with the validated config).

Imports are inside the functions so that each stage only pays for what it uses.
"""
from __future__ import annotations

from omegaconf import DictConfig


def download(cfg: DictConfig) -> None:
    from .data import download as run

    run(cfg)


def clean(cfg: DictConfig) -> None:
    from .data import clean as run

    run(cfg)


def split(cfg: DictConfig) -> None:
    from .data import split as run

    run(cfg)


def tokenize(cfg: DictConfig) -> None:
    from .model import tokenize as run

    run(cfg)


def finetune(cfg: DictConfig) -> None:
    from .model import finetune as run

    run(cfg)


def evaluate(cfg: DictConfig) -> None:
    from .model import evaluate as run

    run(cfg)


def baselines(cfg: DictConfig) -> None:
    from .baselines import baselines as run

    run(cfg)


def report(cfg: DictConfig) -> None:
    from .report import report as run

    run(cfg)
