"""Speed and scale (issue 14): the float32 exact path, out-of-core sums, dask, zoo batching
and the input checks on that path, each against an independent computation."""

import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import generative_problem

import emms
from emms import InputError


def ill_conditioned(n=3000, d=96, width=24, k=3, seed=0):
    """Features like real CNN features: low-rank signal, ReLU (a mean offset), column
    scales spread over 1e-3..1e3 and near-collinear column pairs (correlation matrix
    condition number ~1e9); float32, as features are stored."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 16))
    x = latent @ rng.standard_normal((16, d)) + 0.05 * rng.standard_normal((n, d))
    x[:, 1::4] = x[:, 0::4] + 1e-3 * rng.standard_normal((n, d // 4))
    x = np.maximum(x, 0) + 0.5
    x *= 10.0 ** rng.uniform(-3, 3, d)
    signal = latent @ rng.standard_normal((16, width))
    z = np.stack([signal + s * rng.standard_normal((n, width)) for s in (0.1, 0.4, 1.0)], 2)
    return x.astype(np.float32), z.astype(np.float32)


def _condition(x):
    x = x.astype(np.float64)
    x = (x - x.mean(0)) / x.std(0)
    return np.linalg.cond(x.T @ x)


# --- float32 exact ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_float32_exact_matches_float64_on_ill_conditioned_features(seed, ridge):
    features, f_labels = ill_conditioned(seed=seed)
    assert _condition(features) > 1e7  # the case a float32 Gram cannot handle
    reference = emms.emms(features, f_labels, ridge=ridge)
    single = emms.emms(features, f_labels, dtype="float32", ridge=ridge)
    assert single.objective == pytest.approx(reference.objective, rel=1e-6)
    np.testing.assert_allclose(single.weights, reference.weights, atol=1e-4)
    # the same maths in float64 by another route: lstsq of the float64 z-scores at t*
    x = features.astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    zs = [f_labels[:, :, i].astype(np.float64) for i in range(3)]
    y = sum(
        t * (z - z.mean(0)) / (z.std(0) + 1e-8) for t, z in zip(single.weights, zs, strict=True)
    )
    aug_x = np.vstack([x, np.sqrt(ridge * len(x)) * np.eye(x.shape[1])]) if ridge else x
    aug_y = np.vstack([y, np.zeros((x.shape[1], y.shape[1]))]) if ridge else y
    w = np.linalg.lstsq(aug_x, aug_y, rcond=None)[0]
    direct = float(((aug_x @ w - aug_y) ** 2).sum()) / y.size
    assert single.objective == pytest.approx(direct, rel=1e-6)


def test_float32_exact_ranks_models_like_float64():
    features, f_labels = ill_conditioned(seed=2)
    rng = np.random.default_rng(0)
    zoo = {f"m{i}": features + (0.3 * i * features.std(0) * rng.standard_normal(features.shape))
           .astype(np.float32) for i in range(4)}  # fmt: skip
    single = [emms.emms(f, f_labels, dtype="float32").score for f in zoo.values()]
    double = [emms.emms(f, f_labels).score for f in zoo.values()]
    assert np.argsort(single).tolist() == np.argsort(double).tolist()
    np.testing.assert_allclose(single, double, rtol=1e-6)


def test_float32_exact_on_torch_and_with_list_labels():
    pytest.importorskip("torch")
    features, f_labels = ill_conditioned(n=1500, d=48, width=12)
    reference = emms.emms(features, f_labels)
    for kwargs in ({"backend": "torch"}, {}):
        for labels in (f_labels, [f_labels[:, :, i] for i in range(3)]):
            single = emms.emms(features, labels, dtype="float32", **kwargs)
            assert single.objective == pytest.approx(reference.objective, rel=1e-6)
    torch64 = emms.emms(features, f_labels, backend="torch")
    # condition number ~1e9: float64 rounding differs between BLAS libraries at ~1e-9
    assert torch64.objective == pytest.approx(reference.objective, rel=1e-8)


# --- out of core ------------------------------------------------------------------------


@pytest.fixture
def on_disk(tmp_path):
    features, f_labels = generative_problem(n=1000, d=20, width=8, seed=4)
    features = features * np.linspace(0.1, 10, 20) + 1e3  # offsets: the shifted sums
    np.save(tmp_path / "x.npy", features)
    np.save(tmp_path / "z.npy", f_labels)
    np.save(tmp_path / "z_nkl.npy", np.ascontiguousarray(np.moveaxis(f_labels, 2, 1)))
    for i in range(3):
        np.save(tmp_path / f"z{i}.npy", np.ascontiguousarray(f_labels[:, :, i]))
    return tmp_path, features, f_labels


@pytest.mark.parametrize("ridge", [0.0, 0.05])
@pytest.mark.parametrize("block_rows", [1, 97, 4096])
def test_streaming_equals_in_memory(on_disk, ridge, block_rows):
    path, features, f_labels = on_disk
    reference = emms.emms(features, f_labels, ridge=ridge)
    streamed = emms.emms_streaming(path / "x.npy", path / "z.npy", block_rows=block_rows,
                                   ridge=ridge)  # fmt: skip
    assert streamed.objective == pytest.approx(reference.objective, rel=1e-10)
    np.testing.assert_allclose(streamed.weights, reference.weights, atol=1e-10)


def test_streaming_label_forms_and_raw_mode(on_disk):
    path, features, f_labels = on_disk
    reference = emms.emms(features, f_labels)
    as_list = emms.emms_streaming(path / "x.npy", [path / f"z{i}.npy" for i in range(3)])
    nkl = emms.emms_streaming(path / "x.npy", path / "z_nkl.npy", layout="NKL", block_rows=64)
    memmap = emms.emms_streaming(np.load(path / "x.npy", mmap_mode="r"), f_labels)
    for result in (as_list, nkl, memmap):
        assert result.objective == pytest.approx(reference.objective, rel=1e-10)
    raw = emms.emms(features, f_labels, standardize=False, ridge=0.01)
    streamed_raw = emms.emms_streaming(path / "x.npy", path / "z.npy", standardize=False,
                                       ridge=0.01, block_rows=100)  # fmt: skip
    assert streamed_raw.objective == pytest.approx(raw.objective, rel=1e-8)


def test_streaming_peak_memory_does_not_grow_with_n(tmp_path):
    peaks = {}
    for n in (4_000, 32_000):
        rng = np.random.default_rng(n)
        x = np.lib.format.open_memmap(tmp_path / f"x{n}.npy", "w+", np.float32, (n, 32))
        z = np.lib.format.open_memmap(tmp_path / f"z{n}.npy", "w+", np.float32, (n, 16, 3))
        x[:] = rng.standard_normal((n, 32))
        z[:] = x[:, :16, None] + rng.standard_normal((n, 16, 3))
        x.flush(), z.flush()
        del x, z
        tracemalloc.start()
        emms.emms_streaming(tmp_path / f"x{n}.npy", tmp_path / f"z{n}.npy", block_rows=500)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    data_bytes = 32_000 * (32 + 48) * 8  # the larger input, in float64
    assert peaks[32_000] < 1.1 * peaks[4_000]
    assert peaks[32_000] < data_bytes / 4


def test_streaming_rejects_bad_input(tmp_path, on_disk):
    path, features, f_labels = on_disk
    bad = features.copy()
    bad[700, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(InputError, match=r"features contains NaN or inf values in rows 512"):
        emms.emms_streaming(tmp_path / "bad.npy", path / "z.npy", block_rows=256)
    with pytest.raises(InputError, match="has 999 rows|have \\[999\\] rows"):
        emms.emms_streaming(features, f_labels[:999])
    with pytest.raises(InputError, match="rescale"):
        emms.emms_streaming(features * 1e155, f_labels)
    with pytest.raises(InputError, match="layout='NKL'"):
        emms.emms_streaming(features, np.ones((1000, 3, 40)))


# --- dask ---------------------------------------------------------------------------------


def test_dask_local_cluster_equals_in_memory(on_disk):
    pytest.importorskip("distributed")
    from emms.selectors.distributed import emms_dask

    path, features, f_labels = on_disk
    reference = emms.emms(features, f_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own port/resource notices
        from_files = emms_dask(path / "x.npy", path / "z.npy", block_rows=150, n_workers=2)
        from_arrays = emms_dask(features, f_labels, block_rows=333, n_workers=2)
    for result in (from_files, from_arrays):
        assert result.objective == pytest.approx(reference.objective, rel=1e-10)
        np.testing.assert_allclose(result.weights, reference.weights, atol=1e-10)


# --- a zoo at once --------------------------------------------------------------------------


def _zoo(seed=0):
    rng = np.random.default_rng(seed)
    features, f_labels = generative_problem(n=300, d=10, width=5, seed=seed)
    zoo = {"clean": features, "noisy": features + rng.normal(size=features.shape),
           "wide": np.hstack([features, rng.normal(size=(300, 7))])}  # fmt: skip
    return zoo, f_labels


@pytest.mark.parametrize("solver", ["exact", "paper", "released"])
@pytest.mark.parametrize("dtype", [None, "float32"])
def test_emms_zoo_equals_per_model_calls(solver, dtype):
    zoo, f_labels = _zoo()
    batched = emms.emms_zoo(zoo, f_labels, solver=solver, dtype=dtype)
    assert list(batched) == list(zoo)
    for name, features in zoo.items():
        single = emms.emms(features, f_labels, solver=solver, dtype=dtype)
        assert batched[name].objective == single.objective
        np.testing.assert_array_equal(batched[name].weights, single.weights)


def test_logme_flabel_zoo_equals_per_model_calls():
    zoo, f_labels = _zoo(1)
    batched = emms.logme_flabel_zoo(zoo, f_labels)
    for name, features in zoo.items():
        assert batched[name] == pytest.approx(emms.logme_flabel(features, f_labels), rel=1e-12)


def test_zoo_rejects_mismatched_rows():
    zoo, f_labels = _zoo()
    zoo["short"] = zoo["clean"][:200]
    with pytest.raises(InputError, match="'short' have 200 rows"):
        emms.emms_zoo(zoo, f_labels)
    with pytest.raises(InputError, match="'short'.*200 rows"):
        emms.logme_flabel_zoo(zoo, f_labels)


# --- bad input on this path (issue 10) -------------------------------------------------------


@pytest.mark.parametrize("shape", [(50, 3, 40), (50, 40, 33)])
def test_implausible_k_axis_is_refused_with_the_fix(shape):
    features = np.random.default_rng(0).normal(size=(50, 4))
    labels = np.random.default_rng(1).normal(size=shape)
    for call in (emms.emms, emms.logme_flabel):
        with pytest.raises(InputError, match=r"implausible.*layout='NKL'.*list form"):
            call(features, labels)


def test_layout_argument_reads_nkl_and_confirms_nlk(problem):
    features, f_labels = problem
    reference = emms.emms(features, f_labels)
    nkl = np.ascontiguousarray(np.moveaxis(f_labels, 2, 1))  # (N, K, L)
    for solver in ("exact", "paper"):
        assert emms.emms(features, nkl, layout="NKL", solver=solver).objective == pytest.approx(
            emms.emms(features, f_labels, solver=solver).objective, rel=1e-12
        )
    assert emms.emms(features, nkl, layout="NKL", dtype="float32").objective == pytest.approx(
        reference.objective, rel=1e-6
    )
    assert emms.logme_flabel(features, nkl, layout="NKL") == pytest.approx(
        emms.logme_flabel(features, f_labels), rel=1e-12
    )
    wide_k = np.random.default_rng(0).normal(size=(400, 2, 3))  # K=3 > L=2, but meant
    assert emms.emms(features, wide_k, layout="NLK").weights.shape == (3,)
    with pytest.raises(InputError, match="layout='XYZ' is unknown"):
        emms.emms(features, f_labels, layout="XYZ")


@pytest.mark.parametrize("dtype", [None, "float32"])
def test_overflow_in_standardisation_is_an_input_error(problem, dtype):
    features, f_labels = problem
    with pytest.raises(InputError, match=r"features: the squares .* overflow.*rescale"):
        emms.emms(features * 1e155, f_labels, dtype=dtype)
    with pytest.raises(InputError, match=r"label_embeddings: the squares .* overflow.*rescale"):
        emms.emms(features, f_labels * 1e155, dtype=dtype)
    with pytest.raises(InputError, match=r"label_embeddings: the squares .*rescale"):
        emms.logme_flabel(features, f_labels * 1e155)
    # a large but safe scale is fine: the score is scale-invariant
    assert emms.emms(features * 1e100, f_labels).score == pytest.approx(
        emms.emms(features, f_labels).score, rel=1e-9
    )
