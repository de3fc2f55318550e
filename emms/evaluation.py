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

Zoo size. A spread is refused below :data:`MIN_MODELS_FOR_SPREAD` = 5 models. A resample
of M models holds on average M (1 - (1 - 1/M)^M) distinct models: 2.67 for M = 3, 2.73
for M = 4, 3.36 for M = 5, and a rank metric needs at least 3 to vary. With 3 models the
only kept resamples are permutations of the zoo, so the spread is exactly 0 (it read
"+- 0.000", i.e. certainty); with 4 a third of the resamples are dropped and the rest take
a handful of values. Pass ``n_boot=None`` to get the point values alone, with a spread of
NaN, on any zoo of at least 2 models.

Comparing two selectors (issue 15). Two taus with overlapping intervals can still differ
reliably: both are computed on the same zoo and the same truth, so their errors are
correlated. :func:`paired_tau_difference` bootstraps the difference itself, with the same
resampled models and the same truth draw for both selectors in every resample (a paired
bootstrap, Efron & Tibshirani 1993, §10), and :func:`summarise_wins` summarises the
per-target differences across targets: wins, and an interval on the mean difference over
the targets taken as fixed (their bootstraps are independent, so one draw from each
target's bootstrap distribution, averaged, is a draw of the mean).

Inputs. Scores and truth are 1-D, one entry per model. pandas Series are aligned by their
index (model names); Series whose indices hold different models are refused, and so is a
plain array beside Series in a different order. :func:`align_scores_and_truth` merges a
score table with a truth table and refuses any model that is in one but not the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import scipy.stats

from ._validation import InputError

__all__ = [
    "Estimate",
    "MIN_MODELS_FOR_SPREAD",
    "PairedDifference",
    "WinSummary",
    "align_scores_and_truth",
    "weighted_tau",
    "kendall_tau",
    "pearson",
    "rel_at_k",
    "METRICS",
    "evaluate_ranking",
    "paired_tau_difference",
    "relative_gain",
    "summarise_wins",
]

#: The smallest zoo for which a bootstrap spread is computed (module docstring).
MIN_MODELS_FOR_SPREAD = 5


def _is_series(value) -> bool:
    return hasattr(value, "index") and hasattr(value, "to_numpy") and getattr(value, "ndim", 0) == 1


def _vectors(named: Sequence[tuple[str, object]]) -> list[np.ndarray]:
    """1-D float arrays of the named inputs, pandas Series aligned by index (see module
    docstring). Every input must be 1-D: a (2, 2) array is refused, never flattened."""
    series = [(name, value) for name, value in named if _is_series(value)]
    order = None
    if series:
        first_name, first = series[0]
        if first.index.has_duplicates:
            raise InputError(
                f"{first_name} has duplicated model names in its index; pass one value per model."
            )
        for name, value in series[1:]:
            if value.index.has_duplicates:
                raise InputError(
                    f"{name} has duplicated model names in its index; pass one value per model."
                )
            lacking = [m for m in first.index if m not in value.index]
            extra = [m for m in value.index if m not in first.index]
            if lacking or extra:
                raise InputError(
                    f"{name} and {first_name} hold different models: {name} lacks "
                    f"{lacking[:10]} and has {extra[:10]} in addition; pass the same models "
                    "in both (see emms.evaluation.align_scores_and_truth)."
                )
            if not value.index.equals(first.index):
                order = first.index
        if order is not None and len(series) < len(named):
            plain = [name for name, value in named if not _is_series(value)]
            raise InputError(
                f"the pandas inputs are in different model orders and {plain} are plain "
                "arrays whose order is unknown; pass all inputs as Series indexed by model."
            )
    arrays = []
    for name, value in named:
        if _is_series(value) and order is not None:
            value = value.reindex(order)
        values = value.to_numpy() if _is_series(value) else value
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InputError(f"{name} must hold numbers, one per model ({error}).") from None
        if array.ndim != 1:
            raise InputError(
                f"{name} must be 1-D, one value per model; got shape {array.shape}. Pass a "
                "(M,) array (for a table, one column)."
            )
        arrays.append(array)
    return arrays


def _pair(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    s, t = _vectors([("scores", scores), ("truth", truth)])
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


def _require_spread(s: np.ndarray, t: np.ndarray, metric: str) -> None:
    """A rank or linear correlation is undefined (scipy returns NaN) for constant input."""
    if np.ptp(s) == 0:
        raise InputError(
            f"{metric}: scores are the same for every model ({s[0]:g}), so they rank nothing "
            "and the correlation is undefined; check that the selector did not fail or "
            "collapse (e.g. EMMS with D >= N - 1: use emms.emms_evidence or ridge > 0)."
        )
    if np.ptp(t) == 0:
        raise InputError(
            f"{metric}: truth is the same for every model ({t[0]:g}), so there is no ranking "
            "to recover; check the fine-tuning results."
        )


def weighted_tau(scores, truth) -> float:
    """Weighted Kendall tau, ``scipy.stats.weightedtau(scores, truth)`` with defaults.

    Args:
        scores: (M,) selector scores of M models (higher = predicted better); a pandas
            Series is aligned with a Series ``truth`` by its index.
        truth: (M,) fine-tuned performance of the same models.

    Returns:
        tau_w in [-1, 1].

    Raises:
        InputError: inputs that are not 1-D, of different lengths or models, not finite,
            or constant (scipy would return NaN).
    """
    s, t = _pair(scores, truth)
    _require_spread(s, t, "weighted_tau")
    return float(scipy.stats.weightedtau(s, t).statistic)


def kendall_tau(scores, truth) -> float:
    """Kendall's tau-b between scores (M,) and truth (M,); constant input is refused."""
    s, t = _pair(scores, truth)
    _require_spread(s, t, "kendall_tau")
    return float(scipy.stats.kendalltau(s, t).statistic)


def pearson(scores, truth) -> float:
    """Pearson correlation between scores (M,) and truth (M,); constant input is refused."""
    s, t = _pair(scores, truth)
    _require_spread(s, t, "pearson")
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
    """A metric on the whole zoo, with its bootstrap spread (NaN when ``n_boot=None``)."""

    value: float
    std: float
    low: float
    high: float
    n_boot: int

    def __str__(self) -> str:
        if np.isnan(self.std):
            return f"{self.value:+.3f} ± n/a"
        return f"{self.value:+.3f} ± {self.std:.3f}"


def _check_n_boot(n_boot, *, allow_none: bool) -> None:
    if n_boot is None and allow_none:
        return
    if isinstance(n_boot, bool) or not isinstance(n_boot, Integral) or n_boot < 1:
        alternative = ", or None for the point values without a spread" if allow_none else ""
        raise InputError(
            f"n_boot={n_boot!r} must be an int >= 1 (the number of bootstrap resamples; "
            f"1000 is the default){alternative}."
        )


def _check_sem(sem: np.ndarray | None, t: np.ndarray) -> np.ndarray | None:
    if sem is None:
        return None
    if sem.shape != t.shape:
        raise InputError("truth_sem must have one entry per model, like truth.")
    if not np.isfinite(sem).all() or (sem < 0).any():
        raise InputError(
            "truth_sem must be finite and >= 0 (standard errors of the truth over fine-tuning "
            "seeds; use 0 where a model has one seed)."
        )
    return sem


def _aligned(named, truth_sem) -> list[np.ndarray | None]:
    """The named 1-D inputs and ``truth_sem`` (if given), all in one model order."""
    if truth_sem is not None:
        named = [*named, ("truth_sem", truth_sem)]
    arrays = _vectors(named)
    return arrays if truth_sem is not None else [*arrays, None]


def _require_zoo_for_spread(m: int) -> None:
    if m < MIN_MODELS_FOR_SPREAD:
        raise InputError(
            f"a bootstrap spread over the zoo needs at least {MIN_MODELS_FOR_SPREAD} models, "
            f"got {m}: with fewer, a resample rarely holds the 3 distinct models a rank metric "
            "needs and the spread is 0 or a few values (see emms.evaluation). Score more "
            "models, or pass n_boot=None for the point values without a spread."
        )


def _resample(rng, t: np.ndarray, sem: np.ndarray | None, m: int):
    """One bootstrap draw: model indices with replacement, and the truth of the drawn
    models, redrawn from N(mean, sem^2) when sem is given."""
    index = rng.integers(0, m, size=m)
    t_b = t[index] if sem is None else t[index] + rng.normal(0.0, 1.0, m) * sem[index]
    return index, t_b


def evaluate_ranking(
    scores,
    truth,
    *,
    truth_sem=None,
    metrics=("weighted_tau", "kendall_tau", "pearson", "rel@1", "rel@3"),
    n_boot: int | None = 1000,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Every ranking metric with its bootstrap uncertainty (see module docstring).

    Args:
        scores: (M,) selector scores (a pandas Series is aligned with ``truth`` by index).
        truth: (M,) ground truth (mean over fine-tuning seeds).
        truth_sem: optional (M,) standard error of the truth (finite, >= 0).
        metrics: names from :data:`METRICS`.
        n_boot: bootstrap resamples, an int >= 1; ``None``: the point values only, with
            ``std``, ``low`` and ``high`` NaN and ``n_boot`` 0.
        seed: seed of the resampling.

    Returns:
        ``{metric: Estimate}``.

    Raises:
        InputError: with a spread asked for on fewer than :data:`MIN_MODELS_FOR_SPREAD`
            models; constant scores or truth; and the input errors of :func:`weighted_tau`.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise InputError(f"unknown metric(s) {sorted(unknown)}; choose from {sorted(METRICS)}.")
    _check_n_boot(n_boot, allow_none=True)
    s, t, sem = _aligned([("scores", scores), ("truth", truth)], truth_sem)
    s, t = _pair(s, t)
    sem = _check_sem(sem, t)
    _require_spread(s, t, "evaluate_ranking")
    m = len(s)
    if n_boot is None:
        nan = float("nan")
        return {name: Estimate(METRICS[name](s, t), nan, nan, nan, 0) for name in metrics}
    _require_zoo_for_spread(m)
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in metrics}
    for _ in range(n_boot):
        index, t_b = _resample(rng, t, sem, m)
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


@dataclass(frozen=True)
class PairedDifference:
    """metric(A) - metric(B) on one target, with its paired bootstrap spread.

    Attributes:
        value: the difference on the whole zoo with the mean truth.
        std: standard deviation of the bootstrap differences.
        low, high: their 2.5 % and 97.5 % percentiles.
        n_boot: resamples used (those with >= 3 distinct models and spread in both
            selectors' scores and in the truth).
        value_a, value_b: the two metrics on the whole zoo.
        samples: the bootstrap differences (n_boot,), for :func:`summarise_wins`.
    """

    value: float
    std: float
    low: float
    high: float
    n_boot: int
    value_a: float
    value_b: float
    samples: np.ndarray = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.value:+.3f} ± {self.std:.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def relative_gain(value: float, baseline: float) -> float:
    """``(value - baseline) / baseline``, the paper's headline comparison (abstract: "EMMS
    ... gains of 9.0 % ... over LogME"), applied to mean weighted taus.

    NaN when ``baseline <= 0``: a relative gain over a baseline that ranks no better than
    chance has no meaning the paper's percentages share (it would grow without bound as
    the baseline nears 0 and flip sign below it), so it is left out, not inflated.
    """
    return (value - baseline) / baseline if baseline > 0 else float("nan")


def paired_tau_difference(
    scores_a,
    scores_b,
    truth,
    *,
    truth_sem=None,
    n_boot: int = 1000,
    seed: int = 0,
    metric: str = "weighted_tau",
) -> PairedDifference:
    """Paired bootstrap over the zoo of the difference in a ranking metric (default the
    weighted tau) between selectors A and B on one target.

    In each resample the same models are drawn (with replacement) for both selectors and,
    when ``truth_sem`` is given, one truth is drawn from N(mean, sem^2) and shared by both,
    exactly as :func:`evaluate_ranking` draws them. The difference is taken inside each
    resample, so whatever the resample does to both taus alike (an easy or hard draw of
    models, a noisy truth) cancels: its spread is that of the difference, usually far
    smaller than the two taus' spreads combined as if independent. A resample is dropped
    for both selectors together (keeping the pairing) when it holds fewer than 3 distinct
    models or when either selector's scores or the truth are constant on it.

    Args:
        scores_a, scores_b: (M,) scores of the two selectors on the same M models
            (pandas Series are aligned with each other and with ``truth`` by index).
        truth: (M,) ground truth; ``truth_sem``: optional (M,) standard error (>= 0).
        n_boot: resamples, an int >= 1. seed: seed of the resampling.
        metric: a name from :data:`METRICS` (``"weighted_tau"``).

    Returns:
        :class:`PairedDifference` (positive: A ranks the zoo better).

    Raises:
        InputError: fewer than :data:`MIN_MODELS_FOR_SPREAD` models, bad ``n_boot``,
            constant scores or truth, and the input errors of :func:`weighted_tau`.
    """
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose from {sorted(METRICS)}.")
    _check_n_boot(n_boot, allow_none=False)
    a, b, t, sem = _aligned(
        [("scores_a", scores_a), ("scores_b", scores_b), ("truth", truth)], truth_sem
    )
    a, t = _pair(a, t)
    b, t = _pair(b, t)
    sem = _check_sem(sem, t)
    _require_spread(a, t, f"paired_tau_difference ({metric}, scores_a)")
    _require_spread(b, t, f"paired_tau_difference ({metric}, scores_b)")
    m = len(t)
    _require_zoo_for_spread(m)
    function = METRICS[metric]
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(n_boot):
        index, t_b = _resample(rng, t, sem, m)
        a_b, b_b = a[index], b[index]
        if len(np.unique(index)) < 3 or min(np.ptp(a_b), np.ptp(b_b), np.ptp(t_b)) == 0:
            continue
        if metric.startswith("rel@") and t_b.max() <= 0:
            continue
        differences.append(function(a_b, t_b) - function(b_b, t_b))
    samples = np.asarray(differences, dtype=np.float64)
    value_a, value_b = function(a, t), function(b, t)
    if len(samples) < 2:
        nan = float("nan")
        return PairedDifference(
            value_a - value_b, nan, nan, nan, len(samples), value_a, value_b, samples
        )
    low, high = np.percentile(samples, [2.5, 97.5])
    return PairedDifference(
        float(value_a - value_b),
        float(samples.std(ddof=1)),
        float(low),
        float(high),
        len(samples),
        float(value_a),
        float(value_b),
        samples,
    )


@dataclass(frozen=True)
class WinSummary:
    """Per-target differences A - B summarised across targets.

    Attributes:
        wins, losses, ties: targets with a difference > 0, < 0, == 0.
        clear_wins, clear_losses: targets whose interval lies above / below 0.
        n_targets: the number of targets.
        mean: mean difference over the targets.
        low, high: 2.5 % and 97.5 % percentiles of the mean over draws that take one
            bootstrap difference from each target (targets fixed, bootstraps independent).
        text: one line, e.g. "A beats B on 3 of 4 targets (2 clearly); mean difference
            +0.120, 95 % interval [+0.031, +0.204]".
    """

    wins: int
    losses: int
    ties: int
    clear_wins: int
    clear_losses: int
    n_targets: int
    mean: float
    low: float
    high: float
    text: str

    def __str__(self) -> str:
        return self.text


def summarise_wins(
    differences: Mapping[str, PairedDifference] | Sequence[PairedDifference],
    *,
    names: tuple[str, str] = ("A", "B"),
    n_draw: int = 10000,
    seed: int = 0,
) -> WinSummary:
    """Wins of A over B across targets, with an interval on the mean difference.

    The targets are taken as fixed (they are the benchmark, not a sample of tasks), and the
    per-target bootstraps of :func:`paired_tau_difference` are independent (different zoos
    of features, different truth), so averaging one draw from each target's bootstrap
    distribution gives a draw of the mean difference; the interval is the 2.5-97.5 %
    percentiles of ``n_draw`` such draws. With the targets treated as a sample of tasks the
    interval would have to include the spread between targets, which 3-11 targets cannot
    estimate.

    Args:
        differences: :class:`PairedDifference` per target (a mapping or a sequence).
        names: how A and B are called in ``text``.
        n_draw: draws of the mean, an int >= 1. seed: seed of the draws.

    Returns:
        :class:`WinSummary`.
    """
    items = list(differences.values()) if isinstance(differences, Mapping) else list(differences)
    if not items:
        raise InputError("differences is empty; pass one PairedDifference per target.")
    if not all(isinstance(item, PairedDifference) for item in items):
        raise InputError(
            "differences must hold PairedDifference results of "
            "emms.evaluation.paired_tau_difference, one per target."
        )
    _check_n_boot(n_draw, allow_none=False)
    if any(len(item.samples) < 2 for item in items):
        raise InputError(
            "a target's paired bootstrap kept fewer than 2 resamples, so it has no spread; "
            "rerun paired_tau_difference with a larger n_boot or a larger zoo."
        )
    values = np.array([item.value for item in items])
    rng = np.random.default_rng(seed)
    draws = np.mean(
        [item.samples[rng.integers(0, len(item.samples), size=n_draw)] for item in items], axis=0
    )
    low, high = np.percentile(draws, [2.5, 97.5])
    wins, losses = int((values > 0).sum()), int((values < 0).sum())
    clear_wins = sum(item.low > 0 for item in items)
    clear_losses = sum(item.high < 0 for item in items)
    mean = float(values.mean())
    n = len(items)
    text = (
        f"{names[0]} beats {names[1]} on {wins} of {n} targets ({clear_wins} clearly, "
        f"interval above 0; {losses} losses, {clear_losses} clearly); mean difference "
        f"{mean:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}]"
    )
    return WinSummary(
        wins,
        losses,
        n - wins - losses,
        clear_wins,
        clear_losses,
        n,
        mean,
        float(low),
        float(high),
        text,
    )


def align_scores_and_truth(scores, truth, truth_sem=None):
    """Align a selector's scores with the truth by model name, refusing any mismatch.

    Args:
        scores: pandas Series of scores indexed by model name.
        truth: pandas Series of the truth (mean over seeds) indexed by model name.
        truth_sem: optional pandas Series of its standard errors, indexed likewise.

    Returns:
        ``(scores, truth, truth_sem)`` as Series in the order of ``scores``' index
        (``truth_sem`` None when not given).

    Raises:
        InputError: a model scored but absent from the truth (or from ``truth_sem``), a
            model in the truth that was not scored (a failed or skipped selector), a
            duplicated model name, or inputs that are not Series.
    """
    named = [("scores", scores), ("truth", truth)]
    if truth_sem is not None:
        named.append(("truth_sem", truth_sem))
    for name, value in named:
        if not _is_series(value):
            raise InputError(
                f"{name} must be a pandas Series indexed by model name, got {type(value).__name__}."
            )
        if value.index.has_duplicates:
            duplicated = sorted(map(str, value.index[value.index.duplicated()].unique()))
            raise InputError(f"{name} lists the model(s) {duplicated} more than once.")
    for name, value in named[1:]:
        missing = [m for m in scores.index if m not in value.index]
        if missing:
            raise InputError(
                f"{name} does not cover every scored model: {missing} have a score but no "
                f"{name}; fine-tune them (or drop their scores) before evaluating."
            )
    unscored = [m for m in truth.index if m not in scores.index]
    if unscored:
        raise InputError(
            f"scores lack the model(s) {unscored} that are in the truth; every model of the "
            "zoo must be scored (a missing score usually means a failed selector)."
        )
    order = scores.index
    return (
        scores,
        truth.reindex(order),
        None if truth_sem is None else truth_sem.reindex(order),
    )
