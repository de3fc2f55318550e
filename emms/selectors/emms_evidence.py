"""EMMS with its ridge chosen by the evidence: a regularised EMMS that does not collapse.

Why. EMMS (Meng et al., NeurIPS 2023, §3) scores a model by the least-squares residual
of its features X (N x D) against the simplex mix of K F-labels. When D >= N - 1 the
centred features span every centred target, the residual is exactly 0 for every such
model and the ranking is lost (on an embedded low-shot target, 6 of 10 zoo models). LogME
(You et al., ICML 2021; JMLR 23, 2022) does not collapse because it integrates the weights
out under a Gaussian prior whose precision is chosen by maximising the evidence. This
module does the same for the paper's own generative model, with the F-label weights t.

Model. Features and each F-label are z-scored column-wise (population std + 1e-8, as in
:func:`emms.emms`), so every column is centred and the data live in the (N - 1)-dimensional
space orthogonal to the all-ones vector: ``n = N - 1`` is the number of degrees of freedom
per column. For weights t in the simplex, the target is Y(t) = sum_k t_k Z_k (N x L), and
the paper's model (z = W^T x + noise, F-label k = z + noise_k) read as a regression of
Y(t) on X, with the prior of LogME, is

    W ~ N(0, alpha^-1 I)  (D x L),      Y(t) | X, W ~ N(X W, beta^-1 I)  (each column),

so every column y_l of Y(t) is Gaussian, y_l ~ N(0, C), C = beta^-1 I + alpha^-1 X X^T
(on the centred space). With the eigen-decomposition X X^T = sum_i s_i u_i u_i^T (r non-zero
eigenvalues s_i; the same as those of X^T X) and lambda = alpha / beta, the log evidence
of the L columns is (Bishop 2006, §3.5; You et al. 2022, eq. 2, with C's eigenvalues)

    log p(Y(t) | alpha, beta) = -(n L / 2) log 2 pi + (n L / 2) log beta
                                - (L / 2) sum_i log(1 + s_i / lambda) - (beta / 2) Q(t, lambda),

    Q(t, lambda) = min_W ||Y(t) - X W||_F^2 + lambda ||W||_F^2
                 = t^T G(lambda) t,   G(lambda) = B + sum_i lambda / (s_i + lambda) C_i,

with the K x K matrices C_i[k, k'] = <u_i^T Z_k, u_i^T Z_k'> (the F-labels' energy along
direction i) and B = <Z_k, Z_k'> - sum_i C_i (their energy outside the span of X; exactly
0 when r = N - 1). Q is EMMS's objective with ridge lambda: Q = N L f_EMMS(t, ridge =
lambda / N), see :func:`emms.emms`.

Optimisation. beta has a closed form, beta* = n L / Q, and substituting it leaves

    -2 log p / (n L) = log(2 pi e) + J(t, lambda),
    J(t, lambda) = log(Q(t, lambda) / (n L)) + (1 / n) sum_i log(1 + s_i / lambda).

log is increasing, so for every lambda the best t is the minimiser of t^T G(lambda) t on the
simplex: EMMS's own K x K quadratic, solved exactly by :func:`emms.simplex.simplex_qp`. The
joint maximum of the evidence over (t, alpha, beta) is therefore the minimum over lambda
of the profile J(t*(lambda), lambda), a function of one variable: it is minimised on a log
grid of ``n_grid`` points spanning [1e-6 s_min, 1e6 s_max] and refined by Brent's bounded
search between the best grid point's neighbours. Every evaluation costs O(r K^2) plus the
K x K QP, because the C_i are computed once: one eigen-decomposition (of X^T X when D <= N,
of X X^T when D > N) is shared by every one of the L K target columns, every t and every
lambda. Cost: O(N D min(N, D) + min(N, D)^3 + N min(N, D) L K).

Score. ``score`` = the maximum log evidence per entry, -(log(2 pi e) + J*) / 2, in nats per
(sample, label dimension); higher is better. Why it stays comparable across models with
different D: it is a log density per entry of the labels (z-scored, the same for every
model; only their mix t is the model's own, as in EMMS) under a model whose weights are
integrated out, so a wider model pays for its extra directions through the Occam term
(1 / n) sum_i log(1 + s_i / lambda) and scores higher only if they explain the labels; it
depends on X only through the eigenvalues s_i and the directions u_i, so it is invariant to
rotations of the feature space, to the sample order and (by the z-scoring) to the scale of
each column. It stays finite when D >= N - 1 (features of full rank): then r = n, B = 0
and, with
p_i^2 = ||u_i^T Y(t)||^2, Q(t, lambda) ~ lambda sum_i p_i^2 / s_i as lambda -> 0, while the
Occam term ~ -(r / n) log lambda = -log lambda, so J tends to the finite
log((sum_i p_i^2 / s_i) / (n L)) + mean_i log s_i: the evidence of the noise-free model
Y ~ N(0, X X^T / alpha) (beta -> inf, alpha = n L / sum_i p_i^2 / s_i), which still
measures how well the labels align with the features' large directions. This limit is
computed exactly (its t minimises t^T (sum_i C_i / s_i) t on the simplex) and reported,
with ``strength`` 0 and ``beta`` inf, when it beats every lambda > 0. (Only labels lying
exactly in the span of rank-deficient features, r < n and B = 0, make the evidence
unbounded, a perfect fit; the search then stops at the grid's lower end.) When D << N
(r / n -> 0) the Occam term vanishes, lambda / N -> 0, t* tends to EMMS's weights and the
score to -(log(2 pi e) + log(N f_EMMS / (N - 1))) / 2 ~ -log(2 pi e f_EMMS) / 2, a
decreasing function of EMMS's objective: the same ranking
(tests/test_emms_evidence.py checks both limits).

Limits. The weights t are those of the paper's objective, which compares targets Y(t) of
different energy: mixing z-scored F-labels whose noises are independent shrinks ||Y(t)||,
and the prior cost alpha ||W||^2 of the shared signal shrinks with it. When D << N that
cost vanishes and the cleaner labels win (as in EMMS); when D >= N - 1 the signal's cost
is not negligible and t can favour noisier labels. The score still ranks models there
(tests/test_emms_evidence.py), but read t as a by-product, not as label quality, in that
regime.

References: Meng et al., "Foundation Model is Efficient Multimodal Multitask Model
Selector", NeurIPS 2023; You, Liu, Wang & Long, "LogME: Practical Assessment of Pre-trained
Models for Transfer Learning", ICML 2021, and "Ranking and Tuning Pre-trained Models",
JMLR 23 (2022); MacKay, "Bayesian interpolation", Neural Computation 4 (1992).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from emms._validation import InputError, check_features

from .preprocessing import as_label_embedding_stack, standardize
from .simplex import simplex_qp

__all__ = ["EMMSEvidenceResult", "emms_evidence"]


@dataclass(frozen=True)
class EMMSEvidenceResult:
    """What :func:`emms_evidence` returns.

    Attributes:
        score: maximum log evidence per entry, -(log(2 pi e) + J*) / 2 (higher is better).
        weights: (K,) simplex weights t of the F-labels at the joint optimum.
        strength: the evidence-optimal lambda = alpha / beta, the ridge added to X^T X.
        ridge: ``strength / N``, the same ridge in :func:`emms.emms`'s convention:
            ``emms.emms(x, z, ridge=result.ridge)`` returns ``weights`` and ``objective``.
        alpha: prior precision of the weights W.
        beta: noise precision of the mixed labels, n L / Q* (inf in the noise-free limit
            lambda = 0, which is taken when D >= N - 1 and no lambda > 0 does better; then
            ``alpha`` = n L / (t^T M t), M = sum_i C_i / s_i, and the model is
            Y ~ N(0, X X^T / alpha)).
        objective: Q* / (N L), EMMS's (ridge) objective at the optimum.
        rank: r, the number of non-zero eigenvalues of X^T X.
        at_boundary: True when lambda* is an end of the search interval (lambda -> 0: the
            noise-free limit, possible when D >= N - 1; lambda -> inf: no feature helps).
    """

    score: float
    weights: np.ndarray
    strength: float
    ridge: float
    alpha: float
    beta: float
    objective: float
    rank: int
    at_boundary: bool


def _spectrum(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero eigenvalues s (r,) of X^T X and P = U^T Z (r, M) for the (N, M) matrix Z,
    from one eigen-decomposition of the smaller Gram (X^T X or X X^T)."""
    n, d = x.shape
    eps = np.finfo(np.float64).eps
    if d <= n:
        eigenvalues, v = np.linalg.eigh(x.T @ x)
        keep = eigenvalues > eigenvalues.max() * d * eps
        s, v = eigenvalues[keep], v[:, keep]
        projections = (v.T @ (x.T @ z)) / np.sqrt(s)[:, None]  # U = X V S^-1/2
    else:
        eigenvalues, u = np.linalg.eigh(x @ x.T)
        keep = eigenvalues > eigenvalues.max() * n * eps
        s, u = eigenvalues[keep], u[:, keep]
        projections = u.T @ z
    # centred columns span at most N - 1 directions; anything beyond is rounding
    if len(s) > n - 1:
        s, projections = s[-(n - 1) :], projections[-(n - 1) :]
    return s, projections


def emms_evidence(features, label_embeddings, *, n_grid: int = 121) -> EMMSEvidenceResult:
    """EMMS with the ridge chosen by maximising the evidence (see module docstring).

    Args:
        features: (N, D) features of one model on the target's training data; any D,
            including D >= N - 1 where :func:`emms.emms` collapses to 0.
        label_embeddings: F-labels: (N, L, K), (N, L) for K = 1, or a list of K (N, L_k)
            arrays (unequal widths are PCA-reduced to the smallest, as in :func:`emms.emms`).
        n_grid: points of the log-spaced grid over lambda before the Brent refinement.

    Returns:
        :class:`EMMSEvidenceResult`: ``score`` (log evidence per entry), ``weights`` (K,),
        the chosen ``strength`` lambda (and ``ridge`` = lambda / N), ``alpha``, ``beta``.

    Features and F-labels are z-scored column-wise (constant feature columns are dropped
    with a warning); work is in float64. Inputs are never modified.
    """
    x = check_features(features, min_samples=3)
    n_samples = x.shape[0]
    blocks = as_label_embedding_stack(label_embeddings, n_samples)
    if not isinstance(n_grid, int | np.integer) or n_grid < 3:
        raise InputError(f"n_grid={n_grid!r} must be an int >= 3 (points of the lambda grid).")
    constant = np.ptp(x, axis=0) == 0
    if constant.all():
        raise InputError(
            "features: every column is constant, so no model of them can fit a label; "
            "check the feature extraction."
        )
    if constant.any():
        warnings.warn(
            f"features: {int(constant.sum())} constant column(s) carry no information "
            "and are dropped.",
            stacklevel=2,
        )
        x = x[:, ~constant]
    x = standardize(np.asarray(x, dtype=np.float64))
    k, width = len(blocks), blocks[0].shape[1]
    z = np.concatenate([standardize(np.asarray(b, dtype=np.float64)) for b in blocks], axis=1)
    dof = n_samples - 1  # centring removes one degree of freedom per column

    s, p = _spectrum(x, z)
    p = p.reshape(len(s), k, width)
    cross = np.einsum("ikl,ijl->ikj", p, p)  # C_i, (r, K, K)
    stacked = z.reshape(n_samples, k, width)
    total = np.einsum("nkl,njl->kj", stacked, stacked)  # <Z_k, Z_k'>
    if len(s) == dof:
        outside = np.zeros((k, k))  # the span of X is the whole centred space
    else:
        outside = total - cross.sum(axis=0)
        outside = 0.5 * (outside + outside.T)

    def profile(log_lambda: float) -> tuple[float, np.ndarray, float]:
        lam = np.exp(log_lambda)
        gram = outside + np.einsum("i,ikj->kj", lam / (s + lam), cross)
        t, q = simplex_qp(gram)
        q = max(q, np.finfo(np.float64).tiny)
        return np.log(q / (dof * width)) + np.log1p(s / lam).sum() / dof, t, q

    grid = np.linspace(np.log(s.min()) - np.log(1e6), np.log(s.max()) + np.log(1e6), n_grid)
    values = np.array([profile(g)[0] for g in grid])
    best = int(np.argmin(values))
    at_boundary = best in (0, n_grid - 1)
    if at_boundary:
        log_lambda = grid[best]
    else:
        refined = scipy.optimize.minimize_scalar(
            lambda g: profile(g)[0],
            bounds=(grid[best - 1], grid[best + 1]),
            method="bounded",
            options={"xatol": 1e-10},
        )
        log_lambda = refined.x if refined.fun <= values[best] else grid[best]
    j, t, q = profile(log_lambda)
    lam = float(np.exp(log_lambda))
    beta = dof * width / q
    alpha = lam * beta
    if len(s) == dof:
        # the noise-free limit lambda -> 0 (beta -> inf, alpha finite), exactly:
        # Q / lambda -> t^T M t with M = sum_i C_i / s_i, so J -> log(t^T M t / (n L))
        # + mean_i log s_i
        t0, m0 = simplex_qp(np.einsum("i,ikj->kj", 1.0 / s, cross))
        j0 = np.log(m0 / (dof * width)) + np.log(s).sum() / dof
        if j0 <= j:
            j, t, q, lam, beta, alpha = j0, t0, 0.0, 0.0, np.inf, dof * width / m0
            at_boundary = True
    return EMMSEvidenceResult(
        score=float(-0.5 * (np.log(2 * np.pi) + 1.0 + j)),
        weights=t,
        strength=lam,
        ridge=lam / n_samples,
        alpha=float(alpha),
        beta=float(beta),
        objective=float(q / (n_samples * width)),
        rank=len(s),
        at_boundary=bool(at_boundary),
    )
