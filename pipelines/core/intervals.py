"""Percentile-bootstrap intervals of a mean, and of a paired difference of means.

The rag sets run from 8 to ~1,300 questions, so a metric's point value alone says little; every
summary carries a 95% interval. Resamples are drawn as one (n_boot, n) index matrix from
`numpy.random.default_rng(seed)`: no Python loop, and the same seed always gives the same
interval. None values (a metric that does not apply to an item) are dropped first.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _clean(values: Sequence) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None], dtype=np.float64)


def _resampled_means(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    return x[idx].mean(axis=1)


def _bounds(means: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(lo), float(hi)


def bootstrap_ci(values: Sequence, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float | None, float | None]:
    """(lo, hi) percentile-bootstrap interval of the mean; (None, None) without values."""
    x = _clean(values)
    if len(x) == 0:
        return None, None
    if np.all(x == x[0]):  # exact (v, v): float means of n copies of v need not round back to v
        return float(x[0]), float(x[0])
    return _bounds(_resampled_means(x, n_boot, seed), level)


def summarise(values: Sequence, **kw) -> dict:
    """{"mean", "lo", "hi", "n"} of the non-None values (mean/lo/hi None when there are none)."""
    x = _clean(values)
    lo, hi = bootstrap_ci(x, **kw)
    return {"mean": float(x.mean()) if len(x) else None, "lo": lo, "hi": hi, "n": int(len(x))}


def paired_bootstrap(a: Sequence, b: Sequence, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean of a - b, lo, hi, share of resamples with mean difference <= 0) over paired items.

    a[i] and b[i] score the same item (e.g. two systems on one question); pairs where either is
    None are dropped. The share is a one-sided bootstrap p-value-like figure for "a beats b":
    near 0 when a is reliably higher. All None without pairs.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap: {len(a)} scores against {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return None, None, None, None
    d = np.asarray([float(x) - float(y) for x, y in pairs], dtype=np.float64)
    if np.all(d == d[0]):
        v = float(d[0])
        return v, v, v, float(v <= 0)
    means = _resampled_means(d, n_boot, seed)
    lo, hi = _bounds(means, level)
    return float(d.mean()), lo, hi, float(np.mean(means <= 0))
