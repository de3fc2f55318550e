"""SFDA: Self-challenging Fisher Discriminant Analysis (Shao et al., ECCV 2022).

Shao, Zhao, Ge, Zhang, Yang, Wang, Shan & Luo, "Not All Models Are Equal: Predicting Model
Transferability in a Self-challenging Fisher Space", ECCV 2022.

1. Regularised FDA. Within-class scatter S_W = sum_c (N_c/N) cov_c, between-class scatter
   S_B = sum_c (N_c/N) (mu_c - mu)(mu_c - mu)^T, and the shrunk within-class scatter

       S_W' = (1 - lam) S_W + lam (tr S_W / D) I,    lam = exp(-a sigma_max(S_W)),

   with the adaptive strength of the paper (a > 0; sigma_max the largest eigenvalue). The
   Fisher space is x~ = U^T x for the top min(C - 1, D) generalised eigenvectors of
   S_B u = omega S_W' u (normalised U^T S_W' U = I), and the Bayes classifier there is
   p(c | x) = softmax_c( x~^T mu~_c - 1/2 |mu~_c|^2 + log pi_c ).
2. ConfMix ("self-challenging"): every sample is mixed towards the mean of the OTHER
   classes' means with the confidence of its true class,
   x^_i = p_i x_i + (1 - p_i) mean_{c != y_i} mu_c.
3. Regularised FDA again on the mixed features (same lam); the score is the mean
   probability of the true class, (1/N) sum_i p(y_i | x^_i).

Computation. The generalised eigenvectors with omega = 0 are orthogonal (in the S_W'
metric) to every mu_c - mu, so they shift every class's discriminant by the same amount:
the Fisher-space posterior equals the shrinkage-LDA posterior
softmax_c( x^T S_W'^-1 mu_c - 1/2 mu_c^T S_W'^-1 mu_c + log pi_c ), which is what is
computed (one Cholesky factorisation instead of a generalised eigenproblem; the tests
check both agree).

Choices (and how they differ from the authors' release):
- a = 5 and the shrinkage target (tr S_W / D) I are the release's (a plain identity would
  make the projection depend on the units of the features); sigma_max is computed exactly
  (the release uses 3 power iterations) and lam is floored at 1e-10 as in the release.
- S_B is the exact between-class scatter (the release subtracts the shrunk S_W from a
  shrunk total scatter, which also shrinks S_B towards a multiple of I).
- ``soften=True`` (default) applies, as the release does, a second softmax over the
  CLASSES to the first-stage posteriors before ConfMix (the release's comment: "soften the
  probability ... for meaningful confidential mixture"); ``soften=False`` mixes with the
  posteriors themselves. Softmaxes are over classes (axis 1), never over samples.
- The input is never modified (the release overwrites the caller's features in ConfMix).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from emms._validation import InputError, check_features, check_labels

from ._common import class_counts, class_means, require_per_class, softmax_rows

__all__ = ["sfda"]


def _scatters(x: np.ndarray, ids: np.ndarray, n_classes: int):
    """Class means (C, D), priors (C,), within-class scatter S_W (D, D)."""
    n = x.shape[0]
    means = class_means(x, ids, n_classes)
    priors = class_counts(ids, n_classes) / n
    resid = x - means[ids]
    within = (resid.T @ resid) / n
    return means, priors, within


def _shrinkage(within: np.ndarray, a: float) -> float:
    d = within.shape[0]
    largest = float(linalg.eigh(within, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0])
    return max(float(np.exp(-a * largest)), 1e-10)


def _fisher_posteriors(x: np.ndarray, ids: np.ndarray, n_classes: int, lam: float | None, a: float):
    """First/second-stage posteriors (N, C) of regularised FDA, and the lam used."""
    means, priors, within = _scatters(x, ids, n_classes)
    d = x.shape[1]
    trace = float(np.trace(within))
    if trace <= 0:
        raise InputError(
            "features have no within-class variance (every class is a single point); "
            "SFDA's Fisher space is undefined."
        )
    if lam is None:
        lam = _shrinkage(within, a)
    shrunk = (1.0 - lam) * within
    shrunk[np.diag_indices(d)] += lam * trace / d
    try:
        factor = linalg.cho_factor(shrunk, lower=True, check_finite=False)
    except linalg.LinAlgError as err:
        raise InputError(
            "features: the shrunk within-class scatter is numerically singular (D >= N, or "
            "duplicated feature columns); reduce D, e.g. by PCA, before SFDA."
        ) from err
    coef = linalg.cho_solve(factor, means.T, check_finite=False)  # S_W'^-1 mu_c, (D, C)
    scores = x @ coef - 0.5 * np.einsum("cd,dc->c", means, coef) + np.log(priors)
    return softmax_rows(scores), lam


def sfda(features, labels, *, a: float = 5.0, soften: bool = True) -> float:
    """SFDA score (Shao et al., "Not All Models Are Equal: Predicting Model Transferability
    in a Self-challenging Fisher Space", ECCV 2022).

    Regularised FDA -> ConfMix x^_i = p_i x_i + (1 - p_i) mean_{c != y_i} mu_c -> regularised
    FDA on x^ -> score = (1/N) sum_i p(y_i | x^_i). See the module docstring for details.

    Args:
        features: (N, D).
        labels: (N,) class ids, C >= 2, at least 2 samples per class.
        a: strength of the adaptive shrinkage lam = exp(-a sigma_max(S_W)) (release: 5).
        soften: soften the first-stage posteriors by a softmax over classes before ConfMix
            (the release's behaviour).

    Returns:
        Mean posterior of the true class in (0, 1), higher is better.

    Cost: O(N D^2 + D^3 + N D C), twice.
    """
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    n_classes = len(classes)
    require_per_class(ids, n_classes, 2, "SFDA")
    if not a > 0:
        raise InputError(f"a={a} must be > 0.")
    x = np.asarray(f, dtype=np.float64)
    rows = np.arange(x.shape[0])

    probs, lam = _fisher_posteriors(x, ids, n_classes, None, a)
    if soften:
        probs = softmax_rows(probs)
    confidence = probs[rows, ids][:, None]
    means = class_means(x, ids, n_classes)
    others = (means.sum(axis=0) - means) / (n_classes - 1)  # mean of the other classes' means
    mixed = confidence * x + (1.0 - confidence) * others[ids]

    probs, _ = _fisher_posteriors(mixed, ids, n_classes, lam, a)
    return float(np.mean(probs[rows, ids]))
