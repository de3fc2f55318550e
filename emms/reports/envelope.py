"""Reproduction from scratch: is a fresh run inside the envelope of the committed one?

Two levels of reproduction (README, "Reproducibility"):

1. **Exact, from the shared caches.** ``make repro`` pulls every DVC output from the
   repository's own remote (``dvc-remote/``); ``dvc repro`` then recomputes nothing that
   training produced, and the metrics must equal the committed ones to 1e-9
   (``python -m emms compare-metrics --tolerance 1e-9``).
2. **Within an envelope, from scratch.** ``make repro-scratch`` retrains everything. On
   another CPU the kernels round differently and training amplifies it, so fresh numbers
   are compared with what is stable, with bounds measured rather than guessed
   (:func:`check_envelope`):

   * each model's truth (mean over seeds) within ``truth_bound`` of the committed one:
     ``z * sqrt(sd_fresh^2 / n_fresh + sd_committed^2 / n_committed) + isa_allowance``,
     the seed noise of both means plus the largest change that simulated instruction
     sets caused (benchmarks/isa_envelope.py measures it; ``evaluation.isa_allowance``);
   * each selector's weighted and plain Kendall tau inside the committed bootstrap
     interval (95 %), widened by ``tau_slack`` for the interval's own Monte Carlo noise;
   * the conclusions: the best selector per target and the sign of EMMS's mean gain
     over LogME (F-label) are compared and *flagged* (not failed) when they change,
     since a conclusion resting on a difference inside the noise should be read so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["EnvelopeResult", "check_envelope"]


@dataclass
class EnvelopeResult:
    """Problems fail CI; flags are printed and reported but do not fail it."""

    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _truth_checks(fresh, committed, z, isa_allowance, result):
    for dataset, models in committed.get("truth", {}).items():
        for model, old in models.items():
            new = fresh.get("truth", {}).get(dataset, {}).get(model)
            if new is None:
                result.problems.append(f"truth/{dataset}/{model}: missing from the fresh run")
                continue
            noise = math.sqrt(
                new["std"] ** 2 / new["seeds"] + old["std"] ** 2 / old["seeds"]
            )
            bound = z * noise + isa_allowance
            result.checked += 1
            change = abs(new["mean"] - old["mean"])
            if change > bound:
                result.problems.append(
                    f"truth/{dataset}/{model}: {new['mean']:.4f} vs committed "
                    f"{old['mean']:.4f} (|change| {change:.4f} > bound {bound:.4f})"
                )


def _tau_checks(fresh, committed, metrics, slack, result):
    for dataset, methods in committed.get("intervals", {}).items():
        for method, intervals in methods.items():
            for metric in metrics:
                if metric not in intervals:
                    continue
                low, high = intervals[metric]
                value = fresh.get(dataset, {}).get(method, {}).get(metric)
                if value is None:
                    result.problems.append(f"{dataset}/{method}/{metric}: missing")
                    continue
                if any(map(math.isnan, (low, high, value))):
                    continue  # no spread (too small a zoo): nothing to compare against
                result.checked += 1
                if not (low - slack <= value <= high + slack):
                    result.problems.append(
                        f"{dataset}/{method}/{metric}: {value:+.3f} outside the committed "
                        f"95 % interval [{low:+.3f}, {high:+.3f}]"
                    )


def _conclusion_flags(fresh, committed, result):
    for key in ("winners", "headline"):
        old, new = committed.get(key, {}), fresh.get(key, {})
        for name in old:
            if new.get(name) != old[name]:
                result.flags.append(
                    f"{key}/{name}: {new.get(name)!r} now, {old[name]!r} committed"
                )


def check_envelope(
    fresh: Mapping,
    committed: Mapping,
    *,
    isa_allowance: float,
    z: float = 3.0,
    tau_slack: float = 0.02,
    tau_metrics=("weighted_tau", "kendall_tau"),
) -> EnvelopeResult:
    """Compare a from-scratch metrics tree with the committed one (see module docstring).

    Args:
        fresh, committed: metrics JSON trees as ``ReportSession.write_metrics`` writes them.
        isa_allowance: the largest change of a model's truth that another instruction set
            caused in benchmarks/isa_envelope.py (``evaluation.isa_allowance``).
        z: how many standard errors of the seed noise a truth may move.
        tau_slack: added to both ends of a committed interval.
    """
    result = EnvelopeResult()
    _truth_checks(fresh, committed, z, isa_allowance, result)
    _tau_checks(fresh, committed, tau_metrics, tau_slack, result)
    _conclusion_flags(fresh, committed, result)
    return result
