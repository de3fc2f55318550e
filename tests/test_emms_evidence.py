"""EMMS with an evidence-chosen ridge (emms.emms_evidence): the score against the Gaussian
marginal likelihood evaluated directly, its optimum against brute force (np.linalg.solve
per candidate ridge, slogdet, a grid over the simplex), its limits (the paper's EMMS as
N / D grows; finite and ordered when D > N), and bad input."""

import warnings
from itertools import product

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from conftest import generative_problem

import emms
from emms import HighDimensionWarning, InputError
from emms.selectors.registry import FEATURES_LABEL_EMBEDDINGS, SELECTORS


def _zscore(a):
    return (a - a.mean(0)) / (a.std(0) + 1e-8)


def _direct_log_evidence(features, f_labels, t, alpha, beta):
    """log p(Y(t)) per entry, from the (N - 1)-dimensional Gaussian on the centred space:
    each column ~ N(0, I / beta + X X^T / alpha), written in an orthonormal basis H of the
    complement of the all-ones vector."""
    x = _zscore(features)
    y = sum(tk * _zscore(f_labels[:, :, k]) for k, tk in enumerate(t))
    n = len(x)
    h = scipy.linalg.null_space(np.ones((1, n)))
    xh, yh = h.T @ x, h.T @ y
    cov = np.eye(n - 1) / beta + xh @ xh.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("il,il->", yh, np.linalg.solve(cov, yh))
    width = y.shape[1]
    return -0.5 * (width * ((n - 1) * np.log(2 * np.pi) + logdet) + quad) / ((n - 1) * width)


def _simplex_grid(step):
    m = round(1 / step)
    grid = [(a, b, m - a - b) for a, b in product(range(m + 1), repeat=2) if a + b <= m]
    return np.array(grid) / m


def _brute_profile(features, f_labels, lambdas, t_grid):
    """min over a t grid of J(t, lambda) = log(Q / (n L)) + log det(I + X^T X / lambda) / n
    for each lambda, with Q = ||Y - X W||^2 + lambda ||W||^2 and W by np.linalg.solve."""
    x = _zscore(features)
    zs = np.stack([_zscore(f_labels[:, :, k]) for k in range(f_labels.shape[2])], axis=2)
    n, width = len(x), zs.shape[1]
    targets = np.einsum("nlk,tk->tnl", zs, t_grid)  # (T, N, L)
    out = []
    for lam in lambdas:
        a = x.T @ x + lam * np.eye(x.shape[1])
        w = np.linalg.solve(a, np.einsum("nd,tnl->dtl", x, targets).reshape(x.shape[1], -1))
        w = w.reshape(x.shape[1], len(t_grid), width)
        residual = targets - np.einsum("nd,dtl->tnl", x, w)
        q = (residual**2).sum(axis=(1, 2)) + lam * (w**2).sum(axis=(0, 2))
        occam = np.linalg.slogdet(np.eye(x.shape[1]) + x.T @ x / lam)[1]
        j = np.log(q / ((n - 1) * width)) + occam / (n - 1)
        best = int(np.argmin(j))
        out.append((j[best], t_grid[best]))
    return out


# --- the score is the evidence, and its maximum ----------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(60, 8), (20, 35)])
def test_score_is_the_gaussian_evidence_at_the_returned_point(n, d):
    features, f_labels = generative_problem(n=n, d=d, width=3, noise=(0.3, 1.0, 2.0), seed=n)
    result = emms.emms_evidence(features, f_labels)
    direct = _direct_log_evidence(features, f_labels, result.weights, result.alpha, result.beta)
    assert result.score == pytest.approx(direct, rel=1e-9)
    assert result.alpha / result.beta == pytest.approx(result.strength, rel=1e-12)
    assert np.isfinite(result.score)


@pytest.mark.parametrize(("n", "d"), [(60, 8), (20, 35)])
def test_no_alpha_beta_gives_more_evidence(n, d):
    features, f_labels = generative_problem(n=n, d=d, width=3, noise=(0.3, 1.0, 2.0), seed=n)
    result = emms.emms_evidence(features, f_labels)
    t = result.weights
    best = scipy.optimize.minimize(
        lambda p: -_direct_log_evidence(features, f_labels, t, np.exp(p[0]), np.exp(p[1])),
        x0=[0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 4000},
    )
    assert result.score >= -best.fun - 1e-9
    assert result.score == pytest.approx(-best.fun, abs=1e-7)


@pytest.mark.parametrize(("n", "d", "seed"), [(30, 6, 0), (25, 40, 1)])
def test_optimum_over_the_strength_equals_brute_force(n, d, seed):
    features, f_labels = generative_problem(n=n, d=d, width=3, noise=(0.3, 0.8, 1.5), seed=seed)
    result = emms.emms_evidence(features, f_labels)
    j_star = -2 * result.score - np.log(2 * np.pi) - 1
    # centred on the reported strength; from far below when it is the lambda -> 0 limit
    centre = result.strength if result.strength > 0 else 1e-6 * len(features)
    lambdas = centre * np.exp(np.linspace(-6, 6, 97))
    brute = _brute_profile(features, f_labels, lambdas, _simplex_grid(0.025))
    values = np.array([j for j, _ in brute])
    # no (t, lambda) of the brute-force grid beats the reported optimum ...
    assert values.min() >= j_star - 1e-9
    # ... and the grid gets as close as its resolution allows, at the same strength
    assert values.min() == pytest.approx(j_star, abs=2e-3)
    at_star = _brute_profile(features, f_labels, [centre], _simplex_grid(0.01))[0]
    assert at_star[0] == pytest.approx(j_star, abs=1e-3)
    np.testing.assert_allclose(at_star[1], result.weights, atol=0.03)


def test_weights_and_objective_are_emms_with_the_chosen_ridge(problem):
    features, f_labels = problem
    result = emms.emms_evidence(features, f_labels)
    paper = emms.emms(features, f_labels, ridge=result.ridge)
    np.testing.assert_allclose(result.weights, paper.weights, atol=1e-7)
    assert result.objective == pytest.approx(paper.objective, rel=1e-8)


# --- the limits -------------------------------------------------------------------------------


def test_tends_to_the_papers_emms_as_n_over_d_grows():
    gaps, weight_gaps, ridges = [], [], []
    for n in (200, 800, 3200):
        features, f_labels = generative_problem(n=n, d=12, width=6, seed=1)
        result = emms.emms_evidence(features, f_labels)
        paper = emms.emms(features, f_labels)
        limit = -0.5 * np.log(2 * np.pi * np.e * paper.objective * n / (n - 1))
        gaps.append(abs(result.score - limit))
        weight_gaps.append(np.abs(result.weights - paper.weights).max())
        ridges.append(result.ridge)
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.05
    assert weight_gaps == sorted(weight_gaps, reverse=True) and weight_gaps[-1] < 1e-3
    assert ridges == sorted(ridges, reverse=True) and ridges[-1] < 1e-4


@pytest.mark.parametrize("seed", [3, 4])
def test_stays_finite_and_orders_models_when_d_exceeds_n(seed):
    levels = (0.0, 0.5, 1.5, 4.0)
    problems = [
        generative_problem(n=40, d=60, width=6, feature_noise=level, seed=seed) for level in levels
    ]
    for features, f_labels in problems:
        with pytest.warns(HighDimensionWarning):
            assert emms.emms(features, f_labels).score == 0.0  # the paper's EMMS: all tied
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = [emms.emms_evidence(*p).score for p in problems]
    assert np.isfinite(scores).all()
    assert scores == sorted(scores, reverse=True)
    assert scores[0] - scores[-1] > 0.1


def test_pure_noise_features_score_below_informative_ones_when_d_exceeds_n():
    features, f_labels = generative_problem(n=30, d=80, width=4, seed=2)
    noise = np.random.default_rng(9).normal(size=features.shape)
    assert emms.emms_evidence(features, f_labels).score > emms.emms_evidence(noise, f_labels).score


# --- the F-label weights ------------------------------------------------------------------------


def test_noisier_f_labels_get_smaller_weights(problem):
    features, f_labels = problem  # noise std 0.2 < 1.0 < 3.0
    result = emms.emms_evidence(features, f_labels)
    assert result.weights.min() >= 0
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert result.weights[0] > result.weights[1] > result.weights[2]


def test_a_pure_noise_label_gets_almost_no_weight():
    features, f_labels = generative_problem(noise=(0.3, 0.3, 0.3))
    f_labels[:, :, 2] = np.random.default_rng(5).normal(size=f_labels[:, :, 2].shape)
    result = emms.emms_evidence(features, f_labels)
    assert result.weights[2] < 0.05
    assert result.weights[0] == pytest.approx(result.weights[1], abs=0.15)


# --- invariances and input handling -----------------------------------------------------------


def test_invariant_to_sample_order_and_column_scale(problem):
    features, f_labels = problem
    reference = emms.emms_evidence(features, f_labels)
    order = np.random.default_rng(1).permutation(len(features))
    permuted = emms.emms_evidence(features[order], f_labels[order])
    assert permuted.score == pytest.approx(reference.score, rel=1e-9)
    np.testing.assert_allclose(permuted.weights, reference.weights, atol=1e-8)
    rescaled = features * np.linspace(0.01, 100, features.shape[1]) + 3.0
    assert emms.emms_evidence(rescaled, f_labels).score == pytest.approx(reference.score, rel=1e-7)


def test_inputs_are_not_modified_and_forms_agree(problem):
    features, f_labels = problem
    f_copy, z_copy = features.copy(), f_labels.copy()
    stacked = emms.emms_evidence(features, f_labels)
    as_list = emms.emms_evidence(features, [f_labels[:, :, k] for k in range(3)])
    np.testing.assert_array_equal(features, f_copy)
    np.testing.assert_array_equal(f_labels, z_copy)
    assert as_list.score == stacked.score


def test_constant_feature_columns_are_dropped_with_a_warning(problem):
    features, f_labels = problem
    padded = np.hstack([features, np.full((len(features), 2), 7.0)])
    with pytest.warns(UserWarning, match="2 constant column"):
        padded_score = emms.emms_evidence(padded, f_labels).score
    assert padded_score == pytest.approx(emms.emms_evidence(features, f_labels).score, rel=1e-10)


@pytest.mark.parametrize(
    ("features", "labels", "kwargs", "message"),
    [
        (np.zeros((10, 3)) + np.arange(3), np.arange(40.0).reshape(10, 2, 2), {}, "every column"),
        (np.ones(10), np.ones((10, 2, 2)), {}, "features must be 2-D"),
        (np.ones((2, 3)), np.ones((2, 2, 2)), {}, "N=2 samples; at least 3"),
        (np.eye(10, 3), np.ones((9, 2, 2)), {}, r"has 9 rows but the features have N=10"),
        (np.eye(10, 3), np.ones((10, 2, 2)), {}, "same for every sample"),
        (np.eye(10, 3), np.eye(10, 4).reshape(10, 2, 2), {"n_grid": 2}, "n_grid=2 must be"),
    ],
)
def test_bad_input_names_the_input_and_the_fix(features, labels, kwargs, message):
    with pytest.raises(InputError, match=message):
        emms.emms_evidence(features, labels, **kwargs)


def test_nan_is_rejected_by_name(problem):
    features, f_labels = problem
    bad = features.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="features contains 1 NaN"):
        emms.emms_evidence(bad, f_labels)
    bad_labels = f_labels.copy()
    bad_labels[0, 0, 1] = np.inf
    with pytest.raises(InputError, match=r"label_embeddings\[1\] contains 0 NaN and 1 inf"):
        emms.emms_evidence(features, bad_labels)


def test_registered_beside_the_papers_emms(problem):
    features, f_labels = problem
    spec = SELECTORS["emms_evidence"]
    assert spec.label == "EMMS (evidence)"
    assert spec.needs == FEATURES_LABEL_EMBEDDINGS
    assert spec.label_formats == ("class", "text", "box")
    assert spec(features, f_labels) == emms.emms_evidence(features, f_labels).score
    assert SELECTORS["emms"](features, f_labels) == emms.emms(features, f_labels).score
