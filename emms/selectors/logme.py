"""LogME: the maximum log evidence of a Bayesian linear model on the features.

You, Liu, Wang & Long, "Ranking and Tuning Pre-trained Models", JMLR 23 (2022) (first
published as "LogME", ICML 2021). For one target y (N,) and features F (N x D), with prior
w ~ N(0, alpha^-1 I) and noise y | F, w ~ N(F w, beta^-1 I), the log evidence is

    L(alpha, beta) = D/2 log alpha + N/2 log beta - N/2 log 2 pi
                     - beta/2 ||y - F m||^2 - alpha/2 ||m||^2 - 1/2 log det A,
    A = alpha I + beta F^T F,   m = beta A^-1 F^T y,

maximised over (alpha, beta) by MacKay's fixed point
gamma = sum_i beta s_i / (alpha + beta s_i), alpha = gamma / ||m||^2,
beta = (N - gamma) / ||y - F m||^2  (s_i: eigenvalues of F^T F). The score is the mean
over targets of L / N.

With F = U S V^T (rank k) and x = U^T y every quantity is a sum over the k singular
directions, so one eigendecomposition serves all targets, and the fixed point of every
target runs at once, vectorised (each stops at its own convergence).

Differences from the public code, on purpose: the fixed point runs to a relative
tolerance of 1e-10 on alpha / beta (the release stops at 1e-3 or after 11 steps), there
is no 1e-5 added to the denominators, and classification uses one-vs-all indicator
targets for every class (the EMMS release instead regresses on the integer class id as
one target).
"""

from __future__ import annotations

import numpy as np

from emms._validation import InputError, check_features, check_labels, check_targets

from .preprocessing import as_label_embedding_stack, standardize

__all__ = [
    "logme",
    "logme_flabel",
    "logme_flabel_zoo",
    "logme_evidence",
    "spectrum",
    "fixed_point",
]


def spectrum(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, callable]:
    """Non-zero eigenvalues sigma (k,) of F^T F and a map y (N, C) -> U^T y (k, C)."""
    n, d = features.shape
    if n >= d:
        eigenvalues, v = np.linalg.eigh(features.T @ features)
        keep = eigenvalues > eigenvalues.max() * d * np.finfo(np.float64).eps
        sigma, v = eigenvalues[keep], v[:, keep]
        root = np.sqrt(sigma)

        def project(y):
            return (v.T @ (features.T @ y)) / root[:, None]

    else:
        eigenvalues, u = np.linalg.eigh(features @ features.T)
        keep = eigenvalues > eigenvalues.max() * n * np.finfo(np.float64).eps
        sigma, u = eigenvalues[keep], u[:, keep]

        def project(y):
            return u.T @ y

    return sigma, project


def logme_evidence(
    features, targets, *, tol: float = 1e-10, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum log evidence per sample of every target column.

    Args:
        features: (N, D) array.
        targets: (N,) or (N, C) real targets.
        tol: stop a target when |t_new - t| <= tol * t, with t = alpha / beta.
        max_iter: the most fixed-point steps.

    Returns:
        ``(evidence, alpha, beta)``, each of shape (C,); ``evidence`` is L(alpha, beta) / N.
    """
    f = check_features(features).astype(np.float64, copy=False)
    y = check_targets(targets, f.shape[0]).astype(np.float64, copy=False)
    sigma, project = spectrum(f)
    return fixed_point(sigma, project(y), (y * y).sum(axis=0), f.shape, tol=tol, max_iter=max_iter)


def fixed_point(
    sigma: np.ndarray,
    projections: np.ndarray,
    squared_norms: np.ndarray,
    shape: tuple[int, int],
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MacKay's fixed point for C targets at once, in the singular basis of F.

    Args:
        sigma: (k,) non-zero eigenvalues of F^T F.
        projections: (k, C) x = U^T y of every target.
        squared_norms: (C,) ||y||^2 of every target.
        shape: (N, D) of F.

    Returns:
        ``(evidence / N, alpha, beta)``, each (C,).
    """
    n, d = shape
    x2 = projections**2
    beyond_span = np.maximum(squared_norms - x2.sum(axis=0), 0.0)
    sig = sigma[:, None]
    tiny = np.finfo(np.float64).tiny
    alpha = np.ones(x2.shape[1])
    beta = np.ones(x2.shape[1])
    active = np.ones(x2.shape[1], dtype=bool)
    for _ in range(max_iter):
        t = alpha[active] / beta[active]
        x2_active = x2[:, active]
        gamma = (sig / (sig + t)).sum(axis=0)
        m2 = (x2_active * (sig / (sig + t)) / (sig + t)).sum(axis=0)
        res2 = (x2_active * (t / (sig + t)) ** 2).sum(axis=0) + beyond_span[active]
        # rank N and t -> 0: the noise-free limit, taken after the loop (_noise_free_limit)
        noise_free = (n - gamma <= n * 1e-12) | (res2 <= tiny)
        alpha[active] = gamma / np.maximum(m2, tiny)
        beta[active] = np.where(noise_free, np.inf, (n - gamma) / np.maximum(res2, tiny))
        with np.errstate(divide="ignore", invalid="ignore"):
            done = noise_free | (np.abs(alpha[active] / beta[active] - t) <= tol * t)
        active[np.flatnonzero(active)[done]] = False
        if not active.any():
            break

    with np.errstate(divide="ignore", invalid="ignore"):
        t = alpha / beta
        m2 = (x2 * (sig / (sig + t)) / (sig + t)).sum(axis=0)
        res2 = (x2 * (t / (sig + t)) ** 2).sum(axis=0) + beyond_span
        log_det = np.log(alpha + beta * sig).sum(axis=0) + (d - len(sigma)) * np.log(alpha)
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res2
            - alpha / 2 * m2
            - log_det / 2
        )
    if len(sigma) == n:
        evidence, alpha, beta = _noise_free_limit(sigma, x2, evidence, alpha, beta, t)
    return evidence / n, alpha, beta


def _noise_free_limit(sigma, x2, evidence, alpha, beta, t):
    """When F has rank N (D >= N), every target lies in its span and the evidence of a
    column grows towards a finite supremum at beta -> infinity: the fixed point drives
    t = alpha / beta to 0 and beta * res2 becomes inf * 0. In that limit the marginal
    y ~ N(0, beta^-1 I + alpha^-1 F F^T) becomes N(0, alpha^-1 F F^T); per eigen-direction
    v_i = sigma_i / alpha, so

        log p(y) = -N/2 log 2 pi - 1/2 sum_i log(sigma_i / alpha) - alpha/2 sum_i x_i^2 / sigma_i,

    maximised at alpha* = N / sum_i x_i^2 / sigma_i. Columns whose iteration left a
    non-finite evidence or a t below 1e-12 sigma_max take this limit (beta = inf)."""
    n = len(sigma)
    spread = (x2 / sigma[:, None]).sum(axis=0)
    alpha_star = n / np.maximum(spread, np.finfo(np.float64).tiny)
    limit = (
        -n / 2 * np.log(2 * np.pi) - 0.5 * np.log(sigma).sum() + n / 2 * np.log(alpha_star) - n / 2
    )
    degenerate = ~np.isfinite(evidence) | (t <= 1e-12 * sigma.max())
    better = degenerate | (limit > evidence)
    evidence = np.where(better, limit, evidence)
    alpha = np.where(better, alpha_star, alpha)
    beta = np.where(better, np.inf, beta)
    return evidence, alpha, beta


def logme(features, labels, *, regression: bool = False) -> float:
    """LogME score (You et al., JMLR 2022): mean maximum log evidence per sample.

    Args:
        features: (N, D) features of the model on the target's training data.
        labels: classification: (N,) class ids, scored as one-vs-all indicator targets,
            one per class; regression: (N,) or (N, C) real-valued targets.
        regression: which of the two.

    Returns:
        The mean over targets of the maximum log evidence divided by N (higher is better).

    Cost: O(N D min(N, D) + min(N, D)^3 + N D C).
    """
    f = check_features(features)
    if regression:
        y = check_targets(labels, f.shape[0], name="labels")
    else:
        ids, classes = check_labels(labels, f.shape[0])
        y = (ids[:, None] == np.arange(len(classes))[None, :]).astype(np.float64)
    return float(logme_evidence(f, y)[0].mean())


def logme_flabel(features, label_embeddings, *, layout: str | None = None) -> float:
    """LogME (F-label): LogME in regression mode on the F-labels, the baseline of the EMMS
    paper's headline (Meng et al., NeurIPS 2023, §4).

    The K F-labels are standardised column-wise exactly as in :func:`emms.emms` and stacked
    into one (N, L K) target matrix; the features are used as given (LogME's convention).

    Args:
        features: (N, D).
        label_embeddings: (N, L, K), (N, L) or a list of K (N, L_k) arrays.
        layout: ``"NLK"`` or ``"NKL"`` for a 3-D stack, as in :func:`emms.emms` (an
            implausible K axis, K > L or K > 32, is refused without it).

    Returns:
        Mean maximum log evidence per sample over the L K target columns.
    """
    f = check_features(features)
    targets = _flabel_targets(label_embeddings, f.shape[0], layout)
    return float(logme_evidence(f, targets)[0].mean())


def _flabel_targets(label_embeddings, n, layout):
    blocks = as_label_embedding_stack(label_embeddings, n, layout=layout)
    return np.concatenate(
        [
            standardize(np.asarray(block, dtype=np.float64), name="label_embeddings")
            for block in blocks
        ],
        axis=1,
    )


def logme_flabel_zoo(features_by_model, label_embeddings, *, layout: str | None = None) -> dict:
    """LogME (F-label) of every model of a zoo against one target, the label side once.

    ``logme_flabel_zoo({name: F}, Z)[name] == logme_flabel(F, Z)``. Shared across
    models: the checks and standardisation of the F-labels into the (N, L K) target
    matrix Y and the squared norms ||y_c||^2 of its columns (what the fixed point needs
    beyond the projections). Per model: its spectrum (one eigendecomposition of F^T F or
    F F^T), the projections U^T Y and the vectorised fixed point over all L K targets.

    Returns:
        dict model name -> score, in the mapping's order.
    """
    if not features_by_model:
        raise InputError("features_by_model is empty; pass {model name: (N, D) features}.")
    targets, norms, results = None, None, {}
    for name, features in features_by_model.items():
        f = check_features(features, name=f"features[{name!r}]").astype(np.float64, copy=False)
        if targets is None:
            targets = _flabel_targets(label_embeddings, f.shape[0], layout)
            norms = (targets * targets).sum(axis=0)
        elif f.shape[0] != targets.shape[0]:
            raise InputError(
                f"features[{name!r}] have {f.shape[0]} rows but the F-labels have "
                f"N={targets.shape[0]}; score every model on the same target samples."
            )
        sigma, project = spectrum(f)
        results[name] = float(fixed_point(sigma, project(targets), norms, f.shape)[0].mean())
    return results
