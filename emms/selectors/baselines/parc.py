"""PARC: Pairwise Annotation Representation Comparison (Bolya et al., NeurIPS 2021).

Bolya, Mittapalli & Hoffman, "Scalable Diverse Model Selection for Accessible Transfer
Learning", NeurIPS 2021. PARC compares two representational dissimilarity matrices (RDMs)
over the N samples: that of the features, reduced by PCA to ``n_dims`` = 32 dimensions
and standardised column-wise, and that of the one-hot labels,

    RDM_F = 1 - corrcoef(F~),  RDM_Y = 1 - corrcoef(onehot(y))     (N x N, rows = samples)
    PARC  = Spearman( lower triangle of RDM_F, lower triangle of RDM_Y ).

For one-hot rows, corrcoef is 1 within a class and -1/(C - 1) across classes, so RDM_Y
takes two values; Spearman's rho against a two-valued variable is the Pearson correlation
of the ranks of RDM_F with the "different class" indicator, which is what is computed
(the N(N-1)/2 ranks once, no N x N label matrix). The result is in [-1, 1] (the release
multiplies it by 100).

The PCA's component signs follow scikit-learn's convention (largest loading positive), as
in the authors' code: PARC is not invariant to flipping a component, so the convention is
part of the method. ``max_samples`` (default ``None``: all) scores a seeded random subset
of that many samples: the cost is quadratic in N (the release subsamples to 15,000).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from emms._validation import InputError, check_features, check_labels

from ._common import canonical_order, pca

__all__ = ["parc"]


def parc(
    features, labels, *, n_dims: int | None = 32, seed: int = 0, max_samples: int | None = None
) -> float:
    """PARC (Bolya et al., "Scalable Diverse Model Selection for Accessible Transfer
    Learning", NeurIPS 2021).

    PARC = Spearman(triu(1 - corrcoef(standardise(PCA_32(F)))), triu(1 - corrcoef(onehot(y)))).

    Args:
        features: (N, D).
        labels: (N,) class ids, C >= 2.
        n_dims: PCA dimensions (paper: 32); ``None`` or >= D keeps the features (no PCA).
        seed: random state of the ``max_samples`` subset.
        max_samples: score a random subset of this many samples (``None``: all).

    Returns:
        Spearman's rho in [-1, 1], higher is better.

    Cost: PCA O(N D min(N, D) + min(N, D)^3); then O(N^2 d) for the N x N correlations and
    O(N^2 log N) to rank their N(N-1)/2 entries; memory O(N^2).
    """
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    x = np.asarray(f, dtype=np.float64)
    n = x.shape[0]
    if max_samples is not None and int(max_samples) < n:
        if int(max_samples) < 3:
            raise InputError(f"max_samples={max_samples} must be >= 3 or None.")
        order = canonical_order(x, ids)
        rng = np.random.default_rng(seed)
        keep = np.sort(order[rng.choice(n, size=int(max_samples), replace=False)])
        x, ids = x[keep], ids[keep]
        n = x.shape[0]
        if len(np.unique(ids)) < 2:
            raise InputError("the max_samples subset holds one class; raise max_samples.")
    if n < 3:
        raise InputError(f"features have N={n} samples; PARC needs at least 3.")
    if n_dims is not None and int(n_dims) < x.shape[1]:
        if int(n_dims) < 2:
            raise InputError(f"n_dims={n_dims} must be >= 2: correlations need 2 dimensions.")
        x = pca(x, n_components=int(n_dims))
    if x.shape[1] < 2:
        raise InputError(
            f"features have D={x.shape[1]} dimension(s); PARC correlates samples across "
            "dimensions and needs at least 2."
        )
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)  # StandardScaler
    rows = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1)
    if (norms <= 0).any():
        bad = int(np.argmax(norms <= 0))
        raise InputError(
            f"features row {bad} is constant across the {x.shape[1]} (reduced, standardised) "
            "dimensions, so its correlation with other samples is undefined; remove it."
        )
    rows /= norms[:, None]
    corr = rows @ rows.T

    size = n * (n - 1) // 2
    dissimilarity = np.empty(size)
    different = np.empty(size, dtype=bool)
    start = 0
    for i in range(n - 1):
        stop = start + n - 1 - i
        dissimilarity[start:stop] = 1.0 - corr[i, i + 1 :]
        different[start:stop] = ids[i + 1 :] != ids[i]
        start = stop
    del corr
    if different.all() or not different.any():
        raise InputError(
            "labels: every pair of samples is in different classes (or all in the same one); "
            "PARC needs pairs of both kinds."
        )
    ranks = stats.rankdata(dissimilarity)
    del dissimilarity
    ranks -= ranks.mean()
    indicator = different - different.mean()
    return float(
        np.dot(ranks, indicator) / np.sqrt(np.dot(ranks, ranks) * np.dot(indicator, indicator))
    )
