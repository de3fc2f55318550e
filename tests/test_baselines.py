"""Baseline selectors: orderings, bounds, determinism, invariances, input errors, registry.

The independent recomputations of every selector (brute-force loops, direct formulas)
are in ``test_baselines_reference.py``.
"""

from functools import partial

import numpy as np
import pytest

from emms._validation import HighDimensionWarning, InputError
from emms.selectors.baselines import (
    gbc,
    hscore,
    leep,
    nce,
    nleep,
    pactran,
    parc,
    sfda,
    transrate,
    transrate_flabel,
)
from emms.selectors.registry import (
    FEATURES_LABEL_EMBEDDINGS,
    FEATURES_LABELS,
    LABEL_FORMATS,
    NEEDS,
    SELECTORS,
    SOURCE_LABELS_LABELS,
    SOURCE_PROBS_LABELS,
    SelectorSpec,
    selectors_for,
)


def blobs(n_per_class=30, n_classes=3, dim=8, separation=4.0, seed=0):
    """Gaussian classes with means separation * e_c (orthogonal), unit noise, rows mixed."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    means = separation * np.eye(n_classes, dim)
    features = means[labels] + rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return features[order], labels[order]


def shuffled(labels, seed=1):
    return np.random.default_rng(seed).permutation(labels)


def flabels_of(labels, width=4, k=2, noise=0.3, seed=2):
    """F-labels (N, L, K): a random embedding of each class plus noise, K noisy copies."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(labels.max() + 1, width))
    base = codes[labels]
    return np.stack([base + noise * rng.normal(size=base.shape) for _ in range(k)], axis=2)


def source_probs_of(labels, n_source=6, strength=3.0, seed=3):
    """Softmax outputs of a source head whose classes 2c, 2c+1 fire for target class c."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), n_source))
    logits[np.arange(len(labels)), 2 * labels + rng.integers(0, 2, len(labels))] += strength
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


# Every selector on features + class labels, with default hyper-parameters.
FEATURE_SELECTORS = {
    "nleep": nleep,
    "hscore": hscore,
    "hscore_lw": partial(hscore, shrinkage="ledoit-wolf"),
    "hscore_fixed": partial(hscore, shrinkage=0.3),
    "transrate": transrate,
    "transrate_uniform": partial(transrate, class_weighting="uniform"),
    "sfda": sfda,
    "sfda_unsoftened": partial(sfda, soften=False),
    "gbc": gbc,
    "pactran_dirichlet": partial(pactran, prior="dirichlet"),
    "pactran_gamma": partial(pactran, prior="gamma"),
    "pactran_gaussian": partial(pactran, prior="gaussian"),
    "parc": parc,
}
RANDOMISED = {
    "nleep": nleep,
    "pactran_dirichlet": partial(pactran, prior="dirichlet"),
    "parc_subset": partial(parc, max_samples=50),
}


# ---------------------------------------------------------------- orderings and bounds


@pytest.mark.parametrize("name", sorted(FEATURE_SELECTORS))
def test_separable_features_beat_the_same_features_shuffled_against_labels(name):
    score = FEATURE_SELECTORS[name]
    features, labels = blobs()
    good, bad = score(features, labels), score(features, shuffled(labels))
    assert np.isfinite(good) and np.isfinite(bad)
    assert good > bad


def test_transrate_flabel_ranks_informative_embeddings_higher():
    features, labels = blobs()
    embeddings = flabels_of(labels)
    good = transrate_flabel(features, embeddings)
    bad = transrate_flabel(features[np.random.default_rng(5).permutation(len(labels))], embeddings)
    assert good > bad


def test_leep_and_nce_rank_an_informative_source_higher():
    _, labels = blobs()
    probs = source_probs_of(labels)
    assert leep(probs, labels) > leep(probs, shuffled(labels))
    hard = probs.argmax(axis=1)
    assert nce(hard, labels) > nce(hard, shuffled(labels))


def test_leep_and_nce_are_nonpositive_and_zero_for_a_perfect_source():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=200)
    probs = rng.dirichlet(np.ones(7), size=200)
    assert leep(probs, labels) < 0
    assert nce(probs.argmax(axis=1), labels) < 0
    # Perfect source: source classes 0..7, class z maps to target z // 2 (many-to-one).
    source = 2 * labels + rng.integers(0, 2, size=200)
    one_hot = np.eye(8)[source]
    assert leep(one_hot, labels) == pytest.approx(0.0, abs=1e-12)
    assert nce(source, labels) == pytest.approx(0.0, abs=1e-12)
    # NCE with a single source class is -H(Y).
    p = np.bincount(labels) / len(labels)
    assert nce(np.zeros(200, int), labels) == pytest.approx(np.sum(p * np.log(p)), rel=1e-12)


def test_gbc_is_nonpositive_and_tends_to_zero_as_classes_separate():
    values = [gbc(*blobs(separation=s, seed=4)) for s in (0.0, 1.0, 3.0, 10.0, 60.0)]
    assert all(v <= 0 for v in values)
    assert values == sorted(values)  # monotone in the separation
    assert values[0] < -0.5 * 3 * 2  # overlapping classes: BC close to 1 for all 6 pairs
    assert values[-1] > -1e-12


def test_hscore_is_bounded_by_c_minus_one_and_reaches_it_for_point_classes():
    features, labels = blobs(n_classes=4, dim=6)
    assert 0 < hscore(features, labels) < 3
    # Features that are functions of the class only: cov(f) = cov(E[f|y]) on its range.
    points = np.random.default_rng(0).normal(size=(4, 6))[labels]
    assert hscore(points, labels) == pytest.approx(3.0, rel=1e-8)  # via the pseudo-inverse
    # D >= N - 1: every model saturates at C - 1, which the plain H-score warns about.
    noise = np.random.default_rng(1).normal(size=(20, 30))
    with pytest.warns(HighDimensionWarning, match="shrinkage"):
        assert hscore(noise, np.arange(20) % 4) == pytest.approx(3.0, rel=1e-8)
    assert hscore(noise, np.arange(20) % 4, shrinkage="ledoit-wolf") < 3.0


def test_sfda_and_parc_ranges():
    features, labels = blobs(separation=8.0)
    assert 0.9 < sfda(features, labels) < 1.0
    assert -1.0 <= parc(features, shuffled(labels)) <= parc(features, labels) <= 1.0


# ------------------------------------------------ determinism, invariance, no mutation


def _all_calls():
    """(name, callable(first, second), first, second) for every selector, small data."""
    features, labels = blobs()
    calls = [(name, fn, features, labels) for name, fn in FEATURE_SELECTORS.items()]
    calls.append(("parc_subset", partial(parc, max_samples=50), features, labels))
    calls.append(("leep", leep, source_probs_of(labels), labels))
    calls.append(("nce", nce, source_probs_of(labels).argmax(axis=1), labels))
    calls.append(("transrate_flabel", transrate_flabel, features, flabels_of(labels)))
    calls.append(
        (
            "transrate_flabel_subset",
            partial(transrate_flabel, max_dims=3),
            features,
            flabels_of(labels),
        )
    )
    calls.append(
        (
            "pactran_dirichlet_probs",
            partial(pactran, prior="dirichlet", probabilities=True),
            source_probs_of(labels),
            labels,
        )
    )
    calls.append(
        (
            "pactran_gamma_probs",
            partial(pactran, prior="gamma", probabilities=True),
            source_probs_of(labels),
            labels,
        )
    )
    return calls


ALL_CALLS = _all_calls()
CALL_IDS = [call[0] for call in ALL_CALLS]


@pytest.mark.parametrize(("name", "fn", "first", "second"), ALL_CALLS, ids=CALL_IDS)
def test_deterministic_order_invariant_and_inputs_untouched(name, fn, first, second):
    first_copy, second_copy = first.copy(), second.copy()
    first_ro, second_ro = first.copy(), second.copy()
    first_ro.flags.writeable = False  # any in-place write would raise
    second_ro.flags.writeable = False
    value = fn(first_ro, second_ro)
    assert isinstance(value, float) and np.isfinite(value)
    np.testing.assert_array_equal(first, first_copy)
    np.testing.assert_array_equal(second, second_copy)
    assert fn(first, second) == value  # same inputs, same seed: same number
    perm = np.random.default_rng(11).permutation(len(second))
    permuted = fn(first[perm], second[perm])
    if name in RANDOMISED or name.startswith("parc"):
        # randomised steps run on canonically ordered rows: identical up to summation order
        assert permuted == pytest.approx(value, rel=1e-9, abs=1e-12)
    else:
        assert permuted == pytest.approx(value, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("name", sorted(RANDOMISED))
def test_the_seed_is_what_makes_randomised_selectors_vary(name):
    features, labels = blobs(n_per_class=40)
    fn = RANDOMISED[name]
    assert fn(features, labels, seed=3) == fn(features, labels, seed=3)
    values = {fn(features, labels, seed=s) for s in range(4)}
    assert len(values) > 1


def test_float32_int_and_list_inputs_agree_with_float64():
    features, labels = blobs()
    for fn in (hscore, transrate, sfda, gbc, parc):
        reference = fn(features, labels)
        assert fn(features.astype(np.float32), labels) == pytest.approx(reference, rel=1e-4)
        assert fn(features.tolist(), labels.tolist()) == pytest.approx(reference, rel=1e-12)
        assert fn(features, labels + 10) == pytest.approx(reference, rel=1e-12)  # any ids


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", sorted(FEATURE_SELECTORS))
def test_bad_feature_input_raises_input_error(name):
    fn = FEATURE_SELECTORS[name]
    features, labels = blobs()
    nan = features.copy()
    nan[3, 2] = np.nan
    with pytest.raises(InputError, match="features.*NaN"):
        fn(nan, labels)
    inf = features.copy()
    inf[0, 0] = np.inf
    with pytest.raises(InputError, match="inf"):
        fn(inf, labels)
    with pytest.raises(InputError, match="distinct class"):
        fn(features, np.zeros(len(labels), int))
    with pytest.raises(InputError, match="labels has .* entries"):
        fn(features, labels[:-1])
    with pytest.raises(InputError, match="2-D"):
        fn(features[:, 0], labels)
    with pytest.raises(InputError, match="non-integer"):
        fn(features, labels + 0.5)


@pytest.mark.parametrize("fn", [gbc, sfda], ids=["gbc", "sfda"])
def test_too_few_samples_per_class_for_a_covariance(fn):
    features, labels = blobs()
    labels = labels.copy()
    labels[0] = 7  # a class with one sample
    with pytest.raises(InputError, match="at least 2 samples per class"):
        fn(features, labels)


def test_selector_specific_input_errors():
    features, labels = blobs()
    probs = source_probs_of(labels)
    with pytest.raises(InputError, match="sum to 1"):
        leep(probs * 1.1, labels)
    with pytest.raises(InputError, match="negative"):
        leep(probs - 0.5 * probs.max(), labels)
    with pytest.raises(InputError, match="source_probs has .* rows|labels has .* entries"):
        leep(probs[:-1], labels)
    with pytest.raises(InputError, match="hard source-class ids"):
        nce(probs, labels)
    with pytest.raises(InputError, match="labels has .* entries"):
        nce(probs.argmax(axis=1)[:-1], labels)
    with pytest.raises(InputError, match="components"):
        nleep(features[:20], labels[:20], n_components_per_class=10)
    with pytest.raises(InputError, match="covariance_type"):
        nleep(features, labels, covariance_type="banana")
    with pytest.raises(InputError, match="shrinkage"):
        hscore(features, labels, shrinkage=1.5)
    with pytest.raises(InputError, match="shrinkage"):
        hscore(features, labels, shrinkage="oas")
    with pytest.raises(InputError, match="constant"):
        hscore(np.ones_like(features), labels)
    with pytest.raises(InputError, match="eps"):
        transrate(features, labels, eps=0.0)
    with pytest.raises(InputError, match="class_weighting"):
        transrate(features, labels, class_weighting="median")
    with pytest.raises(InputError, match="prior"):
        pactran(features, labels, prior="laplace")
    with pytest.raises(InputError, match="sum to 1"):
        pactran(np.abs(features), labels, prior="dirichlet", probabilities=True)
    with pytest.raises(InputError, match="Dirichlet and Gamma"):
        pactran(features, labels, prior="gaussian", probabilities=True)
    with pytest.raises(InputError, match="dimension"):
        parc(features[:, :1], labels)
    with pytest.raises(InputError, match="no within-class variance"):
        sfda(np.eye(3)[labels], labels)


def test_transrate_flabel_input_errors():
    features, labels = blobs()
    embeddings = flabels_of(labels)
    with pytest.raises(InputError, match="rows"):
        transrate_flabel(features, embeddings[:-1])
    bad = embeddings.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        transrate_flabel(features, bad)
    with pytest.raises(InputError, match="n_bins"):
        transrate_flabel(features, embeddings, n_bins=1)
    with pytest.raises(InputError, match="same for every sample"):
        transrate_flabel(features, np.ones((len(labels), 3)))
    with pytest.raises(InputError, match=r"\(N, L, K\)"):
        transrate_flabel(features, embeddings[..., None])


# ------------------------------------------------------------------------- registry


def test_registry_lists_every_selector_with_a_valid_spec():
    # every baseline function is registered (the registry is the one list of names)
    import emms.selectors.baselines as baselines

    registered = {getattr(spec.function, "func", spec.function) for spec in SELECTORS.values()}
    for name in baselines.__all__:
        assert getattr(baselines, name) in registered, f"{name} is not in SELECTORS"
    assert {"logme", "logme_flabel", "emms", "emms_paper", "emms_released", "emms_evidence"} <= set(
        SELECTORS
    )
    assert len({spec.label for spec in SELECTORS.values()}) == len(SELECTORS)
    for name, spec in SELECTORS.items():
        assert isinstance(spec, SelectorSpec) and spec.name == name
        assert spec.needs in NEEDS
        assert spec.label and spec.reference and callable(spec.function)
        assert set(spec.label_formats) <= set(LABEL_FORMATS)
        with pytest.raises(AttributeError):  # frozen
            spec.name = "other"
    assert SELECTORS["leep"].needs == SOURCE_PROBS_LABELS
    assert SELECTORS["nce"].needs == SOURCE_LABELS_LABELS
    flabel = {s.name for s in selectors_for(needs=FEATURES_LABEL_EMBEDDINGS)}
    assert {"transrate_flabel", "logme_flabel", "emms", "emms_paper"} <= flabel
    assert "logme" not in flabel and "leep" not in flabel
    assert {s.name for s in selectors_for(label_format="box")} == flabel
    with pytest.raises(ValueError):
        SelectorSpec("x", leep, "features", "X", "ref", ("class",))
    with pytest.raises(ValueError):
        selectors_for(label_format="audio")


def test_registry_entries_score_through_the_spec():
    features, labels = blobs()
    probs = source_probs_of(labels)
    inputs = {
        FEATURES_LABELS: (features, labels),
        SOURCE_PROBS_LABELS: (probs, labels),
        SOURCE_LABELS_LABELS: (probs.argmax(axis=1), labels),
        FEATURES_LABEL_EMBEDDINGS: (features, flabels_of(labels)),
    }
    external = {"logme", "logme_flabel", "emms"}
    for name, spec in SELECTORS.items():
        if name in external:
            continue
        value = spec(*inputs[spec.needs])
        assert isinstance(value, float) and np.isfinite(value)
    assert SELECTORS["hscore_reg"](features, labels) == hscore(
        features, labels, shrinkage="ledoit-wolf"
    )
    assert SELECTORS["pactran_gamma"](features, labels) == pactran(features, labels, prior="gamma")


def test_registry_entries_of_logme_and_emms():
    features, labels = blobs()
    embeddings = flabels_of(labels)
    from emms.selectors.emms_selector import emms
    from emms.selectors.logme import logme, logme_flabel

    assert SELECTORS["logme"](features, labels) == logme(features, labels)
    assert SELECTORS["logme_flabel"](features, embeddings) == logme_flabel(features, embeddings)
    assert SELECTORS["emms"](features, embeddings) == emms(features, embeddings).score
    bad = SELECTORS["emms"](features[shuffled(np.arange(len(labels)))], embeddings)
    assert SELECTORS["emms"](features, embeddings) > bad
