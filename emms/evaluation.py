"""How well a selector's scores rank a zoo against its fine-tuned ground truth.

The protocol of the EMMS release (and of LogME, SFDA before it): the weighted Kendall tau
of ``scipy.stats.weightedtau(scores, truth)`` with scipy's defaults (hyperbolic weigher
1 / (r + 1), ranks taken from both sides and averaged), so that errors among the top
models cost more. Kendall's tau, Pearson's r and Rel@k are reported beside it.

Uncertainty. A tau over 6-20 models is noisy, so every metric comes with a bootstrap over
the zoo: models are resampled with replacement (seeded), the metric is recomputed on each
resample that keeps at least 3 distinct models and some spread in both scores and truth,
and the standard deviation and the 2.5-97.5 % percentiles of those values are reported.
When the ground truth has a standard error (seeds of fine-tuning), each resample also
draws the truth from N(mean, sem^2), so that the interval covers the noise of the
fine-tuning as well. Limits: a bootstrap over a handful of models treats the zoo as a
sample from a population of models, which it is not quite; duplicated models create ties
that lower tau; and with fewer than about 8 models the percentile interval is coarse.
Read the intervals as a scale of the noise, not as exact coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats

from ._validation import InputError

__all__ = [
    "Estimate",
    "weighted_tau",
    "kendall_tau",
    "pearson",
    "rel_at_k",
    "METRICS",
    "evaluate_ranking",
]


def _pair(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    if s.shape != t.shape:
        raise InputError(
            f"scores has {s.size} entries and truth has {t.size}; pass one score and one "
            "ground-truth value per model, in the same order."
        )
    if s.size < 2:
        raise InputError(f"a ranking needs at least 2 models, got {s.size}.")
    if not (np.isfinite(s).all() and np.isfinite(t).all()):
        raise InputError("scores and truth must be finite; a NaN score means a failed selector.")
    return s, t


def weighted_tau(scores, truth) -> float:
    """Weighted Kendall tau, ``scipy.stats.weightedtau(scores, truth)`` with defaults.

    Args:
        scores: (M,) selector scores of M models (higher = predicted better).
        truth: (M,) fine-tuned performance of the same models.

    Returns:
        tau_w in [-1, 1].
    """
    s, t = _pair(scores, truth)
    return float(scipy.stats.weightedtau(s, t).statistic)


def kendall_tau(scores, truth) -> float:
    """Kendall's tau-b between scores (M,) and truth (M,)."""
    s, t = _pair(scores, truth)
    return float(scipy.stats.kendalltau(s, t).statistic)


def pearson(scores, truth) -> float:
    """Pearson correlation between scores (M,) and truth (M,)."""
    s, t = _pair(scores, truth)
    if np.ptp(s) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(scipy.stats.pearsonr(s, t).statistic)


def rel_at_k(scores, truth, k: int = 1) -> float:
    """Rel@k: the best truth among the k top-scored models over the best truth overall.

    1.0 means the best model is among the top k. Ties in the scores are broken by order.
    """
    s, t = _pair(scores, truth)
    top = np.argsort(-s, kind="stable")[:k]
    best = t.max()
    if best <= 0:
        raise InputError("rel_at_k needs a positive best ground-truth value (accuracy, BLEU).")
    return float(t[top].max() / best)


METRICS = {
    "weighted_tau": weighted_tau,
    "kendall_tau": kendall_tau,
    "pearson": pearson,
    "rel@1": lambda s, t: rel_at_k(s, t, 1),
    "rel@3": lambda s, t: rel_at_k(s, t, 3),
}


@dataclass(frozen=True)
class Estimate:
    """A metric on the whole zoo, with its bootstrap spread."""

    value: float
    std: float
    low: float
    high: float
    n_boot: int

    def __str__(self) -> str:
        return f"{self.value:+.3f} ± {self.std:.3f}"


def evaluate_ranking(
    scores,
    truth,
    *,
    truth_sem=None,
    metrics=("weighted_tau", "kendall_tau", "pearson", "rel@1", "rel@3"),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Every ranking metric with its bootstrap uncertainty (see module docstring).

    Args:
        scores: (M,) selector scores.
        truth: (M,) ground truth (mean over fine-tuning seeds).
        truth_sem: optional (M,) standard error of the truth.
        metrics: names from :data:`METRICS`.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``{metric: Estimate}``.
    """
    s, t = _pair(scores, truth)
    sem = None if truth_sem is None else np.asarray(truth_sem, dtype=np.float64).ravel()
    if sem is not None and sem.shape != t.shape:
        raise InputError("truth_sem must have one entry per model, like truth.")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise InputError(f"unknown metric(s) {sorted(unknown)}; choose from {sorted(METRICS)}.")
    rng = np.random.default_rng(seed)
    m = len(s)
    samples = {name: [] for name in metrics}
    for _ in range(n_boot):
        index = rng.integers(0, m, size=m)
        t_b = t[index] if sem is None else t[index] + rng.normal(0.0, 1.0, m) * sem[index]
        s_b = s[index]
        if len(np.unique(index)) < 3 or np.ptp(s_b) == 0 or np.ptp(t_b) == 0:
            continue
        for name in metrics:
            if name.startswith("rel@") and t_b.max() <= 0:
                continue
            samples[name].append(METRICS[name](s_b, t_b))
    out = {}
    for name in metrics:
        values = np.asarray(samples[name], dtype=np.float64)
        values = values[np.isfinite(values)]
        point = METRICS[name](s, t)
        if len(values) < 2:
            out[name] = Estimate(point, float("nan"), float("nan"), float("nan"), len(values))
            continue
        low, high = np.percentile(values, [2.5, 97.5])
        out[name] = Estimate(point, float(values.std(ddof=1)), float(low), float(high), len(values))
    return out
