"""Input checks shared by every selector.

Each check raises :class:`InputError` (a ``ValueError``) whose message names the offending
input and says how to fix it. None of them modifies its argument: they return a view or a
fresh array, never write into the caller's memory.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "InputError",
    "HighDimensionWarning",
    "check_features",
    "check_labels",
    "check_targets",
    "check_probabilities",
    "float_dtype",
]


class InputError(ValueError):
    """Bad input to a selector: the message names the input and the fix."""


class HighDimensionWarning(UserWarning):
    """More feature dimensions than samples: least-squares residuals collapse to zero."""


def float_dtype(dtype=None) -> np.dtype:
    """The floating dtype to work in: ``dtype`` if given (float32 or float64), else
    float64, whatever the inputs' dtype: float32 sums over N D terms lose the digits that
    ill-conditioned features need (see :func:`emms.emms`)."""
    if dtype is None:
        return np.dtype(np.float64)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype={dtype} is not supported: pass 'float32' or 'float64'.")
    return dtype


def _as_real_array(value, name: str) -> np.ndarray:
    if value is None:
        raise InputError(f"{name} is None: pass a numeric array.")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or array.dtype == np.bool_
    ):
        raise InputError(f"{name} has dtype {array.dtype}; pass real numbers (float32 or float64).")
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int(np.isinf(array).sum())
        raise InputError(
            f"{name} contains {n_nan} NaN and {n_inf} inf values; remove or impute those "
            "rows (e.g. re-extract the features) before scoring."
        )


def check_features(features, *, name: str = "features", min_samples: int = 2) -> np.ndarray:
    """Validate a feature matrix.

    Args:
        features: array-like, shape (N, D).
        name: how the input is called in error messages.
        min_samples: the smallest N accepted.

    Returns:
        The same data as an ndarray of shape (N, D) (not copied when already an array).
    """
    array = _as_real_array(features, name)
    if array.ndim != 2:
        raise InputError(
            f"{name} must be 2-D (N samples x D dimensions), got shape {array.shape}; "
            "reshape with .reshape(len(x), -1)."
        )
    n, d = array.shape
    if n < min_samples:
        raise InputError(f"{name} has N={n} samples; at least {min_samples} are needed.")
    if d < 1:
        raise InputError(f"{name} has no columns (shape {array.shape}).")
    _check_finite(array, name)
    return array


def check_labels(
    labels, n_samples: int, *, name: str = "labels", min_classes: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate class labels and map them to ids 0..C-1.

    Args:
        labels: array-like of shape (N,), integer class ids (or any sortable labels).
        n_samples: the N the labels must match.

    Returns:
        ``(ids, classes)``: int64 ids of shape (N,) and the sorted distinct labels (C,).
    """
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(
            f"{name} must be 1-D class ids of shape (N,), got shape {array.shape}; for "
            "real-valued targets use the regression form of the selector."
        )
    if len(array) != n_samples:
        raise InputError(
            f"{name} has {len(array)} entries but the features have N={n_samples} rows; "
            "pass one label per feature row."
        )
    if np.issubdtype(array.dtype, np.floating):
        _check_finite(array, name)
        if not np.all(array == np.round(array)):
            raise InputError(
                f"{name} holds non-integer floats; class ids must be integers (for "
                "real-valued targets use regression=True)."
            )
    classes, ids = np.unique(array, return_inverse=True)
    if len(classes) < min_classes:
        raise InputError(
            f"{name} has {len(classes)} distinct class(es); at least {min_classes} are "
            "needed to measure transferability."
        )
    return ids.astype(np.int64), classes


def check_targets(targets, n_samples: int, *, name: str = "targets") -> np.ndarray:
    """Validate real-valued regression targets: shape (N,) or (N, C), returned as (N, C)."""
    array = _as_real_array(targets, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InputError(f"{name} must be (N,) or (N, C), got shape {array.shape}.")
    if array.shape[0] != n_samples:
        raise InputError(
            f"{name} has {array.shape[0]} rows but the features have N={n_samples}; "
            "pass one target row per feature row."
        )
    _check_finite(array, name)
    return array


def check_probabilities(
    probabilities, n_samples: int, *, name: str = "source_probs", atol: float = 1e-4
) -> np.ndarray:
    """Validate a row-stochastic matrix of shape (N, Z): non-negative rows summing to 1."""
    array = check_features(probabilities, name=name)
    if array.shape[0] != n_samples:
        raise InputError(
            f"{name} has {array.shape[0]} rows but the labels have N={n_samples}; "
            "pass one probability row per sample."
        )
    if (array < 0).any():
        raise InputError(f"{name} has negative entries; pass probabilities (softmax outputs).")
    sums = array.sum(axis=1)
    worst = float(np.max(np.abs(sums - 1.0)))
    if worst > atol:
        raise InputError(
            f"{name} rows must sum to 1 (worst row sums to {1.0 + worst:.6g} or "
            f"{1.0 - worst:.6g}); apply a softmax over the source classes (axis=1)."
        )
    return array


def warn_if_high_dimensional(n_samples: int, n_dims: int, *, name: str = "features") -> None:
    """Warn when D >= N - 1: centred features then span every centred target exactly."""
    if n_dims >= n_samples - 1:
        warnings.warn(
            f"{name} has D={n_dims} dimensions for N={n_samples} samples: after centring, "
            "a linear fit is exact and the residual collapses to 0 for every model. Use "
            "more samples, reduce D (e.g. PCA), or set ridge > 0.",
            HighDimensionWarning,
            stacklevel=3,
        )
