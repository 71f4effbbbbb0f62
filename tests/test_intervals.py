"""Bootstrap intervals (pipelines/core/intervals.py): known answers, seeds, empty and None input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.core.intervals import bootstrap_ci, paired_bootstrap, summarise

pytestmark = pytest.mark.fast


def test_bernoulli_interval_matches_the_normal_approximation():
    x = [1] * 20 + [0] * 20  # mean 0.5, n 40
    lo, hi = bootstrap_ci(x)
    assert lo < 0.5 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 40), abs=0.05)
    assert 0.5 - lo == pytest.approx(hi - 0.5, abs=0.03)  # symmetric around p = 0.5
    # a narrower level gives a nested, narrower interval
    lo50, hi50 = bootstrap_ci(x, level=0.5)
    assert lo < lo50 < 0.5 < hi50 < hi


def test_continuous_sample_interval_close_to_mean_plus_minus_1_96_se():
    x = np.random.default_rng(7).normal(3.0, 2.0, size=400)
    lo, hi = bootstrap_ci(x.tolist(), n_boot=4000)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)


def test_same_seed_same_interval_other_seed_other_resamples():
    x = [0.1, 0.9, 0.4, 0.4, 0.7, 0.0, 1.0, 0.3]
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(list(x), seed=3)
    assert bootstrap_ci(x, seed=3) != bootstrap_ci(x, seed=4)
    assert paired_bootstrap(x, x[::-1], seed=1) == paired_bootstrap(x, x[::-1], seed=1)


def test_empty_none_constant_and_bool_inputs():
    assert bootstrap_ci([]) == (None, None) and bootstrap_ci([None, None]) == (None, None)
    assert summarise([None]) == {"mean": None, "lo": None, "hi": None, "n": 0}
    assert bootstrap_ci([0.1] * 3) == (0.1, 0.1)  # exactly v, not a rounding of it
    assert bootstrap_ci([True, True]) == (1.0, 1.0)
    x = [1, 0, None, 1, 1, None, 0]
    assert bootstrap_ci(x) == bootstrap_ci([1, 0, 1, 1, 0])  # None dropped before resampling
    s = summarise(x)
    assert s["n"] == 5 and s["mean"] == pytest.approx(0.6) and s["lo"] < 0.6 < s["hi"]
    assert summarise([True, False, True], seed=5) == {"mean": pytest.approx(2 / 3), "n": 3,
                                                      **dict(zip(("lo", "hi"), bootstrap_ci([1, 0, 1], seed=5)))}
    with pytest.raises(ValueError):
        bootstrap_ci([0, 1], level=95)


def test_paired_bootstrap():
    a = [0.2, 0.5, 1.0, 0.0, 0.7]
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0, 1.0)  # identical: zero-width, never better
    assert paired_bootstrap([x + 1 for x in a], a) == (1.0, 1.0, 1.0, 0.0)
    assert paired_bootstrap([], []) == (None, None, None, None)
    # clearly better on 60 items: the interval excludes 0, almost no resample says otherwise
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, 60)
    better = np.clip(b + rng.normal(0.2, 0.1, 60), 0, None)
    diff, lo, hi, p = paired_bootstrap(better.tolist(), b.tolist())
    assert diff == pytest.approx(float((better - b).mean())) and 0 < lo < diff < hi and p < 0.01
    # the pairing matters: a pair with a None on either side is dropped as a whole
    assert paired_bootstrap([1, None, 0, 1], [0, 1, None, 0]) == paired_bootstrap([1, 1], [0, 0])
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])
