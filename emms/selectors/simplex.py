"""Exact minimisation of a convex quadratic over the probability simplex, and sparsemax.

Both weight steps of EMMS (README, "The method"; paper §3.3) are problems of the form

    min over t in simplex_K:   q(t) = t^T A t - 2 b^T t,     A (K x K) symmetric PSD,

with K the number of foundation models (3 in the paper). K is tiny, so the problem is
solved exactly by visiting the faces of the simplex: on the face spanned by a support S
the minimiser satisfies the KKT system  [2 A_SS, 1; 1^T, 0] [t_S; mu] = [2 b_S; 1].
The global minimum is attained in the relative interior of some face (a vertex at worst)
and is a minimiser of that face's affine problem, so the smallest objective among the
feasible face solutions is the exact optimum. The cost is O(2^K K^3).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

__all__ = ["simplex_qp", "sparsemax", "MAX_EXACT_K"]

#: Faces are enumerated exactly up to this K (2^16 - 1 supports).
MAX_EXACT_K = 16


def simplex_qp(A: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Minimise ``t^T A t - 2 b^T t`` over the probability simplex, exactly.

    Args:
        A: (K, K) symmetric positive semi-definite matrix.
        b: (K,) linear term; zeros when omitted.

    Returns:
        ``(t, value)``: the minimiser, shape (K,), non-negative and summing to 1, and the
        minimum value q(t).
    """
    A = np.asarray(A, dtype=np.float64)
    A = 0.5 * (A + A.T)
    k = A.shape[0]
    if A.shape != (k, k) or k < 1:
        raise ValueError(f"A must be a square K x K matrix, got shape {A.shape}.")
    b = np.zeros(k) if b is None else np.asarray(b, dtype=np.float64).reshape(k)
    if k > MAX_EXACT_K:
        raise ValueError(
            f"simplex_qp enumerates faces exactly up to K={MAX_EXACT_K}; got K={k}. "
            "Use fewer foundation models (label embeddings) per score."
        )

    def value(t: np.ndarray) -> float:
        return float(t @ A @ t - 2.0 * b @ t)

    scale = max(1.0, float(np.abs(A).max()), float(np.abs(b).max()))
    feasibility_tol = 1e-10
    best_t = np.eye(k)[int(np.argmin(np.diag(A) - 2.0 * b))]
    best = value(best_t)
    for size in range(2, k + 1):
        for support in combinations(range(k), size):
            s = np.asarray(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = 2.0 * A[np.ix_(s, s)] / scale
            kkt[:size, size] = 1.0
            kkt[size, :size] = 1.0
            rhs = np.concatenate([2.0 * b[s] / scale, [1.0]])
            solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
            t_s = solution[:size]
            if t_s.min() < -feasibility_tol or abs(t_s.sum() - 1.0) > 1e-9:
                continue
            t = np.zeros(k)
            t[s] = np.clip(t_s, 0.0, None)
            t /= t.sum()
            candidate = value(t)
            if candidate < best:
                best, best_t = candidate, t
    return best_t, best


def sparsemax(z: np.ndarray) -> np.ndarray:
    """Euclidean projection of a vector onto the probability simplex (Martins & Astudillo,
    ICML 2016): ``argmin_{t in simplex} ||t - z||^2``.

    Args:
        z: (K,) real vector.

    Returns:
        (K,) non-negative vector summing to 1.
    """
    z = np.asarray(z, dtype=np.float64).ravel()
    ordered = np.sort(z)[::-1]
    cumulative = np.cumsum(ordered)
    ranks = np.arange(1, len(z) + 1)
    in_support = 1.0 + ranks * ordered > cumulative
    k = ranks[in_support][-1]
    threshold = (cumulative[k - 1] - 1.0) / k
    return np.maximum(z - threshold, 0.0)
