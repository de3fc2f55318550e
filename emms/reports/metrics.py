"""The metrics JSON CI compares: flattening, the largest change, the list of problems."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["flatten", "max_metric_change", "compare_metrics"]


#: Top-level keys that describe where and how fast a run happened, not what it computed
#: (wall-clock ratios change from run to run; the summary report reads them).
PROVENANCE_KEYS = ("machine", "wallclock")


def flatten(tree, prefix=""):
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``, leaving out :data:`PROVENANCE_KEYS`."""
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            if not prefix and key in PROVENANCE_KEYS:
                continue
            out.update(flatten(value, f"{prefix}{key}/"))
        return out
    if isinstance(tree, list):
        return {f"{prefix}{i}": value for i, value in enumerate(tree)}
    return {prefix.rstrip("/"): tree}


def _numeric(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def max_metric_change(fresh: Mapping, committed: Mapping) -> float:
    """The largest absolute difference between numeric entries present in both trees."""
    a, b = flatten(fresh), flatten(committed)
    changes = [
        abs(a[key] - b[key])
        for key in set(a) & set(b)
        if _numeric(a[key]) and _numeric(b[key]) and not (np.isnan(a[key]) or np.isnan(b[key]))
    ]
    return max(changes, default=0.0)


def compare_metrics(fresh: Mapping, committed: Mapping, tolerance: float) -> list[str]:
    """Entries of two metric trees that differ by more than ``tolerance`` (or are missing)."""
    a, b = flatten(fresh), flatten(committed)
    problems = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            problems.append(f"{key}: only in {'committed' if key in b else 'fresh'} metrics")
            continue
        x, y = a[key], b[key]
        if _numeric(x) and _numeric(y):
            if not (abs(x - y) <= tolerance or (np.isnan(x) and np.isnan(y))):
                problems.append(f"{key}: fresh {x:.6g} vs committed {y:.6g}")
        elif x != y:
            problems.append(f"{key}: fresh {x!r} vs committed {y!r}")
    return problems
