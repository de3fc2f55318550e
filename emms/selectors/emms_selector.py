"""EMMS: the Efficient Multimodal Multitask model Selector (Meng et al., NeurIPS 2023, §3).

Model (paper §3.2). Features X (N x D) of one pre-trained model, K noisy label embeddings
("F-labels") Z_1..Z_K (N x L each) from K foundation models. The true label embedding is
z = W^T x + noise and every F-label is z plus its own noise; maximum likelihood gives the
weighted least-squares problem

    min over W (D x L), t in simplex_K:   f(W, t) = ||X W - sum_k t_k Z_k||_F^2 / (N L)

and the transferability score is -f(W*, t*) (higher is better). With ``ridge = r > 0`` a
penalty r N ||W||_F^2 is added inside the norm term (r is relative to the unit diagonal of
the correlation matrix X^T X / N of standardised features).

Three solvers, one objective:

``exact`` (default)
    f is jointly convex and the W-step has a closed form, so the problem collapses to a
    K x K quadratic. With A = X^T X + r N I, B_k = X^T Z_k and
    G_kl = (<Z_k, Z_l> - <B_k, A^-1 B_l>) / (N L)  (the Gram of the residuals
    R_k = (I - P) Z_k for r = 0), f* = min over the simplex of t^T G t, solved exactly by
    :func:`emms.simplex.simplex_qp`. Cost: one product X^T [X, Z] (N D (D + L K)), one
    Cholesky factor (D^3 / 3) and one triangular solve (D^2 L K). With float32 work the
    difference <Z, Z> - <B, A^-1 B> cancels digits when the fit is good, so the objective
    is then evaluated directly as the residual at (W(t*), t*): one more N x D x L product.
``paper``
    The alternating minimisation of the paper's Algorithm 1, run until the objective stops
    decreasing (relative decrease <= ``tol``). W-step: least squares of X onto the current
    target sum_k t_k Z_k (X is factorised once); t-step: least squares of the fit X W on
    the K F-labels, constrained to the simplex and solved exactly. Each iteration costs
    two N x D x L products. Converges to the same optimum as ``exact`` (paper, Thm. 1).
``released``
    The single pass of the authors' public code, kept for comparison and computed as that
    code computes it (``lstsq`` for both steps): a W-step at uniform t, then t = sparsemax
    of the *unconstrained* least-squares weights, and the residual of the old W against
    the new target. The release returns -(SSE / N) * L, an operator
    precedence slip for -SSE / (N L); here it is normalised like the other solvers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from emms._validation import InputError, check_features, float_dtype, warn_if_high_dimensional

from .preprocessing import as_label_embedding_stack, label_moments
from .preprocessing import standardize as zscore
from .simplex import simplex_qp, sparsemax

__all__ = ["EMMSResult", "emms", "SOLVERS"]

SOLVERS = ("exact", "paper", "released")


@dataclass(frozen=True)
class EMMSResult:
    """What :func:`emms` returns.

    Attributes:
        score: -objective; higher means more transferable.
        weights: (K,) simplex weights t of the F-labels (non-negative, summing to 1).
        objective: f(W, t) at the returned point, the mean squared residual per entry.
        n_iter: alternations run (1 for ``exact``: one closed-form solve; 1 for
            ``released``: its single pass).
        converged: whether the optimum was certified (``exact``: always; ``paper``: the
            relative decrease fell below ``tol``; ``released``: never checked, False).
        solver: the solver used.
    """

    score: float
    weights: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    solver: str


class _Backend:
    """The few array operations the solvers need, on NumPy or on torch (any device)."""

    def __init__(self, name: str, device, dtype: np.dtype):
        if name not in ("numpy", "torch"):
            raise InputError(f"backend={name!r} is not supported: use 'numpy' or 'torch'.")
        self.name = name
        self.dtype = dtype
        if name == "torch":
            import torch

            self.torch = torch
            self.device = torch.device(device or "cpu")
            self.tdtype = torch.float32 if dtype == np.float32 else torch.float64
        elif device not in (None, "cpu"):
            raise InputError(f"device={device!r} needs backend='torch'.")

    def put(self, array: np.ndarray):
        """Copy-free where possible: the caller's array is never written."""
        if self.name == "numpy":
            return np.asarray(array, dtype=self.dtype)
        return self.torch.as_tensor(np.asarray(array), device=self.device).to(self.tdtype)

    def numpy64(self, value) -> np.ndarray:
        return self.numpy(value, np.float64)

    def numpy(self, value, dtype) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(value, dtype=dtype)
        tdtype = self.torch.float32 if dtype == np.float32 else self.torch.float64
        return value.detach().to("cpu", tdtype).numpy()

    def dot(self, a, b, chunk: int = 1 << 20) -> float:
        """Frobenius inner product <a, b>, accumulated in float64 (a float32 sum over
        N L ~ 1e7 terms would lose the digits the solvers are compared on)."""
        if self.name == "numpy":
            a, b = a.reshape(-1), b.reshape(-1)
            if a.dtype == np.float64 and b.dtype == np.float64:
                return float(a @ b)
            return sum(
                float(a[i : i + chunk].astype(np.float64) @ b[i : i + chunk].astype(np.float64))
                for i in range(0, a.size, chunk)
            )
        return float(a.reshape(-1).double() @ b.reshape(-1).double())

    def contiguous(self, block: np.ndarray):
        """A block as a contiguous backend array (BLAS needs unit strides)."""
        return self.put(np.ascontiguousarray(block))


class _GramFactor:
    """A = X^T X + r N I, factorised once: Cholesky, or an eigen-pseudo-inverse when A is
    singular (collinear features, D >= N), which keeps P the exact column-space projector."""

    def __init__(self, gram: np.ndarray):
        try:
            self.lower = scipy.linalg.cholesky(gram, lower=True, check_finite=False)
            self.kind = "cholesky"
        except np.linalg.LinAlgError:
            eigenvalues, eigenvectors = np.linalg.eigh(gram)
            keep = eigenvalues > eigenvalues.max() * gram.shape[0] * np.finfo(gram.dtype).eps
            self.eigenvalues = eigenvalues[keep]
            self.eigenvectors = eigenvectors[:, keep]
            self.kind = "eigh"

    def whiten(self, b: np.ndarray) -> np.ndarray:
        """M with M^T M = B^T A^+ B (B: D x C)."""
        if self.kind == "cholesky":
            return scipy.linalg.solve_triangular(self.lower, b, lower=True, check_finite=False)
        return (self.eigenvectors.T @ b) / np.sqrt(self.eigenvalues)[:, None]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """A^+ B (B: D x C)."""
        if self.kind == "cholesky":
            return scipy.linalg.cho_solve((self.lower, True), b, check_finite=False)
        return self.eigenvectors @ ((self.eigenvectors.T @ b) / self.eigenvalues[:, None])


def _prepare(features, label_embeddings, standardize_inputs, ridge, backend, device, dtype):
    x = check_features(features)
    backend = _Backend(backend, device, float_dtype(dtype))
    n = x.shape[0]
    blocks = as_label_embedding_stack(label_embeddings, n)
    if standardize_inputs:
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
                stacklevel=3,
            )
            x = x[:, ~constant]
    if ridge < 0:
        raise InputError(f"ridge={ridge} must be >= 0.")
    if ridge == 0:
        warn_if_high_dimensional(n, x.shape[1])
    x = backend.put(x)
    if standardize_inputs:
        x = zscore(x)
    if len(blocks) == 1:
        warnings.warn(
            "label_embeddings has K=1: EMMS reduces to one least-squares fit and its weight "
            "is trivially [1.0]; pass K >= 2 foundation-model embeddings to weigh them.",
            stacklevel=3,
        )
    return backend, x, blocks


def emms(
    features,
    label_embeddings,
    *,
    solver: str = "exact",
    standardize: bool = True,
    ridge: float = 0.0,
    dtype=None,
    backend: str = "numpy",
    device=None,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> EMMSResult:
    """Score one pre-trained model's features against K F-labels (EMMS, paper §3).

    Args:
        features: (N, D) features of the model on the target's training data.
        label_embeddings: F-labels: (N, L, K) array, (N, L) for K = 1, or a list of K
            (N, L_k) arrays (unequal widths are PCA-reduced to the smallest, see
            :func:`emms.preprocessing.as_label_embedding_stack`).
        solver: ``"exact"`` (closed form), ``"paper"`` (alternating minimisation to
            ``tol``) or ``"released"`` (the authors' single pass), see module docstring.
        standardize: z-score every column of X and of each Z_k (population std, eps 1e-8)
            as the release does; constant feature columns are dropped.
        ridge: r >= 0; adds r N ||W||^2 to the residual (r relative to the correlation
            matrix of the features). Needed when D >= N - 1.
        dtype: working dtype of the N-sized arrays, 'float64' (default, whatever the
            input dtype) or 'float32' (faster and half the memory; fine for
            well-conditioned features, but the float32 Gram X^T X loses the small
            directions of ill-conditioned ones: on the embedded zoo scores moved by up to
            2e-3). The D x D and K x K algebra is always float64.
        backend: ``"numpy"`` or ``"torch"`` (the large products run on ``device``).
        device: torch device, e.g. ``"cuda"``; ``None`` is the CPU.
        tol: ``paper`` solver: stop when the relative decrease of f is <= tol.
        max_iter: ``paper`` solver: the most alternations.

    Returns:
        :class:`EMMSResult` with ``score`` (= -objective), ``weights`` (K,), ``objective``,
        ``n_iter``, ``converged``.

    Inputs are never modified.
    """
    if solver not in SOLVERS:
        raise InputError(f"solver={solver!r} is unknown; choose one of {SOLVERS}.")
    be, x, blocks = _prepare(features, label_embeddings, standardize, ridge, backend, device, dtype)
    n, d = x.shape
    k, width = len(blocks), blocks[0].shape[1]
    scale = float(n * width)

    if solver == "released":
        return _released(be, x, blocks, standardize, ridge)

    # The D x D algebra is float64 whatever the working dtype: a float32 factorisation
    # drops directions of X whose eigenvalues fall below ~1e-5 of the largest, and then
    # every solver fits worse (measured on the embedded zoo: scores off by up to 0.03).
    algebra = np.float64
    gram = be.numpy(x.T @ x, algebra)
    if ridge:
        gram[np.diag_indices_from(gram)] += ridge * n
    factor = _GramFactor(gram)

    if solver == "exact":
        # X_s^T Z_s = (X_s^T Z - (X_s^T 1) mean^T) / scale: the product runs on the raw
        # labels, so no standardised copy of Z is made; X_s^T 1 is ~0 but kept exactly.
        mean, label_scale, zz = label_moments(blocks, standardize=standardize)
        column_sums = be.numpy64(x.sum(0))
        raw = _raw_products(be, x, label_embeddings, blocks)
        products = np.empty((d, k * width), dtype=algebra)
        for i in range(k):
            block = products[:, i * width : (i + 1) * width]
            np.subtract(raw[i], np.outer(column_sums, mean[i]), out=block, casting="unsafe")
            block /= label_scale[i].astype(algebra)
        del raw  # the corrected copy is all that is needed from here on
        whitened = factor.whiten(products)
        explained = np.empty((k, k))
        for i in range(k):
            for j in range(i + 1):
                explained[i, j] = explained[j, i] = np.einsum(
                    "ij,ij->",
                    whitened[:, i * width : (i + 1) * width],
                    whitened[:, j * width : (j + 1) * width],
                    dtype=np.float64,
                )
        weights, objective = simplex_qp((zz - explained) / scale)
        if be.dtype == np.float32:
            # G = <Z, Z> - <B, A^-1 B> cancels when the fit is good; in float32 that costs
            # digits, so the objective is evaluated directly as the residual at (W(t), t).
            mixed = sum(
                float(t_k) * products[:, i * width : (i + 1) * width]
                for i, t_k in enumerate(weights)
            )
            w = factor.solve(mixed)
            residual = x @ be.put(w)
            offset = np.zeros(width)
            for t_k, block, block_mean, block_scale in zip(
                weights, blocks, mean, label_scale, strict=True
            ):
                if t_k > 0:
                    residual -= be.put(block) * be.put(t_k / block_scale)
                    offset += t_k * block_mean / block_scale
            residual += be.put(offset)
            penalty = ridge * n * float(np.vdot(w, w)) if ridge else 0.0
            objective = (be.dot(residual, residual) + penalty) / scale
        objective = _clean_zero(objective, zz.diagonal().max() / scale)
        return EMMSResult(-objective, weights, objective, 1, True, solver)

    zs = _standardized_blocks(be, blocks, standardize)
    zz = label_moments(blocks, standardize=standardize)[2]

    def mix(t):
        return sum(float(t_k) * z for t_k, z in zip(t, zs, strict=True))

    def residual(fit, w, t):
        r = fit - mix(t)
        penalty = ridge * n * float(np.vdot(w, w)) if ridge else 0.0
        return (be.dot(r, r) + penalty) / scale

    t = np.full(k, 1.0 / k)
    previous = np.inf
    converged = False
    for iteration in range(1, max_iter + 1):
        w = factor.solve(be.numpy64(x.T @ mix(t)))
        fit = x @ be.put(w)
        projections = np.array([be.dot(z, fit) for z in zs])
        t, _ = simplex_qp(zz, projections)
        objective = residual(fit, w, t)
        if iteration > 1 and previous - objective <= tol * previous:
            converged = True
            break
        previous = objective
    objective = _clean_zero(objective, zz.diagonal().max() / scale)
    return EMMSResult(-objective, t, objective, iteration, converged, solver)


def _standardized_blocks(be, blocks, standardize):
    """The label blocks as contiguous backend arrays, z-scored when asked (new arrays)."""
    zs = [be.contiguous(block) for block in blocks]
    return [zscore(z) for z in zs] if standardize else zs


def _raw_products(be, x, label_embeddings, blocks) -> list[np.ndarray]:
    """X^T Z_k for every raw block, (D, L) float64 each. An (N, L, K) C-contiguous array
    is multiplied in one product as its (N, L K) view, without copying the labels."""
    k = len(blocks)
    if (
        isinstance(label_embeddings, np.ndarray)
        and label_embeddings.ndim == 3
        and label_embeddings.flags.c_contiguous
        and label_embeddings.shape[2] == k
        and all(
            block.base is label_embeddings or block.base is label_embeddings.base
            for block in blocks
        )
    ):
        n = label_embeddings.shape[0]
        product = be.numpy64(x.T @ be.put(label_embeddings.reshape(n, -1)))
        return [product[:, i::k] for i in range(k)]
    return [be.numpy64(x.T @ be.contiguous(block)) for block in blocks]


def _released(be, x, blocks, standardize, ridge) -> EMMSResult:
    """The authors' single pass, computed as their code computes it: ``lstsq`` of X onto
    the uniform mix, ``lstsq`` of the fit on the stacked (N L, K) F-labels, sparsemax,
    and the residual of the old W against the new mix."""
    if ridge:
        raise InputError(
            "ridge is not part of the released single pass; use solver='exact' or 'paper'."
        )
    n, width, k = x.shape[0], blocks[0].shape[1], len(blocks)
    zs = _standardized_blocks(be, blocks, standardize)
    target = sum(z / k for z in zs)
    if be.name == "numpy":
        w = np.linalg.lstsq(x, target, rcond=None)[0]
        fit = x @ w
        stacked = np.stack(zs, axis=2).reshape(n * width, k)
        t = np.linalg.lstsq(stacked, fit.reshape(-1), rcond=None)[0]
    else:
        torch = be.torch
        w = torch.linalg.lstsq(x, target).solution
        fit = x @ w
        stacked = torch.stack(zs, dim=2).reshape(n * width, k)
        t = be.numpy64(torch.linalg.lstsq(stacked, fit.reshape(-1, 1)).solution).ravel()
    t = sparsemax(np.asarray(t, dtype=np.float64))
    r = fit - sum(float(t_k) * z for t_k, z in zip(t, zs, strict=True))
    objective = be.dot(r, r) / (n * width)
    objective = _clean_zero(objective, max(be.dot(z, z) for z in zs) / (n * width))
    return EMMSResult(-objective, t, objective, 1, False, "released")


#: Objectives below this fraction of the labels' mean square are rounding noise.
ZERO_TOLERANCE = 1e-10


def _clean_zero(objective: float, label_scale: float) -> float:
    """Exactly 0 when the fit is exact up to rounding (D >= N - 1): otherwise the ranking
    of such models would be decided by rounding noise, which differs between machines."""
    return 0.0 if objective <= ZERO_TOLERANCE * label_scale else float(objective)
