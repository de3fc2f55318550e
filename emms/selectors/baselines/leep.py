"""LEEP: Log Expected Empirical Prediction (Nguyen, Hassner, Seeger & Archambeau, ICML 2020).

The source model's softmax outputs theta_i (Z source classes) on the target data define
the empirical joint of target label y and source label z,

    P(y, z) = (1/N) sum_{i: y_i = y} theta_i(z),   P(z) = sum_y P(y, z),
    P(y | z) = P(y, z) / P(z),

and LEEP is the mean log-likelihood of the "expected empirical predictor"

    LEEP = (1/N) sum_i log sum_z P(y_i | z) theta_i(z)     (<= 0; 0 for a perfect source).
"""

from __future__ import annotations

import numpy as np

from emms._validation import check_features, check_labels, check_probabilities

from ._common import class_means

__all__ = ["leep"]


def _leep_score(theta: np.ndarray, ids: np.ndarray, n_classes: int) -> float:
    n = theta.shape[0]
    counts = np.bincount(ids, minlength=n_classes)
    joint = class_means(theta, ids, n_classes) * (counts[:, None] / n)  # (C, Z) = P(y, z)
    marginal = joint.sum(axis=0)  # P(z)
    conditional = np.divide(
        joint, marginal, out=np.zeros_like(joint), where=marginal > 0
    )  # P(y | z); a source class that no sample predicts contributes nothing
    expected = np.einsum("iz,iz->i", theta, conditional[ids])
    # expected <= 1 exactly (a convex combination of probabilities); clip rounding above 1
    return float(np.mean(np.log(np.minimum(expected, 1.0))))


def leep(source_probs, labels) -> float:
    """LEEP score (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of
    Learned Representations", ICML 2020).

    LEEP = (1/N) sum_i log sum_z P(y_i | z) theta_i(z), with P(y | z) from the empirical
    joint P(y, z) = (1/N) sum_{i: y_i = y} theta_i(z).

    Args:
        source_probs: (N, Z) softmax outputs of the source model's own head over its Z
            source classes (rows non-negative, summing to 1).
        labels: (N,) target class ids (C >= 2 distinct values).

    Returns:
        LEEP <= 0 (higher is better); 0 when every source class maps to one target class.

    Cost: O(N Z) time and memory (the C x Z joint is O(C Z)).

    Raises:
        InputError: NaN/inf, rows not summing to 1, negative entries, N mismatch, < 2 classes.
    """
    theta = check_features(source_probs, name="source_probs")
    ids, classes = check_labels(labels, theta.shape[0])
    theta = check_probabilities(theta, theta.shape[0], name="source_probs")
    return _leep_score(np.asarray(theta, dtype=np.float64), ids, len(classes))
