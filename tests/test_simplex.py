"""The exact simplex QP and sparsemax against independent solvers."""

import itertools

import numpy as np
import pytest
import scipy.optimize

from emms.selectors.simplex import simplex_qp, sparsemax


def _grid(k, steps):
    for point in itertools.product(range(steps + 1), repeat=k - 1):
        if sum(point) <= steps:
            yield np.array([*point, steps - sum(point)]) / steps


@pytest.mark.parametrize("seed", range(5))
def test_simplex_qp_matches_dense_grid_for_k3(seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(3, 3))
    a = m @ m.T
    b = rng.normal(size=3)
    t, value = simplex_qp(a, b)
    grid_best = min(float(p @ a @ p - 2 * b @ p) for p in _grid(3, 300))
    assert t.min() >= 0 and abs(t.sum() - 1) < 1e-12
    assert value <= grid_best + 1e-12
    assert value == pytest.approx(grid_best, abs=1e-3 * (1 + abs(grid_best)))


@pytest.mark.parametrize("seed", range(5))
def test_simplex_qp_matches_slsqp_for_k6(seed):
    rng = np.random.default_rng(100 + seed)
    m = rng.normal(size=(6, 4))  # rank-deficient PSD matrix
    a = m @ m.T
    b = rng.normal(size=6)
    t, value = simplex_qp(a, b)
    result = scipy.optimize.minimize(
        lambda p: p @ a @ p - 2 * b @ p,
        np.full(6, 1 / 6),
        jac=lambda p: 2 * a @ p - 2 * b,
        bounds=[(0, 1)] * 6,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert value <= result.fun + 1e-9
    assert value == pytest.approx(t @ a @ t - 2 * b @ t, abs=1e-12)


def test_simplex_qp_identical_columns_split_weight_feasibly():
    a = np.ones((2, 2))  # two identical F-labels: every split is optimal
    t, value = simplex_qp(a)
    assert value == pytest.approx(1.0)
    assert t.min() >= 0 and t.sum() == pytest.approx(1.0)


def _projection_by_bisection(z):
    lo, hi = z.min() - 1, z.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(z - mid, 0).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(z - (lo + hi) / 2, 0)


@pytest.mark.parametrize("seed", range(10))
def test_sparsemax_is_the_euclidean_projection(seed):
    z = np.random.default_rng(seed).normal(scale=2, size=5)
    np.testing.assert_allclose(sparsemax(z), _projection_by_bisection(z), atol=1e-12)
