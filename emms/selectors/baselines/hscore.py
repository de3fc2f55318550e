"""H-score (Bao et al., ICIP 2019) and its shrinkage-regularised form (Ibrahim et al.,
ECML-PKDD 2022).

Bao, Li, Huang, Wang, Zamir & Guibas, "An Information-Theoretic Approach to Transferability
in Task Transfer Learning", ICIP 2019:

    H(f) = tr( cov(f)^-1 cov(E[f | y]) ),

cov(f) the (population) covariance of the features, cov(E[f | y]) the covariance of the
class-conditional means, sum_c (N_c / N) (mu_c - mu)(mu_c - mu)^T. The inverse is the
Moore-Penrose pseudo-inverse, as in the authors' code (cov(f) is singular when D >= N).

Ibrahim, Ponomareva & Mazumder, "Newer is not always better: Rethinking transferability
metrics, their peculiarities, stability and performance", ECML-PKDD 2022 (regularised H-score):
with the shrinkage estimator cov_a = (1 - a) cov(f) + a (tr cov(f) / D) I,

    H_a(f) = tr( cov_a^-1 (1 - a) cov(E[f | y]) ),

a from Ledoit & Wolf (2004) (``shrinkage="ledoit-wolf"``) or fixed (a float in [0, 1]).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from emms._validation import HighDimensionWarning, InputError, check_features, check_labels

from ._common import class_counts, class_means

__all__ = ["hscore"]


def hscore(features, labels, *, shrinkage: str | float | None = None) -> float:
    """H-score (Bao et al., ICIP 2019); regularised H-score (Ibrahim et al., ECML-PKDD 2022).

    H = tr(cov(f)^+ cov(E[f|y])) = sum_c (N_c/N) (mu_c - mu)^T cov(f)^+ (mu_c - mu).

    Args:
        features: (N, D).
        labels: (N,) class ids, C >= 2.
        shrinkage: ``None``: plain H-score with the pseudo-inverse; ``"ledoit-wolf"``:
            regularised H-score with the Ledoit-Wolf shrinkage a; a float in [0, 1]: that a.

    Returns:
        The (regularised) H-score, >= 0, higher is better; at most C - 1 without shrinkage.

    Cost: O(N D^2 + D^3) (covariance, eigen- or Cholesky decomposition).
    """
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    n, d = f.shape
    x = np.asarray(f, dtype=np.float64)
    x = x - x.mean(axis=0)
    cov = (x.T @ x) / n
    trace = float(np.trace(cov))
    if trace <= 0:
        raise InputError("features are constant (zero variance); H-score is undefined.")
    weights = class_counts(ids, len(classes)) / n
    means = class_means(x, ids, len(classes))  # centred class means, (C, D)

    if shrinkage is None:
        if d >= n - 1:
            warnings.warn(
                f"features have D={d} dimensions for N={n} samples: the covariance is "
                "singular and the plain H-score saturates at C - 1 for every model; use "
                "shrinkage='ledoit-wolf' (Ibrahim et al., 2022) or reduce D.",
                HighDimensionWarning,
                stacklevel=2,
            )
        evals, evecs = linalg.eigh(cov)
        keep = evals > evals.max() * d * np.finfo(np.float64).eps
        projected = means @ evecs[:, keep]
        return float(np.sum(weights[:, None] * projected**2 / evals[keep]))

    if isinstance(shrinkage, str):
        if shrinkage.lower().replace("_", "-") != "ledoit-wolf":
            raise InputError(
                f"shrinkage={shrinkage!r} is unknown; pass None, 'ledoit-wolf' or a float."
            )
        from sklearn.covariance import ledoit_wolf_shrinkage

        alpha = float(ledoit_wolf_shrinkage(x, assume_centered=True))
    else:
        alpha = float(shrinkage)
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"shrinkage={shrinkage} must be in [0, 1].")
    shrunk = (1.0 - alpha) * cov
    shrunk[np.diag_indices(d)] += alpha * trace / d
    try:
        factor = linalg.cho_factor(shrunk, lower=True)
    except linalg.LinAlgError as err:
        raise InputError(
            "the shrunk feature covariance is singular (shrinkage 0 with D >= N?); use "
            "shrinkage='ledoit-wolf' or a positive float."
        ) from err
    solved = linalg.cho_solve(factor, means.T)  # (D, C)
    return float((1.0 - alpha) * np.sum(weights * np.einsum("cd,dc->c", means, solved)))
