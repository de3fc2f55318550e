"""TransRate (Huang, Huang, Rong, Yang & Wei, ICML 2022) and its F-label form.

Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022. TransRate is the
mutual information between features and labels, estimated with the coding rate of
Ma et al. (2007) in place of the entropy, on centred features Z (N x D):

    R(Z, eps)     = 1/2 log det( I_D + Z^T Z / (N eps) )
    R(Z, eps | Y) = sum_c (N_c / N) R(Z_c, eps)       (Z_c: the N_c rows of class c)
    TrR           = R(Z, eps) - R(Z, eps | Y).

``eps`` is the paper's squared distortion eps^2 (its code passes it as ``eps`` and divides
by ``N * eps``); the default 1e-4 is the value of the authors' code. The class term is
weighted by class frequency N_c / N, the conditional entropy H(Z | Y) = sum_c p(c) H(Z | c)
of the paper's derivation; the authors' code (and most reimplementations) take the
unweighted mean over classes instead, which coincides for balanced classes:
``class_weighting="uniform"`` reproduces it.

Determinants are computed on the smaller of the two Gram matrices (Sylvester's identity
det(I_D + A^T A / k) = det(I_n + A A^T / k)), by Cholesky.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from emms._validation import InputError, check_features, check_labels

__all__ = ["transrate", "transrate_flabel"]


def _half_logdet_identity_plus(gram: np.ndarray, scale: float) -> float:
    """1/2 log det(I + scale * gram) for a PSD ``gram``, by Cholesky."""
    matrix = gram * scale
    matrix[np.diag_indices_from(matrix)] += 1.0
    chol = linalg.cholesky(matrix, lower=True, check_finite=False)
    return float(np.sum(np.log(np.diag(chol))))


def _coding_rate(z: np.ndarray, eps: float) -> float:
    """R(Z, eps) = 1/2 log det(I_D + Z^T Z / (n eps)) for Z (n, D)."""
    n, d = z.shape
    gram = z @ z.T if n < d else z.T @ z
    return _half_logdet_identity_plus(gram, 1.0 / (n * eps))


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not eps > 0:
        raise InputError(f"eps={eps} must be > 0 (the squared distortion of the coding rate).")
    return eps


def _class_rate(z: np.ndarray, ids: np.ndarray, n_classes: int, eps: float, weighting: str):
    counts = np.bincount(ids, minlength=n_classes)
    order = np.argsort(ids, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    rates = np.array(
        [
            _coding_rate(z[order[bounds[c] : bounds[c + 1]]], eps) if counts[c] else 0.0
            for c in range(n_classes)
        ]
    )
    present = counts > 0
    if weighting == "frequency":
        return float(np.sum(counts[present] / counts.sum() * rates[present]))
    return float(np.mean(rates[present]))


def _check_weighting(class_weighting: str) -> str:
    if class_weighting not in ("frequency", "uniform"):
        raise InputError(
            f"class_weighting={class_weighting!r} is unknown; use 'frequency' (the paper's "
            "R(Z|Y)) or 'uniform' (the authors' code)."
        )
    return class_weighting


def transrate(features, labels, *, eps: float = 1e-4, class_weighting: str = "frequency") -> float:
    """TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022).

    TrR = R(Z, eps) - sum_c w_c R(Z_c, eps), with R(Z, eps) = 1/2 logdet(I + Z^T Z/(n eps))
    on the centred features Z, w_c = N_c / N (see module docstring).

    Args:
        features: (N, D).
        labels: (N,) class ids, C >= 2.
        eps: squared distortion (default 1e-4 as in the authors' code).
        class_weighting: ``"frequency"`` (paper, default) or ``"uniform"`` (authors' code).

    Returns:
        TransRate in nats, higher is better.

    Cost: O(N D min(N, D) + min(N, D)^3) for R(Z), plus sum_c O(N_c D min(N_c, D)) for the
    class terms.
    """
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    eps = _check_eps(eps)
    weighting = _check_weighting(class_weighting)
    z = np.asarray(f, dtype=np.float64)
    z = z - z.mean(axis=0)
    return _coding_rate(z, eps) - _class_rate(z, ids, len(classes), eps, weighting)


def _value_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Class ids 0..n_bins-1 from the VALUE quantiles of ``values`` (ties share a bin)."""
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def transrate_flabel(
    features,
    label_embeddings,
    *,
    n_bins: int = 10,
    eps: float = 1e-4,
    class_weighting: str = "frequency",
    max_dims: int | None = None,
    seed: int = 0,
) -> float:
    """TransRate on F-labels: each embedding dimension discretised by value, then averaged.

    TransRate needs class labels; real-valued label embeddings (F-labels, N x L per
    foundation model) have none. For every one of the L K embedding columns, the samples
    are split into ``n_bins`` classes at the empirical quantiles of that column's VALUES
    (bin b holds the values between the b/n_bins and (b+1)/n_bins quantiles; tied values
    share a bin), :func:`transrate` is computed against those classes, and the L K values
    are averaged. (The EMMS authors' release bins by array position instead of by value,
    which makes the classes depend on the order of the samples.) A column with a single
    distinct value carries no information and contributes 0.

    Args:
        features: (N, D).
        label_embeddings: (N, L, K), (N, L) or a list of K (N, L_k) arrays.
        n_bins: classes per embedding column (quantile bins).
        eps, class_weighting: as in :func:`transrate`.
        max_dims: average over a random subset of this many of the L K columns (seeded by
            ``seed``) instead of all of them: an unbiased estimate of the same average, for
            wide embeddings. ``None`` (default): every column.
        seed: random state of that subset.

    Returns:
        Mean TransRate over the embedding columns, higher is better.

    Cost: R(Z) once, O(N D min(N, D) + min(N, D)^3); then per column O(N log N) for the
    bins and sum_b O(N_b D min(N_b, D) + min(N_b, D)^3) with N_b ~ N / n_bins.
    """
    from emms.selectors.preprocessing import as_label_embedding_stack

    f = check_features(features)
    blocks = as_label_embedding_stack(label_embeddings, f.shape[0])
    eps = _check_eps(eps)
    weighting = _check_weighting(class_weighting)
    if int(n_bins) < 2:
        raise InputError(f"n_bins={n_bins} must be >= 2 (classes per embedding column).")
    n_bins = int(n_bins)
    columns = [(k, j) for k in range(len(blocks)) for j in range(blocks[k].shape[1])]
    if max_dims is not None:
        if int(max_dims) < 1:
            raise InputError(f"max_dims={max_dims} must be >= 1 or None.")
        if int(max_dims) < len(columns):
            rng = np.random.default_rng(seed)
            chosen = np.sort(rng.choice(len(columns), size=int(max_dims), replace=False))
            columns = [columns[i] for i in chosen]

    z = np.asarray(f, dtype=np.float64)
    z = z - z.mean(axis=0)
    total = _coding_rate(z, eps)
    scores = []
    for k, j in columns:
        bins = _value_bins(np.asarray(blocks[k][:, j], dtype=np.float64), n_bins)
        _, ids = np.unique(bins, return_inverse=True)
        n_classes = int(ids.max()) + 1
        if n_classes < 2:
            scores.append(0.0)
            continue
        scores.append(total - _class_rate(z, ids, n_classes, eps, weighting))
    return float(np.mean(scores))
