"""Private helpers shared by the baseline selectors (not part of the public API).

Everything here works in float64 on fresh arrays and never writes into its arguments.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from emms._validation import InputError

__all__ = [
    "as_float64",
    "class_counts",
    "class_means",
    "canonical_order",
    "pca",
    "softmax_rows",
    "require_per_class",
]


def as_float64(x: np.ndarray) -> np.ndarray:
    """A float64 copy of ``x`` (always a copy, so callers may write into it)."""
    return np.array(x, dtype=np.float64, copy=True)


def class_counts(ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Samples per class, shape (C,)."""
    return np.bincount(ids, minlength=n_classes)


def class_means(x: np.ndarray, ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class means of the rows of ``x`` (N, D) -> (C, D), via one sort, O(N D)."""
    order = np.argsort(ids, kind="stable")
    counts = class_counts(ids, n_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.add.reduceat(x[order], starts, axis=0)
    return sums / counts[:, None]


def require_per_class(
    ids: np.ndarray, n_classes: int, minimum: int, selector: str, name: str = "labels"
) -> None:
    """InputError when some class has fewer than ``minimum`` samples."""
    counts = class_counts(ids, n_classes)
    if counts.min() < minimum:
        small = int(np.argmin(counts))
        raise InputError(
            f"{name}: class #{small} (in sorted order) has {int(counts[small])} sample(s); "
            f"{selector} estimates a per-class covariance and needs at least {minimum} "
            "samples per class. Add samples or drop/merge the rare classes."
        )


def canonical_order(x: np.ndarray, ids: np.ndarray, n_keys: int = 16) -> np.ndarray:
    """A row order that depends on the data only, not on how the rows were ordered.

    Rows are sorted lexicographically by their first ``n_keys`` columns (exact values,
    no arithmetic), then by label. Randomised steps (k-means initialisation of a GMM,
    subsampling) run on the rows in this order, so a permutation of the input rows gives
    bit-identical results.
    """
    keys = [ids] + [x[:, j] for j in range(min(n_keys, x.shape[1]) - 1, -1, -1)]
    return np.lexsort(keys)


def pca(
    x: np.ndarray, *, n_components: int | None = None, variance: float | None = None
) -> np.ndarray:
    """Principal-component scores of ``x`` (N, D), deterministically.

    Exactly one of ``n_components`` (keep that many, capped at the rank) or ``variance``
    (keep the fewest leading components whose explained-variance ratio exceeds it, the
    rule of ``sklearn.decomposition.PCA(n_components=variance)``) is given.

    The decomposition is the eigendecomposition of the D x D covariance (or of the N x N
    Gram matrix when N < D); each component's sign makes the largest-magnitude entry of
    its loading vector positive (scikit-learn's convention), so the output depends on the
    data only. Cost: O(N D min(N, D) + min(N, D)^3).

    Returns:
        (N, k) float64 scores.
    """
    n, d = x.shape
    xc = x - x.mean(axis=0)
    if d <= n:
        evals, evecs = linalg.eigh(xc.T @ xc)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        loadings = evecs
    else:
        evals, u = linalg.eigh(xc @ xc.T)
        evals, u = evals[::-1], u[:, ::-1]
        loadings = None
    evals = np.clip(evals, 0.0, None)
    tol = evals[0] * max(n, d) * np.finfo(np.float64).eps if evals[0] > 0 else 0.0
    rank = int(np.sum(evals > tol))
    if rank == 0:
        raise InputError("features are constant (zero variance); nothing to project.")
    if variance is not None:
        ratio = np.cumsum(evals[:rank]) / evals[:rank].sum()
        k = int(np.searchsorted(ratio, variance, side="right")) + 1
    else:
        k = int(n_components)
    k = max(1, min(k, rank))
    if loadings is None:
        loadings = (xc.T @ u[:, :k]) / np.sqrt(evals[:k])
    else:
        loadings = loadings[:, :k]
    signs = np.sign(loadings[np.abs(loadings).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    loadings = loadings * signs
    return xc @ loadings


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (classes), numerically stable."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted
