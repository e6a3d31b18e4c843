"""Statistics that the playground, the benchmarks (guidance.bench), the sweeps (guidance.sweep) and the embedded
world's build share: a mean's 95% t-interval, a median's interquartile range, a bootstrap interval of any statistic,
the three-way verdict of a figure's interval against a bar, and the ROC-AUC of a score."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats
from scipy.stats import rankdata

LEVEL = 0.95
RESAMPLES = 2000


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student's t-interval of the mean: mean +- t(n - 1) s / sqrt(n).

    Args:
        values: the sample.
        level: the confidence level.

    Returns:
        (low, high), or None with fewer than 2 values.
    """
    data = np.asarray(values, dtype=np.float64)
    if len(data) < 2:
        return None
    half = stats.t.ppf((1 + level) / 2, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data))
    return float(data.mean() - half), float(data.mean() + half)


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """The median and the first and third quartiles (linear interpolation)."""
    q1, median, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(median), float(q1), float(q3)


def bootstrap_interval(
    samples: Sequence,
    statistic: Callable[[np.ndarray], float] = np.mean,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of a statistic; seeded, so a document's interval is reproducible.

    Args:
        samples: values, or rows such as pairs (each resampled whole).
        statistic: from the resampled array to a number (e.g. `mean_difference` for pairs).
        level: the confidence level.
        resamples: how many bootstrap draws.
        seed: the generator's seed.

    Returns:
        (low, high), or None with fewer than 2 samples.
    """
    data = np.asarray(samples, dtype=np.float64)
    if len(data) < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(data[rng.integers(0, len(data), len(data))]) for _ in range(resamples)])
    low, high = np.percentile(draws, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def mean_difference(pairs: np.ndarray) -> float:
    """Mean of the first column minus mean of the second (paired samples, one row per pair)."""
    return float(np.mean(pairs[:, 0] - pairs[:, 1]))


def ratio_of_means(pairs: np.ndarray) -> float:
    """Mean of the first column over mean of the second (paired samples, one row per pair)."""
    return float(np.mean(pairs[:, 0]) / np.mean(pairs[:, 1]))


def verdict(interval: tuple[float, float] | None, bar: float, higher_is_better: bool, strict: bool = False) -> str:
    """A figure's interval against a bar.

    Args:
        interval: (low, high), or None when unknown.
        bar: the goal's threshold.
        higher_is_better: which side of the bar is good.
        strict: an interval that ends exactly at the bar is not beyond it.

    Returns:
        "met" when the whole interval is on the good side of `bar`, "not met" when it is wholly on the other side,
        "undecided" when it spans the bar or is unknown.
    """
    if interval is None:
        return "undecided"
    low, high = interval if higher_is_better else (-interval[1], -interval[0])
    bar = bar if higher_is_better else -bar
    if low > bar or (low == bar and not strict):
        return "met"
    if high < bar or (high == bar and strict):
        return "not met"
    return "undecided"


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half.

    Args:
        scores: (N,) scores, higher meaning more likely positive.
        positive: (N,) booleans, which of them are positives (at least one of each kind).

    Returns:
        The area, in [0, 1].
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    ranks = rankdata(scores)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
