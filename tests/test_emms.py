"""EMMS (paper §3): the three solvers against each other, against independent least
squares, against the paper's generative model, and on bad input."""

import warnings

import numpy as np
import pytest
import scipy.optimize
from conftest import generative_problem

import emms
from emms import HighDimensionWarning, InputError


def _zscore(a):
    return (a - a.mean(0)) / (a.std(0) + 1e-8)


def _lstsq_objective(x, zs, t, ridge=0.0):
    """f(W*(t), t) by an independent route: np.linalg.lstsq on an augmented system."""
    n, d = x.shape
    target = sum(tk * z for tk, z in zip(t, zs, strict=True))
    if ridge:
        x_aug = np.vstack([x, np.sqrt(ridge * n) * np.eye(d)])
        y_aug = np.vstack([target, np.zeros((d, target.shape[1]))])
    else:
        x_aug, y_aug = x, target
    w = np.linalg.lstsq(x_aug, y_aug, rcond=None)[0]
    return float(((x_aug @ w - y_aug) ** 2).sum()) / target.size


def _brute_force_optimum(features, f_labels, ridge=0.0):
    x = _zscore(features)
    zs = [_zscore(f_labels[:, :, k]) for k in range(f_labels.shape[2])]
    k = len(zs)
    best = scipy.optimize.minimize(
        lambda p: _lstsq_objective(x, zs, p, ridge),
        np.full(k, 1 / k),
        bounds=[(0, 1)] * k,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    return best.fun, best.x


# --- the paper's model -------------------------------------------------------------------


def test_weights_are_on_the_simplex_and_favour_the_cleanest_label(problem):
    features, f_labels = problem
    result = emms.emms(features, f_labels)
    assert result.weights.shape == (3,)
    assert result.weights.min() >= 0
    assert result.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # noise std 0.2 < 1.0 < 3.0: noisier F-labels must get smaller weights
    assert result.weights[0] > result.weights[1] > result.weights[2]


def test_a_pure_noise_label_gets_no_weight():
    features, f_labels = generative_problem(noise=(0.3, 0.3, 0.3))
    rng = np.random.default_rng(5)
    f_labels[:, :, 2] = rng.normal(size=f_labels[:, :, 2].shape)  # a random text tower
    result = emms.emms(features, f_labels)
    assert result.weights[2] < 0.05
    assert result.weights[0] == pytest.approx(result.weights[1], abs=0.15)


@pytest.mark.parametrize("solver", ["exact", "paper", "released"])
def test_better_features_score_higher(solver):
    scores = [
        emms.emms(*generative_problem(feature_noise=level, seed=3), solver=solver).score
        for level in (0.0, 0.5, 1.5, 4.0)
    ]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] - scores[-1] > 0.1


# --- the solvers agree -----------------------------------------------------------------------


@pytest.mark.parametrize("ridge", [0.0, 0.05])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_equals_brute_force_least_squares(seed, ridge):
    features, f_labels = generative_problem(n=150, d=8, width=4, seed=seed)
    result = emms.emms(features, f_labels, ridge=ridge)
    brute, _ = _brute_force_optimum(features, f_labels, ridge)
    assert result.objective <= brute * (1 + 1e-9)
    assert result.objective == pytest.approx(brute, rel=1e-6)
    x = _zscore(features)
    zs = [_zscore(f_labels[:, :, k]) for k in range(3)]
    assert result.objective == pytest.approx(
        _lstsq_objective(x, zs, result.weights, ridge), rel=1e-10
    )


@pytest.mark.parametrize("ridge", [0.0, 0.1])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_paper_alternation_converges_to_the_exact_optimum(seed, ridge):
    features, f_labels = generative_problem(noise=(0.5, 0.8, 1.2), seed=seed)
    exact = emms.emms(features, f_labels, ridge=ridge)
    paper = emms.emms(features, f_labels, solver="paper", ridge=ridge, tol=1e-15, max_iter=5000)
    assert paper.converged
    assert paper.objective == pytest.approx(exact.objective, rel=1e-8)
    np.testing.assert_allclose(paper.weights, exact.weights, atol=1e-5)
    assert paper.n_iter > 1


def _sparsemax_by_sorting(v):
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = max(j for j in range(1, len(v) + 1) if u[j - 1] - (css[j - 1] - 1) / j > 0)
    return np.maximum(v - (css[rho - 1] - 1) / rho, 0)


@pytest.mark.parametrize("seed", [0, 4])
def test_released_solver_is_one_pass_of_the_public_code(seed):
    features, f_labels = generative_problem(seed=seed)
    n, width, k = f_labels.shape
    x = _zscore(features)
    y = np.stack([_zscore(f_labels[:, :, i]) for i in range(k)], axis=2)
    w = np.linalg.lstsq(x, y @ np.full(k, 1 / k), rcond=None)[0]
    t = np.linalg.lstsq(y.reshape(n * width, k), (x @ w).reshape(-1), rcond=None)[0]
    t = _sparsemax_by_sorting(t)
    objective = ((x @ w - y @ t) ** 2).sum() / (n * width)
    result = emms.emms(features, f_labels, solver="released")
    assert result.objective == pytest.approx(objective, rel=1e-10)
    np.testing.assert_allclose(result.weights, t, atol=1e-10)
    assert (result.n_iter, result.converged) == (1, False)
    assert result.objective >= emms.emms(features, f_labels).objective


# --- precision, backends, invariances --------------------------------------------------------


def test_float32_and_torch_give_the_same_numbers(problem):
    features, f_labels = problem
    reference = emms.emms(features, f_labels)
    in_torch = emms.emms(features, f_labels, backend="torch")
    assert in_torch.objective == pytest.approx(reference.objective, rel=1e-10)
    single = emms.emms(features.astype(np.float32), f_labels.astype(np.float32), dtype="float32")
    assert single.objective == pytest.approx(reference.objective, rel=1e-4)
    np.testing.assert_allclose(single.weights, reference.weights, atol=1e-4)
    torch_single = emms.emms(features, f_labels, dtype="float32", backend="torch", solver="paper")
    assert torch_single.objective == pytest.approx(reference.objective, rel=1e-4)


def test_float32_objective_survives_a_near_perfect_fit():
    # residual ~1e-3 of the label variance: <Z, Z> - <B, A^-1 B> cancels 3 digits
    features, f_labels = generative_problem(n=3000, d=64, width=32, noise=(0.01, 0.03, 0.1))
    reference = emms.emms(features, f_labels)
    assert reference.objective < 0.01
    for solver in ("exact", "paper"):
        single = emms.emms(
            features.astype(np.float32),
            f_labels.astype(np.float32),
            solver=solver,
            tol=1e-12,
            dtype="float32",
        )
        assert single.objective == pytest.approx(reference.objective, rel=2e-5), solver


def test_float32_inputs_work_in_float64_by_default(problem):
    features, f_labels = problem
    reference = emms.emms(features, f_labels)
    single_inputs = emms.emms(features.astype(np.float32), f_labels.astype(np.float32))
    rounded = emms.emms(
        features.astype(np.float32).astype(np.float64), f_labels.astype(np.float32).astype(float)
    )
    assert single_inputs.objective == rounded.objective
    assert single_inputs.objective == pytest.approx(reference.objective, rel=1e-5)


def test_torch_tensor_inputs_are_accepted(problem):
    torch = pytest.importorskip("torch")
    features, f_labels = problem
    result = emms.emms(torch.from_numpy(features), torch.from_numpy(f_labels), backend="torch")
    assert result.objective == pytest.approx(emms.emms(features, f_labels).objective, rel=1e-10)


@pytest.mark.parametrize("solver", ["exact", "paper", "released"])
def test_invariant_to_sample_order_and_column_scale(problem, solver):
    features, f_labels = problem
    reference = emms.emms(features, f_labels, solver=solver)
    order = np.random.default_rng(1).permutation(len(features))
    permuted = emms.emms(features[order], f_labels[order], solver=solver)
    assert permuted.score == pytest.approx(reference.score, rel=1e-9)
    rescaled = features * np.linspace(0.01, 100, features.shape[1]) + 3.0
    assert emms.emms(rescaled, f_labels, solver=solver).score == pytest.approx(
        reference.score, rel=1e-7
    )


@pytest.mark.parametrize("solver", ["exact", "paper", "released"])
def test_inputs_are_not_modified(problem, solver):
    features, f_labels = problem
    f_copy, z_copy = features.copy(), f_labels.copy()
    emms.emms(features, f_labels, solver=solver)
    emms.emms(features.astype(np.float32), [f_labels[:, :, 0], f_labels[:, :4, 1]])
    np.testing.assert_array_equal(features, f_copy)
    np.testing.assert_array_equal(f_labels, z_copy)


def test_unequal_widths_are_reduced_by_deterministic_pca(problem):
    features, f_labels = problem
    blocks = [f_labels[:, :, 0], f_labels[:, :, 1], np.hstack([f_labels[:, :, 2]] * 2)]
    with pytest.warns(UserWarning, match="unequal widths"):
        first = emms.emms(features, blocks)
    with pytest.warns(UserWarning, match="unequal widths"):
        second = emms.emms(features, blocks)
    assert first.score == second.score
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.weights.shape == (3,)


def test_list_and_stacked_forms_agree(problem):
    features, f_labels = problem
    as_list = [f_labels[:, :, k] for k in range(3)]
    assert emms.emms(features, as_list).score == emms.emms(features, f_labels).score


# --- bad input ---------------------------------------------------------------------------------


def test_nan_and_inf_are_rejected_by_name(problem):
    features, f_labels = problem
    bad = features.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="features contains 1 NaN"):
        emms.emms(bad, f_labels)
    bad_labels = f_labels.copy()
    bad_labels[0, 0, 1] = np.inf
    with pytest.raises(InputError, match=r"label_embeddings\[1\] contains 0 NaN and 1 inf"):
        emms.emms(features, bad_labels)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros((10, 3)) + np.arange(3), np.arange(40.0).reshape(10, 2, 2), "every column"),
        (np.ones(10), np.ones((10, 2, 2)), "must be 2-D"),
        (np.random.default_rng(0).normal(size=(1, 3)), np.ones((1, 2, 2)), "N=1 samples"),
        (np.random.default_rng(0).normal(size=(9, 3)), np.ones((10, 2, 2)), "has 10 rows"),
        (np.random.default_rng(0).normal(size=(10, 3)), np.ones((10, 2, 2, 1)), "must be"),
        (np.random.default_rng(0).normal(size=(10, 3)), np.ones((10, 2, 2)), "same for every"),
        (np.array([["a", "b"], ["c", "d"]]), np.ones((2, 2, 2)), "dtype"),
    ],
)
def test_bad_shapes_and_values_raise_input_error(features, labels, message):
    with pytest.raises(InputError, match=message):
        emms.emms(features, labels)


def test_bad_options_raise_input_error(problem):
    features, f_labels = problem
    with pytest.raises(InputError, match="solver"):
        emms.emms(features, f_labels, solver="fast")
    with pytest.raises(InputError, match="ridge"):
        emms.emms(features, f_labels, ridge=-1)
    with pytest.raises(InputError, match="dtype"):
        emms.emms(features, f_labels, dtype="float16")
    with pytest.raises(InputError, match="backend"):
        emms.emms(features, f_labels, backend="jax")
    with pytest.raises(InputError, match="ridge is not part of the released"):
        emms.emms(features, f_labels, solver="released", ridge=0.1)


def test_warnings_for_k1_constant_columns_and_high_dimension(problem):
    features, f_labels = problem
    with pytest.warns(UserWarning, match="K=1"):
        result = emms.emms(features, f_labels[:, :, 0])
    np.testing.assert_array_equal(result.weights, [1.0])
    padded = np.hstack([features, np.full((len(features), 2), 7.0)])
    with pytest.warns(UserWarning, match="2 constant column"):
        assert emms.emms(padded, f_labels).score == pytest.approx(
            emms.emms(features, f_labels).score, rel=1e-12
        )
    wide, labels = generative_problem(n=20, d=30, width=3)
    for solver in ("exact", "paper", "released"):
        with pytest.warns(HighDimensionWarning, match="D=30 dimensions for N=20"):
            collapsed = emms.emms(wide, labels, solver=solver)
        assert collapsed.objective == 0.0, solver  # exactly: ties, not rounding noise
    with warnings.catch_warnings():
        warnings.simplefilter("error", HighDimensionWarning)
        assert emms.emms(wide, labels, ridge=0.1).objective > 0.01


def test_reduce_width_is_pca_with_a_fixed_sign():
    from sklearn.decomposition import PCA

    from emms.selectors.preprocessing import reduce_width

    z = np.random.default_rng(3).normal(size=(80, 6)) @ np.diag([5, 4, 3, 2, 1, 0.5])
    reduced = reduce_width(z, 3)
    reference = PCA(n_components=3, svd_solver="full").fit(z)
    scores = reference.transform(z)
    for j in range(3):
        sign = np.sign(reduced[:, j] @ scores[:, j])
        np.testing.assert_allclose(reduced[:, j], sign * scores[:, j], atol=1e-10)
        loading = reference.components_[j] * sign
        assert loading[np.abs(loading).argmax()] > 0  # the documented sign convention
