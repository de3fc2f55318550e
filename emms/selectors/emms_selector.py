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
    Cholesky factor (D^3 / 3) and one triangular solve (D^2 L K).
    ``dtype="float32"`` (float32 exact): the float64 Gram of the raw input accumulated
    over row blocks, float32 products X^T Z with float64 block sums for G and t*, and f*
    evaluated at t* as a residual plus one step of iterative refinement (two float32
    N x D x L products); scores agree with float64 to ~1e-7 even on features whose
    correlation matrix has condition number 1e9 (see :func:`_exact_refined`).
``paper``
    The alternating minimisation of the paper's Algorithm 1, run until the objective stops
    decreasing (relative decrease <= ``tol``). W-step: least squares of X onto the current
    target sum_k t_k Z_k (X is factorised once); t-step: least squares of the fit X W on
    the K F-labels, constrained to the simplex and solved exactly. Each iteration costs
    two N x D x L products. Converges to the same optimum as ``exact`` (paper, Thm. 1).
``released``
    The single pass of the authors' public code, kept for comparison and computed as that
    code computes it (``lstsq`` for both steps; on torch the (N L, K) t-step by its K x K
    normal equations, as cuSOLVER refuses N L > 2^31 / K rows): a W-step at uniform t,
    then t = sparsemax
    of the *unconstrained* least-squares weights, and the residual of the old W against
    the new target. The release returns -(SSE / N) * L, an operator
    precedence slip for -SSE / (N L); here it is normalised like the other solvers.

Scale (issue 14): :func:`emms_zoo` scores a zoo against one target with the label-side
work done once; :func:`emms.emms_streaming` (memory-mapped inputs, row blocks) and
:func:`emms.selectors.distributed.emms_dask` (dask) compute ``exact`` from additive
sums; ``backend="torch"`` runs the N-sized products (and the label moments) on a GPU.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dsyrk

from emms._validation import InputError, check_features, float_dtype, warn_if_high_dimensional

from .preprocessing import EPS, as_label_embedding_stack, check_scale, label_moments
from .preprocessing import standardize as zscore
from .simplex import simplex_qp, sparsemax

__all__ = ["EMMSResult", "emms", "emms_zoo", "SOLVERS"]

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

    def zeros64(self, shape):
        if self.name == "numpy":
            return np.zeros(shape)
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def to64(self, value):
        if self.name == "numpy":
            return value.astype(np.float64)
        return value.double()

    def sum64(self, value):
        """Column sums of an (n, m) block, accumulated in float64."""
        if self.name == "numpy":
            return value.sum(axis=0, dtype=np.float64)
        return value.sum(dim=0, dtype=self.torch.float64)

    def block_rows(self, width: int) -> int:
        """Rows per block: ~16M entries on the CPU (a float64 copy of a block stays in the
        tens of MiB, and each block's GEMM dwarfs its float64 accumulation even on many
        cores), ~64M on an accelerator (fewer, larger kernels)."""
        entries = (1 << 24) if self.name == "numpy" or self.device.type == "cpu" else (1 << 26)
        return max(256, entries // max(width, 1))

    def precise(self):
        """Context in which float32 matmuls are IEEE float32 (no TF32 on CUDA): the
        settings are restored afterwards."""
        import contextlib

        if self.name == "numpy":
            return contextlib.nullcontext()
        torch = self.torch

        @contextlib.contextmanager
        def guard():
            previous = torch.get_float32_matmul_precision()
            tf32 = torch.backends.cuda.matmul.allow_tf32
            torch.set_float32_matmul_precision("highest")
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                yield
            finally:
                torch.set_float32_matmul_precision(previous)
                torch.backends.cuda.matmul.allow_tf32 = tf32

        return guard()


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

    def unwhiten(self, m: np.ndarray) -> np.ndarray:
        """A^+ B from M = whiten(B): L^-T M (or V diag(lambda^-1/2) M), one solve."""
        if self.kind == "cholesky":
            return scipy.linalg.solve_triangular(
                self.lower, m, lower=True, trans="T", check_finite=False
            )
        return self.eigenvectors @ (m / np.sqrt(self.eigenvalues)[:, None])

    def solve(self, b: np.ndarray) -> np.ndarray:
        """A^+ B (B: D x C)."""
        if self.kind == "cholesky":
            return scipy.linalg.cho_solve((self.lower, True), b, check_finite=False)
        return self.eigenvectors @ ((self.eigenvectors.T @ b) / self.eigenvalues[:, None])


def _prepare_features(features, standardize_inputs, ridge, *, stacklevel=4):
    """Checked features (a view when possible), constant columns dropped."""
    x = check_features(features)
    n = x.shape[0]
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
                stacklevel=stacklevel,
            )
            x = x[:, ~constant]
    if ridge < 0:
        raise InputError(f"ridge={ridge} must be >= 0.")
    if ridge == 0:
        warn_if_high_dimensional(n, x.shape[1])
    return x


def _prepare_labels(label_embeddings, n, layout, *, stacklevel=4):
    blocks = as_label_embedding_stack(label_embeddings, n, layout=layout)
    if len(blocks) == 1:
        warnings.warn(
            "label_embeddings has K=1: EMMS reduces to one least-squares fit and its weight "
            "is trivially [1.0]; pass K >= 2 foundation-model embeddings to weigh them.",
            stacklevel=stacklevel,
        )
    return blocks


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
    layout: str | None = None,
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
            input dtype) or 'float32'. For ``exact``, float32 runs the large products in
            float32 but keeps the score within ~1e-7 of float64 even on ill-conditioned
            features (see "float32 exact" in the module docstring: float64 Gram, one
            refinement step); for ``paper``/``released`` float32 is plain float32 work
            (fine for well-conditioned features only). The D x D and K x K algebra is
            always float64.
        backend: ``"numpy"`` or ``"torch"`` (the large products run on ``device``; float32
            matmuls are forced to IEEE float32, no TF32, for the duration of the call).
        device: torch device, e.g. ``"cuda"``; ``None`` is the CPU.
        tol: ``paper`` solver: stop when the relative decrease of f is <= tol.
        max_iter: ``paper`` solver: the most alternations.
        layout: axis order of a 3-D ``label_embeddings``: ``"NLK"`` (the default reading)
            or ``"NKL"``. Without it, a stack whose K axis is implausible (K > L or
            K > 32) is refused with :class:`InputError`.

    Returns:
        :class:`EMMSResult` with ``score`` (= -objective), ``weights`` (K,), ``objective``,
        ``n_iter``, ``converged``.

    Inputs are never modified. For many models against one target see
    :func:`emms.emms_zoo`; for features on disk, :func:`emms.emms_streaming`.
    """
    if solver not in SOLVERS:
        raise InputError(f"solver={solver!r} is unknown; choose one of {SOLVERS}.")
    x = _prepare_features(features, standardize, ridge)
    blocks = _prepare_labels(label_embeddings, x.shape[0], layout)
    # the torch backend computes the label moments on its device (see _score)
    stats = (
        label_moments(blocks, standardize=standardize)
        if solver != "released" and backend != "torch"
        else None
    )
    return _score(
        x, blocks, label_embeddings, layout, stats,
        solver=solver, standardize=standardize, ridge=ridge, dtype=dtype,
        backend=backend, device=device, tol=tol, max_iter=max_iter,
    )  # fmt: skip


def emms_zoo(
    features_by_model,
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
    layout: str | None = None,
) -> dict:
    """EMMS of every model of a zoo against one target's F-labels, the label side once.

    ``emms_zoo({name: features}, Z)[name]`` equals ``emms(features, Z)`` (same options);
    the F-labels are checked (finite, not constant, layout) once, and their column means,
    scales and standardised K x K Gram <Z_k, Z_l> (:func:`label_moments`, a float64
    pass over N L K entries) are computed once and shared by every model. What remains per
    model is its own work: X^T X, X^T Z and the D x D algebra.

    Args:
        features_by_model: mapping model name -> (N, D_m) features (D may differ).
        label_embeddings, and every keyword: as :func:`emms`.

    Returns:
        dict model name -> :class:`EMMSResult`, in the mapping's order.
    """
    if solver not in SOLVERS:
        raise InputError(f"solver={solver!r} is unknown; choose one of {SOLVERS}.")
    if not features_by_model:
        raise InputError("features_by_model is empty; pass {model name: (N, D) features}.")
    blocks, stats, n = None, None, None
    results = {}
    for name, features in features_by_model.items():
        x = _prepare_features(features, standardize, ridge, stacklevel=3)
        if blocks is None:
            n = x.shape[0]
            blocks = _prepare_labels(label_embeddings, n, layout, stacklevel=3)
            if solver != "released":
                stats = _backend_label_moments(
                    _Backend(backend, device, float_dtype(dtype)), blocks, standardize
                )
        elif x.shape[0] != n:
            raise InputError(
                f"features of {name!r} have {x.shape[0]} rows but the first model's have "
                f"N={n}; every model must be run on the same target samples, in order."
            )
        results[name] = _score(
            x, blocks, label_embeddings, layout, stats,
            solver=solver, standardize=standardize, ridge=ridge, dtype=dtype,
            backend=backend, device=device, tol=tol, max_iter=max_iter,
        )  # fmt: skip
    return results


def _score(
    x, blocks, label_embeddings, layout, stats, *, solver, standardize, ridge, dtype,
    backend, device, tol, max_iter,
) -> EMMSResult:  # fmt: skip
    """EMMS on checked inputs; ``stats`` = label_moments(blocks) (None for released)."""
    be = _Backend(backend, device, float_dtype(dtype))
    if stats is None and solver != "released":
        stats = _backend_label_moments(be, blocks, standardize)
    with be.precise():
        if solver == "exact" and be.dtype == np.float32:
            return _exact_refined(be, x, blocks, label_embeddings, layout, stats, standardize,
                                  ridge)  # fmt: skip
        x = be.put(x)
        if standardize:
            x = zscore(x)
        if solver == "released":
            return _released(be, x, blocks, standardize, ridge)
        if solver == "exact":
            return _exact(be, x, blocks, label_embeddings, layout, stats, ridge)
        return _paper(be, x, blocks, stats, standardize, ridge, tol, max_iter)


def _backend_label_moments(be, blocks, standardize):
    """:func:`label_moments` on the backend's device (the blocks are uploaded in their
    own dtype, one at a time, and accumulated in float64 there)."""
    if be.name == "numpy":
        return label_moments(blocks, standardize=standardize)
    device_blocks = [be.torch.as_tensor(np.asarray(b), device=be.device) for b in blocks]
    return label_moments(device_blocks, standardize=standardize)


def _gram(be, x, ridge):
    """The float64 factor of A = X^T X + r N I (the D x D algebra is float64 whatever
    the working dtype: a float32 factorisation drops directions of X whose eigenvalues
    fall below ~1e-5 of the largest, measured on the embedded zoo: scores off by 0.03)."""
    gram = be.numpy(x.T @ x, np.float64)
    if ridge:
        gram[np.diag_indices_from(gram)] += ridge * x.shape[0]
    return _GramFactor(gram)


def _explained_and_weights(factor, products, zz, k, width, scale):
    """t* and f* from B (D, K L, k-major columns): G = (<Z,Z> - <B, A^-1 B>) / (N L)."""
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
    return weights, objective, whitened


def _exact(be, x, blocks, label_embeddings, layout, stats, ridge) -> EMMSResult:
    """Float64 work (the default): standardised X in float64, one product X^T [X, Z]."""
    n, d = x.shape
    k, width = len(blocks), blocks[0].shape[1]
    scale = float(n * width)
    factor = _gram(be, x, ridge)
    # X_s^T Z_s = (X_s^T Z - (X_s^T 1) mean^T) / scale: the product runs on the raw
    # labels, so no standardised copy of Z is made; X_s^T 1 is ~0 but kept exactly.
    mean, label_scale, zz = stats
    column_sums = be.numpy64(x.sum(0))
    raw = _raw_products(be, x, label_embeddings, blocks, layout)
    products = np.empty((d, k * width), dtype=np.float64)
    for i in range(k):
        block = products[:, i * width : (i + 1) * width]
        np.subtract(raw[i], np.outer(column_sums, mean[i]), out=block, casting="unsafe")
        block /= label_scale[i]
    del raw  # the corrected copy is all that is needed from here on
    weights, objective, _ = _explained_and_weights(factor, products, zz, k, width, scale)
    objective = _clean_zero(objective, zz.diagonal().max() / scale)
    return EMMSResult(-objective, weights, objective, 1, True, "exact")


def _label_matrix(label_embeddings, blocks, layout):
    """The labels as one (N, K L) matrix without a copy, and the column slice of block k
    in it, when the input is a C-contiguous 3-D stack; else None."""
    k = len(blocks)
    if not (
        isinstance(label_embeddings, np.ndarray)
        and label_embeddings.ndim == 3
        and label_embeddings.flags.c_contiguous
        and all(
            block.base is label_embeddings or block.base is label_embeddings.base
            for block in blocks
        )
    ):
        return None
    n = label_embeddings.shape[0]
    if layout == "NKL" and label_embeddings.shape[1] == k:
        width = label_embeddings.shape[2]
        return label_embeddings.reshape(n, -1), lambda i: slice(i * width, (i + 1) * width)
    if layout != "NKL" and label_embeddings.shape[2] == k:
        return label_embeddings.reshape(n, -1), lambda i: slice(i, None, k)
    return None


def _raw_products(be, x, label_embeddings, blocks, layout) -> list[np.ndarray]:
    """X^T Z_k for every raw block, (D, L) float64 each. A C-contiguous 3-D stack is
    multiplied in one product as its (N, L K) view, without copying the labels."""
    matrix = _label_matrix(label_embeddings, blocks, layout)
    if matrix is not None:
        labels, columns = matrix
        product = be.numpy64(x.T @ be.put(labels))
        return [product[:, columns(i)] for i in range(len(blocks))]
    return [be.numpy64(x.T @ be.contiguous(block)) for block in blocks]


def _exact_refined(be, x, blocks, label_embeddings, layout, stats, standardize, ridge):
    """``exact`` with float32 products, scores within ~1e-7 (relative) of float64.

    Derivation (shapes: X (N, D) raw float32 features, m (D,) their float64 column
    means, s (D,) stds + eps, S = diag(s); Z_k (N, L)). Three things decide the accuracy,
    measured on ill-conditioned features (column scales 1e-3..1e3, near-collinear pairs,
    condition number of the correlation matrix ~1e9), relative error of f*:

    1. The Gram A = X_s^T X_s is accumulated in float64 over row blocks of the *raw*
       input, centred in float64 (dsyrk on the block's float64 copy): a float32 Gram
       is not even positive definite there, and float32 z-scoring perturbs X by a
       relative 6e-8 per entry before anything is multiplied. On the CPU a float64 SYRK
       costs about what the floor's float32 GEMM X^T X costs (half the flops, half the
       speed), so this is free against the floor.
    2. B_k = X_s^T Z_k,s = S^-1 (X^T Z_k - N m mean_k^T) / scale_k: float32 products
       of the raw blocks, accumulated in float64 block by block. Their rounding error
       (~eps32 sqrt(N b)) is what float32 costs; G and t* from them are accurate to
       first order, and f* is *not* evaluated from them (G's cancellation
       <Z,Z> - <B, A^-1 B> would turn a 1e-8 error of B into 1e-5 of f*).
    3. f at t* is evaluated as a residual and refined once. With y = sum_k t_k Z_k,s and
       W0 = A^-1 B t (whose error A^-1 dB is amplified by A's small eigenvalues),
       r0 = y - X_s W0 (float32 product of the raw X with W0 S^-1, the centring a
       float64 row offset), c = X_s^T r0 (float32 product, float64 block sums), and the
       minimum over the correction d of ||r0 - X_s d||^2 + rN||W0 + d||^2 is exactly
           f1 = ||r0||^2 + rN||W0||^2 - g^T A^-1 g,   g = c - rN W0,
       one step of iterative refinement whose error is quadratic in the small c. Measured
       errors of f* on the ill-conditioned case: 1e-5 without step 3's refinement,
       ~3e-7 with it; 1e-9 on the paper's generative model.
    Cost: the floor (float64 SYRK + float32 GEMM of X^T Z) plus two float32 N D L
    products (X W, X^T r) and the float64 Cholesky/whitening, versus an extra N D L for
    the residual alone. Weights t* come from the float32 G (first-order accurate, ~1e-6);
    f is second order in t around t*.
    """
    n, d = x.shape
    k, width = len(blocks), blocks[0].shape[1]
    scale = float(n * width)
    mean_z, scale_z, zz = stats
    matrix = _label_matrix(label_embeddings, blocks, layout)
    step = be.block_rows(d + k * width)
    xw = be.put(x)  # float32 (a copy only when the input is not float32 / on another device)
    labels = be.put(matrix[0]) if matrix is not None else None
    label_blocks = None if matrix is not None else [be.put(b) for b in blocks]

    mx = be.numpy64(be.sum64(xw)) / n if standardize else np.zeros(d)
    mx_be = be.put(mx) if be.name == "numpy" else be.torch.as_tensor(mx, device=be.device)
    gram = np.zeros((d, d), order="F") if be.name == "numpy" else be.zeros64((d, d))
    raw = be.zeros64((d, k * width))
    for start in range(0, n, step):
        xb = xw[start : start + step]
        xb64 = be.to64(xb)
        xb64 -= mx if be.name == "numpy" else mx_be.double()
        if be.name == "numpy":
            gram = dsyrk(1.0, xb64.T, beta=1.0, c=gram, trans=0, lower=1, overwrite_c=1)
        else:
            gram.addmm_(xb64.T, xb64)
        if labels is not None:
            raw += be.to64(xb.T @ labels[start : start + step])
        else:
            for i, zb in enumerate(label_blocks):
                raw[:, i * width : (i + 1) * width] += be.to64(xb.T @ zb[start : start + step])
        del xb64
    # numpy: only the lower triangle of the SYRK result is filled; the Cholesky factor
    # (lower=True) and the eigh fallback (UPLO='L') read only that triangle.
    gram = be.numpy64(gram)
    raw = be.numpy64(raw)
    if matrix is not None:
        columns = matrix[1]
        raw = np.concatenate([raw[:, columns(i)] for i in range(k)], axis=1)
    if standardize:
        sx = np.sqrt(np.maximum(gram.diagonal(), 0) / n)
        check_scale(sx, "features")
        sx += EPS
    else:
        sx = np.ones(d)
    gram /= sx[:, None]
    gram /= sx[None, :]
    if ridge:
        gram[np.diag_indices_from(gram)] += ridge * n
    factor = _GramFactor(gram)
    products = raw
    for i in range(k):
        block = products[:, i * width : (i + 1) * width]
        block -= n * np.outer(mx, mean_z[i])
        block /= scale_z[i]
    products /= sx[:, None]
    weights, _, whitened = _explained_and_weights(factor, products, zz, k, width, scale)
    del products

    # Step 3: the residual at (W0, t*) and one refinement step.
    w0 = factor.unwhiten(
        sum(float(t) * whitened[:, i * width : (i + 1) * width] for i, t in enumerate(weights))
    )
    del whitened
    w_raw = be.put(w0 / sx[:, None])
    coefficients = [be.put(float(t) / scale_z[i]) for i, t in enumerate(weights)]
    offset = (mx @ (w0 / sx[:, None])) - sum(
        float(t) * mean_z[i] / scale_z[i] for i, t in enumerate(weights)
    )
    offset = be.put(offset)
    squares = 0.0
    c = be.zeros64((d, width))
    residual_sums = be.zeros64((width,))
    for start in range(0, n, step):
        xb = xw[start : start + step]
        r = offset - xb @ w_raw
        for i, t in enumerate(weights):
            if t > 0:
                if labels is not None:
                    zb = labels[start : start + step, columns(i)]
                else:
                    zb = label_blocks[i][start : start + step]
                r += zb * coefficients[i]
        squares += be.dot(r, r)
        c += be.to64(xb.T @ r)
        residual_sums += be.sum64(r)
    c = be.numpy64(c) - np.outer(mx, be.numpy64(residual_sums))
    c /= sx[:, None]
    penalty = ridge * n * float(np.vdot(w0, w0)) if ridge else 0.0
    g = c - ridge * n * w0 if ridge else c
    g = factor.whiten(g)
    objective = (squares + penalty - float(np.vdot(g, g))) / scale
    objective = _clean_zero(max(objective, 0.0), zz.diagonal().max() / scale)
    return EMMSResult(-objective, weights, objective, 1, True, "exact")


def _paper(be, x, blocks, stats, standardize, ridge, tol, max_iter) -> EMMSResult:
    n = x.shape[0]
    k, width = len(blocks), blocks[0].shape[1]
    scale = float(n * width)
    factor = _gram(be, x, ridge)
    zs = _standardized_blocks(be, blocks, standardize)
    zz = stats[2]

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
    return EMMSResult(-objective, t, objective, iteration, converged, "paper")


def _standardized_blocks(be, blocks, standardize):
    """The label blocks as contiguous backend arrays, z-scored when asked (new arrays)."""
    zs = [be.contiguous(block) for block in blocks]
    return [zscore(z, name="label_embeddings") for z in zs] if standardize else zs


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
        # The (N L, K) least squares by its K x K normal equations in float64: cuSOLVER's
        # QR refuses N L beyond ~2^31 / K rows (N = 100k, L = 1024 fails), and for K
        # well-conditioned F-labels the normal equations lose nothing measurable.
        gram = np.array([[be.dot(a, b) for b in zs] for a in zs])
        t = np.linalg.solve(gram, np.array([be.dot(z, fit) for z in zs]))
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
