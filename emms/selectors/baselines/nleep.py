"""N-LEEP: LEEP with a Gaussian-mixture "source head" (Li et al., CVPR 2021).

Li, Jia, Sang, Zhu, Green, Wang & Gong, "Ranking Neural Checkpoints", CVPR 2021. The
features are reduced by PCA to the fewest components that keep 80% of the variance, a
Gaussian mixture with 5 components per target class is fitted to them, and LEEP is
computed with the mixture's posteriors p(component | x_i) in place of a source
classifier's softmax:

    NLEEP = (1/N) sum_i log sum_v P(y_i | v) p(v | x_i),
    P(y, v) = (1/N) sum_{i: y_i = y} p(v | x_i).

Covariance form: ``covariance_type="diag"`` by default (our choice). The authors' and
other public implementations call scikit-learn's ``GaussianMixture`` with its default
"full" covariance; with 5 C components in the hundreds of PCA dimensions that real
features keep at 80% variance, full covariances cost O(5 C d^2) memory and O(N 5 C d^2)
per EM step, which is intractable at paper scale (C = 100-397) and ill-conditioned for
components with fewer members than dimensions. Pass ``covariance_type="full"`` for the
public implementations' behaviour.

Randomness: the mixture's k-means++ initialisation uses ``seed``; it runs on the rows in
a canonical (data-determined) order, so the score does not depend on the row order.
"""

from __future__ import annotations

import warnings

import numpy as np

from emms._validation import InputError, check_features, check_labels

from ._common import canonical_order, pca
from .leep import _leep_score

__all__ = ["nleep"]

_COVARIANCE_TYPES = ("diag", "full", "spherical", "tied")


def gmm_posteriors(
    x: np.ndarray,
    ids: np.ndarray,
    n_classes: int,
    *,
    n_components_per_class: int,
    variance: float,
    covariance_type: str,
    seed: int,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA (``variance`` kept) + Gaussian mixture posteriors, on canonically ordered rows.

    Returns ``(posteriors, order)``: posteriors (N, V) row-stochastic for the rows
    ``x[order]``, and ``order``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    if covariance_type not in _COVARIANCE_TYPES:
        raise InputError(
            f"covariance_type={covariance_type!r} is unknown; choose one of {_COVARIANCE_TYPES}."
        )
    if not 0.0 < variance <= 1.0:
        raise InputError(f"variance={variance} must be in (0, 1]: the fraction of variance kept.")
    if int(n_components_per_class) < 1:
        raise InputError("n_components_per_class must be >= 1.")
    n = x.shape[0]
    n_components = int(n_components_per_class) * n_classes
    if n < n_components:
        raise InputError(
            f"features have N={n} samples but the mixture has {n_components} components "
            f"({n_components_per_class} per class x {n_classes} classes); pass more samples "
            "or a smaller n_components_per_class."
        )
    order = canonical_order(x, ids)
    reduced = pca(np.asarray(x, dtype=np.float64)[order], variance=variance)
    gmm = GaussianMixture(
        n_components=n_components,
        covariance_type=covariance_type,
        random_state=seed,
        max_iter=max_iter,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(reduced)
    return gmm.predict_proba(reduced), order


def nleep(
    features,
    labels,
    *,
    n_components_per_class: int = 5,
    variance: float = 0.8,
    covariance_type: str = "diag",
    seed: int = 0,
    max_iter: int = 100,
) -> float:
    """N-LEEP score (Li et al., "Ranking Neural Checkpoints", CVPR 2021).

    NLEEP = (1/N) sum_i log sum_v P(y_i | v) p(v | x_i), where p(v | x) are the posteriors
    of a Gaussian mixture with ``n_components_per_class * C`` components fitted to the PCA
    projection of the features that keeps ``variance`` of their variance.

    Args:
        features: (N, D) features of the model on the target's training data.
        labels: (N,) target class ids, C >= 2 classes.
        n_components_per_class: mixture components per target class (paper: 5).
        variance: fraction of variance the PCA keeps (paper: 0.8).
        covariance_type: ``"diag"`` (default, see module docstring) or ``"full"``, ...
        seed: random state of the mixture's initialisation.
        max_iter: EM iterations (scikit-learn's default, 100).

    Returns:
        NLEEP <= 0, higher is better.

    Cost: PCA O(N D min(N, D) + min(N, D)^3), then per EM step O(N V d) for V = 5 C
    components in d PCA dimensions (O(N V d^2) with full covariances).
    """
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    posteriors, order = gmm_posteriors(
        f,
        ids,
        len(classes),
        n_components_per_class=n_components_per_class,
        variance=variance,
        covariance_type=covariance_type,
        seed=seed,
        max_iter=max_iter,
    )
    return _leep_score(posteriors, ids[order], len(classes))
