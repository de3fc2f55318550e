"""GBC: Gaussian Bhattacharyya Coefficient (Pandy et al., CVPR 2022).

Pandy, Agostinelli, Uijlings, Ferrari & Mensink, "Transferability Estimation using
Bhattacharyya Class Separability", CVPR 2022. Each class c of the (PCA-reduced) features
is modelled as a Gaussian N(mu_c, Sigma_c) with a DIAGONAL covariance (the paper's
recommended variant); the overlap of two classes is the Bhattacharyya coefficient
BC = exp(-D_B) with

    D_B = 1/8 (mu_i - mu_j)^T S^-1 (mu_i - mu_j) + 1/2 log( det S / sqrt(det S_i det S_j) ),
    S = (S_i + S_j) / 2,

and GBC = - sum_{i != j} BC(c_i, c_j) over ordered pairs of classes. GBC <= 0 and tends to
0 as the classes separate.

Dimensions: the features are first projected on their top ``n_dims`` = 64 principal
components (our reading of the paper's PCA step; capped at the rank; ``None`` keeps the
raw features). The per-class variances are maximum-likelihood estimates (divisor N_c),
floored at 1e-10 x the mean feature variance so that a dimension constant within a class
does not produce log 0.
"""

from __future__ import annotations

import numpy as np

from emms._validation import InputError, check_features, check_labels

from ._common import class_means, pca, require_per_class

__all__ = ["gbc"]


def gbc(features, labels, *, n_dims: int | None = 64) -> float:
    """Gaussian Bhattacharyya Coefficient (Pandy et al., "Transferability Estimation using
    Bhattacharyya Class Separability", CVPR 2022).

    GBC = - sum_{i != j} exp(-D_B(c_i, c_j)), D_B the Bhattacharyya distance between the
    diagonal Gaussians of classes i and j in the top ``n_dims`` principal components.

    Args:
        features: (N, D).
        labels: (N,) class ids, C >= 2, at least 2 samples per class.
        n_dims: PCA dimensions (default 64); ``None`` uses the features as they are.

    Returns:
        GBC in [-C (C - 1), 0], higher (closer to 0) is better.

    Cost: PCA O(N D min(N, D) + min(N, D)^3); then O(N d + C^2 d) for d = n_dims.
    """
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    n_classes = len(classes)
    require_per_class(ids, n_classes, 2, "GBC")
    x = np.asarray(f, dtype=np.float64)
    if n_dims is not None:
        if int(n_dims) < 1:
            raise InputError(f"n_dims={n_dims} must be >= 1 or None.")
        x = pca(x, n_components=int(n_dims))
    means = class_means(x, ids, n_classes)
    variances = class_means((x - means[ids]) ** 2, ids, n_classes)
    floor = 1e-10 * max(float(np.mean(x.var(axis=0))), np.finfo(np.float64).tiny)
    variances = np.maximum(variances, floor)
    log_var = np.log(variances)

    total = 0.0
    for i in range(n_classes - 1):
        pooled = 0.5 * (variances[i] + variances[i + 1 :])  # (C - i - 1, d)
        diff = means[i] - means[i + 1 :]
        distance = 0.125 * np.sum(diff**2 / pooled, axis=1) + 0.5 * np.sum(
            np.log(pooled) - 0.5 * (log_var[i] + log_var[i + 1 :]), axis=1
        )
        total += 2.0 * float(np.sum(np.exp(-distance)))  # BC is symmetric: (i, j) and (j, i)
    return -total
