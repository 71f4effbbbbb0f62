"""Report pieces shared by the causal-LM tasks (instruct, qgen_es): loss / perplexity curves."""
from __future__ import annotations

import math

from . import report as H


def curves(log: list[dict]) -> str:
    """Train loss, validation loss and validation perplexity against the step, as an <img>."""
    train = [(e["step"], e["loss"]) for e in log if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log if "eval_loss" in e and "step" in e]

    def draw(fig):
        a, b, c = fig.subplots(1, 3)
        for ax, title in ((a, "train loss (completion tokens)"), (b, "validation loss"), (c, "validation perplexity")):
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(color="#eee")
        if train:
            a.plot(*zip(*train), color="#3b6ea8", lw=1.2)
        if evals:
            b.plot(*zip(*evals), "o-", color="#c0504d", ms=4)
            c.plot([s for s, _ in evals], [math.exp(min(v, 50.0)) for _, v in evals], "o-", color="#9bbb59", ms=4)
        else:
            for ax in (b, c):
                ax.text(0.5, 0.5, "no eval entries", ha="center", transform=ax.transAxes, color="#888")

    return H.img(H.figure_uri(draw, (10.5, 2.8)), "training and validation curves")
