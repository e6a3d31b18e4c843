"""Statistics that the library's tools share: the benchmarks (guidance.bench) and the embedded world's build
(guidance.worlds.embedded.build.evaluate)."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


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
