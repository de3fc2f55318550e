"""LogME (You et al., JMLR 2022) against the evidence evaluated directly from its closed
form, p(y) = N(y | 0, I / beta + F F^T / alpha), and against a numerical maximiser."""

import numpy as np
import pytest
import scipy.optimize
from conftest import generative_problem

import emms
from emms import InputError


def _direct_log_evidence(f, y, alpha, beta):
    n = len(y)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(cov, y)) / n


@pytest.mark.parametrize(("n", "d"), [(80, 12), (25, 40)])
def test_evidence_matches_the_gaussian_marginal_likelihood(n, d):
    rng = np.random.default_rng(n)
    f = rng.normal(size=(n, d))
    y = f @ rng.normal(size=(d, 3)) * 0.3 + rng.normal(size=(n, 3))
    evidence, alpha, beta = emms.logme_evidence(f, y)
    for c in range(3):
        assert evidence[c] == pytest.approx(
            _direct_log_evidence(f, y[:, c], alpha[c], beta[c]), rel=1e-10
        )


def test_fixed_point_is_the_maximum_of_the_evidence():
    rng = np.random.default_rng(7)
    f = rng.normal(size=(60, 10))
    y = f @ rng.normal(size=10) + 0.7 * rng.normal(size=60)
    evidence, alpha, beta = emms.logme_evidence(f, y)
    result = scipy.optimize.minimize(
        lambda p: -_direct_log_evidence(f, y, np.exp(p[0]), np.exp(p[1])),
        x0=[3.0, -3.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000},
    )
    assert evidence[0] >= -result.fun - 1e-12
    assert evidence[0] == pytest.approx(-result.fun, abs=1e-9)
    assert np.log(alpha[0]) == pytest.approx(result.x[0], abs=1e-3)
    assert np.log(beta[0]) == pytest.approx(result.x[1], abs=1e-3)


def test_classification_uses_one_indicator_target_per_class():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(90, 6))
    labels = rng.integers(0, 3, size=90) * 5  # any ids, not 0..C-1
    one_hot = (labels[:, None] == np.array([0, 5, 10])[None, :]).astype(float)
    expected = np.mean(
        [
            _direct_log_evidence(f, one_hot[:, c], *emms.logme_evidence(f, one_hot[:, c])[1:])
            for c in range(3)
        ]
    )
    assert emms.logme(f, labels) == pytest.approx(expected, rel=1e-10)


def test_separable_features_beat_shuffled_labels():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 30)
    f = np.eye(4)[labels] * 3 + rng.normal(size=(120, 4))
    f = np.hstack([f, rng.normal(size=(120, 6))])
    assert emms.logme(f, labels) > emms.logme(f, rng.permutation(labels)) + 0.1


def test_logme_flabel_is_regression_on_standardised_stacked_labels():
    features, f_labels = generative_problem(n=120, d=6, width=3)
    stacked = np.concatenate(
        [(z - z.mean(0)) / (z.std(0) + 1e-8) for z in np.moveaxis(f_labels, 2, 0)], axis=1
    )
    assert emms.logme_flabel(features, f_labels) == pytest.approx(
        emms.logme(features, stacked, regression=True), rel=1e-12
    )
    clean, _ = generative_problem(n=120, d=6, width=3, feature_noise=0.0, seed=1)
    noisy, _ = generative_problem(n=120, d=6, width=3, feature_noise=3.0, seed=1)
    _, labels_1 = generative_problem(n=120, d=6, width=3, seed=1)
    assert emms.logme_flabel(clean, labels_1) > emms.logme_flabel(noisy, labels_1)


def test_logme_bad_input():
    f = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(InputError, match="1 distinct class"):
        emms.logme(f, np.zeros(20, dtype=int))
    with pytest.raises(InputError, match="has 19 entries"):
        emms.logme(f, np.arange(19) % 2)
    with pytest.raises(InputError, match="non-integer"):
        emms.logme(f, np.linspace(0, 1, 20))
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        emms.logme(bad, np.arange(20) % 2)


def test_logme_does_not_modify_inputs():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(30, 4))
    y = rng.normal(size=(30, 2))
    f0, y0 = f.copy(), y.copy()
    emms.logme(f, y, regression=True)
    np.testing.assert_array_equal(f, f0)
    np.testing.assert_array_equal(y, y0)


def _noise_free_log_evidence(f, y, alpha):
    """log N(y | 0, F F^T / alpha) per sample: the beta -> infinity limit (F of rank N)."""
    n = len(y)
    cov = f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(cov, y)) / n


def test_rank_n_features_take_the_noise_free_limit_instead_of_nan():
    # D > N: every target lies in the span of F. The fixed point drives beta to infinity,
    # where beta * res2 became inf * 0 = NaN before; the supremum is the noise-free limit.
    rng = np.random.default_rng(3)
    f = rng.normal(size=(20, 40))
    y = f @ rng.normal(size=(40, 4)) * 0.5  # exactly in the span: the limit wins
    evidence, alpha, beta = emms.logme_evidence(f, y)
    assert np.all(np.isfinite(evidence))
    for c in range(4):
        direct = _noise_free_log_evidence(f, y[:, c], alpha[c])
        if np.isinf(beta[c]):
            assert evidence[c] == pytest.approx(direct, rel=1e-9)
        # no finite (alpha, beta) does better (independent maximiser, from two starts)
        for start in ([0.0, 0.0], [-5.0, 8.0]):
            best = scipy.optimize.minimize(
                lambda p, c=c: -_direct_log_evidence(f, y[:, c], np.exp(p[0]), np.exp(p[1])),
                x0=start,
                method="Nelder-Mead",
                options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000},
            )
            assert evidence[c] >= -best.fun - 1e-6
    assert np.isinf(beta).any()
    assert np.isfinite(emms.logme_flabel(f, y[:, :, None]))
