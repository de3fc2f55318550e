"""PACTran (Ding, Chen, Levinboim, Changpinyo & Soricut, ECCV 2022): three instantiations.

Ding et al., "PACTran: PAC-Bayesian Metrics for Estimating the Transferability of
Pretrained Models to Classification Tasks", ECCV 2022. PACTran scores a model by the
optimal PAC-Bayesian bound of a classifier head on its features. With the Gibbs posterior
q(theta) ~ p(theta) exp(-beta L(theta)) and beta = N (so that beta L is the negative
log-likelihood of the sample), that bound is, up to constants, the negative log marginal
likelihood (evidence) per sample, -1/N log int p(theta) prod_i p(y_i | x_i, theta) d theta.
The paper instantiates it for three priors; this module returns the NEGATIVE of each
bound (a log-evidence per sample), so that, like every selector here, higher is better.

PACTran-Dirichlet (``prior="dirichlet"``). Inputs are probability vectors s_i over V
"source classes" (``probabilities=True``: the source model's softmax; otherwise the
posteriors of the N-LEEP Gaussian mixture on the features). Model: z_i ~ Cat(s_i),
y_i | z_i ~ Cat(theta_{z_i}), theta_v ~ Dir(a0) with a0_y = alpha N_y / N. The evidence
is bounded by mean-field variational inference (coordinate ascent to convergence):

    ELBO = sum_v [ log B(a0 + sum_i q_iv e_{y_i}) - log B(a0) ] - sum_i KL(q_i || s_i),

B the multivariate Beta function; it equals the exact log-evidence for one-hot s_i.

PACTran-Gamma (``prior="gamma"``). Same inputs; w_vy ~ Gamma(a0_y, beta) and
p(y | s, w) = sum_v s_v w_vy / sum_v s_v sum_y' w_vy'. Variational bound with Gamma
posteriors q(w_vy) = Gamma(a_vy, b_v), the Jensen bound over z and the first-order bound
-log D <= ... of the normaliser D_i = sum_v s_iv sum_y w_vy at lam_i = E[D_i]; all of
q(z), a, b and lam are updated by coordinate ascent to convergence (the release keeps the
rates b at the prior's beta, a looser bound of the same evidence).

PACTran-Gaussian (``prior="gaussian"``). Linear softmax head (W, b) on the centred
features, prior W ~ N(0, sigma^2 I) (``prior_variance``), flat prior on the bias b. With
the MAP (W*, b*) of the per-sample objective
J(W, b) = (1/N) sum_i CE(y_i, softmax(W^T x_i + b)) + |W|^2 / (2 N sigma^2) (L-BFGS), the
Laplace approximation of the evidence with the diagonal of the Hessian (the paper's
diagonal second-order approximation) gives the cost

    J(W*, b*) + 1/(2N) sum_{d,k} log(1 + N sigma^2 h_dk),
    h_dk = (1/N) sum_i x_id^2 p_ik (1 - p_ik).

The bias, with its improper flat prior, enters through J only. (The release instead scales
a log-mean-Hessian term by a separate posterior-variance factor and evaluates a grid of
sigma^2.) Hyper-parameters, our choices: sigma^2 = 1 (the middle of the release's grid
{0.1, 1, 10} for the same quantity), alpha = 1, beta = 1 (the release's values), and for
the mixture the N-LEEP settings (80% variance, 5 components per class, diagonal).

Normalisation: per sample (1/N); the release divides the Dirichlet/Gamma bounds by N C
instead. N and C are the same for every model of a task, so rankings do not change.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

from emms._validation import InputError, check_features, check_labels, check_probabilities

from ._common import class_counts, class_means
from .nleep import gmm_posteriors

__all__ = ["pactran"]

PRIORS = ("dirichlet", "gamma", "gaussian")


def _safe_xlogy_ratio(q: np.ndarray, log_q: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """Per-row KL(q_i || s_i) = sum_v q_iv (log q_iv - log s_iv), with 0 log 0 = 0."""
    mask = q > 0
    terms = np.zeros_like(q)
    terms[mask] = q[mask] * (log_q[mask] - log_s[mask])
    return terms.sum(axis=1)


def _log_normalise(logits: np.ndarray) -> np.ndarray:
    return logits - special.logsumexp(logits, axis=1, keepdims=True)


def _class_sums(q: np.ndarray, ids: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, V): sum over the samples of each class of q_i."""
    return class_means(q, ids, n_classes) * class_counts(ids, n_classes)[:, None]


def _dirichlet_elbo(s: np.ndarray, ids: np.ndarray, n_classes: int, alpha: float, tol, max_iter):
    n = s.shape[0]
    a0 = alpha * class_counts(ids, n_classes) / n  # (C,)
    with np.errstate(divide="ignore"):
        log_s = np.log(s)
    q, log_q = s, log_s
    log_b0 = np.sum(special.gammaln(a0)) - special.gammaln(a0.sum())
    previous = -np.inf
    for _ in range(max_iter):
        aw = a0[:, None] + _class_sums(q, ids, n_classes)  # (C, V)
        log_b = np.sum(special.gammaln(aw), axis=0) - special.gammaln(aw.sum(axis=0))
        elbo = float(np.sum(log_b - log_b0) - np.sum(_safe_xlogy_ratio(q, log_q, log_s)))
        if elbo - previous <= tol * n:
            break
        previous = elbo
        e_log_theta = special.digamma(aw) - special.digamma(aw.sum(axis=0))  # (C, V)
        log_q = _log_normalise(log_s + e_log_theta[ids])
        q = np.exp(log_q)
    return elbo / n


def _gamma_elbo(
    s: np.ndarray, ids: np.ndarray, n_classes: int, alpha: float, beta: float, tol, max_iter
):
    n = s.shape[0]
    a0 = alpha * class_counts(ids, n_classes) / n  # (C,)
    with np.errstate(divide="ignore"):
        log_s = np.log(s)
    total_s = s.sum(axis=1, keepdims=True)
    q = s / total_s
    log_q = log_s - np.log(total_s)
    aw = a0[:, None] + _class_sums(q, ids, n_classes)  # (C, V): shape a_{y v}
    bw = np.full(s.shape[1], beta)  # (V,): rate b_v, shared by the C entries of w_v
    lam = s @ (aw.sum(axis=0) / bw)  # E[D_i]

    def elbo_of(q, log_q, aw, bw, lam):
        e_log_w = special.digamma(aw) - np.log(bw)  # (C, V)
        e_w = aw / bw
        prior_terms = np.sum(
            a0[:, None] * np.log(beta)
            - special.gammaln(a0)[:, None]
            - aw * np.log(bw)
            + special.gammaln(aw)
            + (a0[:, None] - aw) * e_log_w
            + (bw - beta) * e_w
        )
        q_terms = np.sum(np.where(q > 0, q * e_log_w[ids], 0.0)) - np.sum(
            _safe_xlogy_ratio(q, log_q, log_s)
        )
        e_d = s @ e_w.sum(axis=0)
        bound_terms = np.sum(1.0 - np.log(lam) - e_d / lam)
        return float(prior_terms + q_terms + bound_terms)

    previous = -np.inf
    elbo = elbo_of(q, log_q, aw, bw, lam)
    for _ in range(max_iter):
        bw = beta + (s / lam[:, None]).sum(axis=0)  # q(w) rates given lam
        aw = a0[:, None] + _class_sums(q, ids, n_classes)  # q(w) shapes given q(z)
        lam = s @ (aw.sum(axis=0) / bw)  # optimal lam_i = E[D_i]
        log_q = _log_normalise(log_s + (special.digamma(aw) - np.log(bw))[ids])
        q = np.exp(log_q)
        elbo = elbo_of(q, log_q, aw, bw, lam)
        if elbo - previous <= tol * n:
            break
        previous = elbo
    return elbo / n


def _gaussian_cost(x: np.ndarray, ids: np.ndarray, n_classes: int, sigma2: float, max_iter: int):
    n, d = x.shape
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), ids] = 1.0
    reg = 1.0 / (n * sigma2)

    def objective(theta):
        w = theta[: d * n_classes].reshape(d, n_classes)
        b = theta[d * n_classes :]
        logits = x @ w + b
        log_p = _log_normalise(logits)
        value = -np.mean(log_p[np.arange(n), ids]) + 0.5 * reg * np.sum(w * w)
        resid = (np.exp(log_p) - onehot) / n
        grad_w = x.T @ resid + reg * w
        return value, np.concatenate([grad_w.ravel(), resid.sum(axis=0)])

    start = np.zeros(d * n_classes + n_classes)
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": 1e-13, "gtol": 1e-9},
    )
    theta = result.x
    value = float(objective(theta)[0])
    w = theta[: d * n_classes].reshape(d, n_classes)
    p = np.exp(_log_normalise(x @ w + theta[d * n_classes :]))
    hessian_diag = ((x * x).T @ (p * (1.0 - p))) / n  # (D, C)
    return value + 0.5 / n * float(np.sum(np.log1p(n * sigma2 * hessian_diag)))


def pactran(
    features,
    labels,
    *,
    prior: str = "gaussian",
    prior_variance: float = 1.0,
    alpha: float = 1.0,
    beta: float = 1.0,
    probabilities: bool = False,
    n_components_per_class: int = 5,
    variance: float = 0.8,
    covariance_type: str = "diag",
    seed: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-12,
) -> float:
    """PACTran (Ding et al., "PACTran: PAC-Bayesian Metrics for Estimating the
    Transferability of Pretrained Models to Classification Tasks", ECCV 2022).

    Returns minus the PAC-Bayesian bound (a log-evidence per sample) of a classifier head
    with a Dirichlet, Gamma or Gaussian prior; see the module docstring for the formulas.

    Args:
        features: (N, D) features; or, with ``probabilities=True`` (Dirichlet / Gamma
            only), (N, V) source-model probabilities (rows summing to 1).
        labels: (N,) class ids, C >= 2.
        prior: ``"gaussian"`` (default; the paper's recommended variant), ``"dirichlet"``
            or ``"gamma"``.
        prior_variance: Gaussian prior variance sigma^2 of the head's weights.
        alpha: total concentration of the Dirichlet / Gamma prior shapes a0 = alpha N_y/N.
        beta: rate of the Gamma prior.
        probabilities: the features ARE probability vectors (Dirichlet / Gamma); otherwise
            those variants use the posteriors of the N-LEEP Gaussian mixture.
        n_components_per_class, variance, covariance_type, seed: that mixture's settings
            (see :func:`emms.baselines.nleep`).
        max_iter: L-BFGS iterations (Gaussian) or coordinate-ascent sweeps (others).
        tol: coordinate ascent stops when the bound per sample gains less than ``tol``.

    Returns:
        -PACTran (log-evidence bound per sample), higher is better.

    Cost: Gaussian O(T N D C) for T L-BFGS iterations; Dirichlet / Gamma O(T N V) sweeps
    after the mixture (see :func:`emms.baselines.nleep`) for V = 5 C components.
    """
    if prior not in PRIORS:
        raise InputError(f"prior={prior!r} is unknown; choose one of {PRIORS}.")
    f = check_features(features)
    ids, classes = check_labels(labels, f.shape[0])
    n_classes = len(classes)
    if int(max_iter) < 1:
        raise InputError(f"max_iter={max_iter} must be >= 1.")

    if prior == "gaussian":
        if probabilities:
            raise InputError("probabilities=True applies to the Dirichlet and Gamma priors only.")
        if not prior_variance > 0:
            raise InputError(f"prior_variance={prior_variance} must be > 0.")
        x = np.asarray(f, dtype=np.float64)
        x = x - x.mean(axis=0)
        return -_gaussian_cost(x, ids, n_classes, float(prior_variance), int(max_iter))

    if not alpha > 0 or not beta > 0:
        raise InputError(f"alpha={alpha} and beta={beta} must be > 0.")
    if probabilities:
        s = np.asarray(check_probabilities(f, f.shape[0], name="features"), dtype=np.float64)
    else:
        s, order = gmm_posteriors(
            f,
            ids,
            n_classes,
            n_components_per_class=n_components_per_class,
            variance=variance,
            covariance_type=covariance_type,
            seed=seed,
            max_iter=100,
        )
        ids = ids[order]
    if prior == "dirichlet":
        return _dirichlet_elbo(s, ids, n_classes, float(alpha), tol, int(max_iter))
    return _gamma_elbo(s, ids, n_classes, float(alpha), float(beta), tol, int(max_iter))
