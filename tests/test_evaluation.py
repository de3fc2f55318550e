"""The ranking metrics and their bootstrap uncertainty."""

import numpy as np
import pytest
import scipy.stats

import emms
from emms import InputError
from emms.evaluation import (
    PairedDifference,
    align_scores_and_truth,
    evaluate_ranking,
    paired_tau_difference,
    rel_at_k,
    summarise_wins,
)


def test_weighted_tau_is_scipys_with_defaults_and_bounded():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=11)
    scores = truth + rng.normal(size=11)
    assert emms.weighted_tau(scores, truth) == scipy.stats.weightedtau(scores, truth).statistic
    assert emms.weighted_tau(truth * 3 + 1, truth) == pytest.approx(1.0)
    assert emms.weighted_tau(-truth, truth) == pytest.approx(-1.0)


def test_weighted_tau_punishes_errors_at_the_top_more():
    truth = np.arange(10.0)
    swap_top = truth.copy()
    swap_top[[8, 9]] = swap_top[[9, 8]]
    swap_bottom = truth.copy()
    swap_bottom[[0, 1]] = swap_bottom[[1, 0]]
    assert emms.weighted_tau(swap_top, truth) < emms.weighted_tau(swap_bottom, truth) < 1.0
    assert emms.kendall_tau(swap_top, truth) == pytest.approx(emms.kendall_tau(swap_bottom, truth))


def test_rel_at_k_by_hand():
    truth = np.array([70.0, 80.0, 90.0, 60.0])
    scores = np.array([0.9, 0.1, 0.5, 0.8])  # ranks: model0, model3, model2, model1
    assert rel_at_k(scores, truth, 1) == pytest.approx(70 / 90)
    assert rel_at_k(scores, truth, 2) == pytest.approx(70 / 90)
    assert rel_at_k(scores, truth, 3) == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=12)
    scores = truth + 0.8 * rng.normal(size=12)
    first = evaluate_ranking(scores, truth, seed=3, n_boot=300)
    again = evaluate_ranking(scores, truth, seed=3, n_boot=300)
    assert first == again
    tau = first["weighted_tau"]
    assert tau.value == pytest.approx(emms.weighted_tau(scores, truth))
    assert tau.std > 0.01
    assert tau.low < tau.value < tau.high


def test_perfect_ranking_has_no_spread_until_the_truth_is_noisy():
    truth = np.linspace(60, 90, 10)
    exact = evaluate_ranking(truth, truth, n_boot=200)["kendall_tau"]
    assert exact.value == pytest.approx(1.0)
    assert exact.std == pytest.approx(0.0, abs=1e-12)
    noisy = evaluate_ranking(truth, truth, truth_sem=np.full(10, 5.0), n_boot=200)["kendall_tau"]
    assert noisy.std > 0.02


def test_evaluation_bad_input():
    with pytest.raises(InputError, match="one score and one"):
        emms.weighted_tau([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="finite"):
        emms.weighted_tau([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(InputError, match="unknown metric"):
        evaluate_ranking([1, 2, 3], [1, 2, 3], metrics=("spearman",))


# --- issue 10: the evaluation refuses ambiguity, naming the input and the fix ----------------


def test_a_spread_on_fewer_than_five_models_is_refused():
    truth, scores = np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2])
    with pytest.raises(InputError, match="needs at least 5 models, got 3.*n_boot=None"):
        evaluate_ranking(scores, truth)
    with pytest.raises(InputError, match="needs at least 5 models, got 4"):
        evaluate_ranking([1, 2, 3, 4], [1, 3, 2, 4])


def test_n_boot_none_gives_point_values_with_an_explicit_nan_spread():
    truth, scores = np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2])
    estimate = evaluate_ranking(scores, truth, n_boot=None)["weighted_tau"]
    assert estimate.value == scipy.stats.weightedtau(scores, truth).statistic
    assert np.isnan(estimate.std) and np.isnan(estimate.low) and np.isnan(estimate.high)
    assert estimate.n_boot == 0
    assert str(estimate).endswith("± n/a")


def test_five_models_give_a_nonzero_spread():
    truth = np.arange(5.0)
    estimate = evaluate_ranking(np.array([0.0, 2, 1, 3, 4]), truth, n_boot=300)["weighted_tau"]
    assert estimate.std > 0


@pytest.mark.parametrize("n_boot", [0, -5, 2.5, True, "100"])
def test_n_boot_must_be_a_positive_int(n_boot):
    with pytest.raises(InputError, match=rf"n_boot={n_boot!r} must be an int >= 1"):
        evaluate_ranking(np.arange(6.0), np.arange(6.0) ** 2, n_boot=n_boot)


def test_weighted_tau_refuses_constant_scores():
    with pytest.raises(InputError, match="weighted_tau: scores are the same for every model"):
        emms.weighted_tau([0.0, 0.0, 0.0, 0.0], [1, 2, 3, 4])
    assert np.isnan(scipy.stats.weightedtau([0.0] * 4, [1, 2, 3, 4]).statistic)  # why


def test_weighted_tau_refuses_constant_truth():
    with pytest.raises(InputError, match="weighted_tau: truth is the same for every model"):
        emms.weighted_tau([1, 2, 3, 4], [5.0, 5.0, 5.0, 5.0])


def test_evaluate_ranking_refuses_constant_scores():
    with pytest.raises(InputError, match="scores are the same for every model.*emms_evidence"):
        evaluate_ranking(np.zeros(8), np.arange(8.0))


def test_two_dimensional_input_is_refused_not_flattened():
    with pytest.raises(InputError, match=r"scores must be 1-D.*got shape \(2, 2\)"):
        emms.weighted_tau([[1, 2], [3, 4]], [1, 2, 3, 4])
    with pytest.raises(InputError, match=r"truth must be 1-D.*got shape \(4, 1\)"):
        emms.weighted_tau([1, 2, 3, 4], np.arange(4.0)[:, None])


def test_series_are_aligned_by_model_name():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    models = [f"m{i}" for i in range(9)]
    truth = pd.Series(rng.normal(size=9), index=models)
    scores = pd.Series(truth.to_numpy() + rng.normal(size=9), index=models)
    shuffled = truth.sample(frac=1.0, random_state=0)
    assert not shuffled.index.equals(scores.index)
    expected = scipy.stats.weightedtau(scores.to_numpy(), truth.to_numpy()).statistic
    assert emms.weighted_tau(scores, shuffled) == expected
    sem = pd.Series(np.full(9, 0.1), index=models)
    reordered = sem.sample(frac=1.0, random_state=1)
    aligned = evaluate_ranking(scores, truth, truth_sem=sem, n_boot=200)
    assert evaluate_ranking(scores, shuffled, truth_sem=reordered, n_boot=200) == aligned


def test_series_with_different_models_are_refused():
    pd = pytest.importorskip("pandas")
    scores = pd.Series([0.1, 0.2, 0.3], index=["a", "b", "c"])
    truth = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "d"])
    with pytest.raises(InputError, match=r"truth lacks \['c'\] and has \['d'\]"):
        emms.weighted_tau(scores, truth)


def test_a_plain_array_beside_reordered_series_is_refused():
    pd = pytest.importorskip("pandas")
    scores = pd.Series([0.1, 0.2, 0.3, 0.4, 0.5], index=list("abcde"))
    truth = pd.Series([1.0, 2, 3, 4, 5], index=list("edcba"))
    with pytest.raises(InputError, match=r"\['truth_sem'\] are plain arrays whose order"):
        evaluate_ranking(scores, truth, truth_sem=np.full(5, 0.1))


def test_truth_sem_must_be_finite_and_non_negative():
    with pytest.raises(InputError, match="truth_sem must be finite and >= 0"):
        evaluate_ranking(np.arange(6.0), np.arange(6.0), truth_sem=[0.1, -1, 0, 0, 0, 0])


def test_align_scores_and_truth_refuses_a_truth_missing_a_scored_model():
    pd = pytest.importorskip("pandas")
    scores = pd.Series([0.1, 0.2, 0.3], index=["resnet", "vit", "mixer"])
    truth = pd.Series([70.0, 80.0], index=["vit", "resnet"])
    with pytest.raises(InputError, match=r"truth does not cover every scored model: \['mixer'\]"):
        align_scores_and_truth(scores, truth)


def test_align_scores_and_truth_refuses_unscored_models_and_duplicates():
    pd = pytest.importorskip("pandas")
    truth = pd.Series([70.0, 80.0, 90.0], index=["resnet", "vit", "mixer"])
    with pytest.raises(InputError, match=r"scores lack the model\(s\) \['mixer'\]"):
        align_scores_and_truth(pd.Series([0.1, 0.2], index=["vit", "resnet"]), truth)
    with pytest.raises(InputError, match=r"scores lists the model\(s\) \['vit'\] more than once"):
        align_scores_and_truth(pd.Series([0.1, 0.2], index=["vit", "vit"]), truth)
    with pytest.raises(InputError, match="truth must be a pandas Series"):
        align_scores_and_truth(pd.Series([0.1], index=["vit"]), [1.0])


def test_align_scores_and_truth_orders_by_the_scores():
    pd = pytest.importorskip("pandas")
    scores = pd.Series([0.3, 0.1, 0.2], index=["c", "a", "b"])
    truth = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"])
    sem = pd.Series([0.01, 0.02, 0.03], index=["a", "b", "c"])
    s, t, e = align_scores_and_truth(scores, truth, sem)
    assert list(t.index) == ["c", "a", "b"] and list(t) == [3.0, 1.0, 2.0]
    assert list(e) == [0.03, 0.01, 0.02] and s is scores


# --- issue 15: paired comparisons of two selectors --------------------------------------------


def test_identical_selectors_differ_by_exactly_zero():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=12)
    scores = truth + rng.normal(size=12)
    diff = paired_tau_difference(scores, scores.copy(), truth, truth_sem=np.full(12, 0.5))
    assert diff.value == 0.0
    assert (diff.std, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert diff.n_boot > 900 and (diff.samples == 0).all()


def test_a_perfect_selector_beats_a_random_one_on_a_large_zoo():
    rng = np.random.default_rng(5)
    truth = rng.normal(size=40)
    perfect, random = np.exp(truth), rng.normal(size=40)
    diff = paired_tau_difference(perfect, random, truth, truth_sem=np.full(40, 0.05), n_boot=500)
    assert diff.value_a == pytest.approx(1.0)
    assert diff.value == pytest.approx(1.0 - scipy.stats.weightedtau(random, truth).statistic)
    assert diff.value > 0.5 and diff.low > 0
    assert diff.low <= diff.value <= diff.high


def test_paired_difference_is_seeded():
    rng = np.random.default_rng(6)
    truth = rng.normal(size=10)
    a, b = truth + rng.normal(size=10), truth + 2 * rng.normal(size=10)
    first = paired_tau_difference(a, b, truth, truth_sem=np.full(10, 0.3), n_boot=200, seed=7)
    again = paired_tau_difference(a, b, truth, truth_sem=np.full(10, 0.3), n_boot=200, seed=7)
    other = paired_tau_difference(a, b, truth, truth_sem=np.full(10, 0.3), n_boot=200, seed=8)
    assert first == again
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)


def test_the_pairing_is_real():
    # B is A with the two worst models swapped: on any resample the two taus move together,
    # so the paired spread is far below the two spreads combined as if independent
    rng = np.random.default_rng(8)
    truth = np.sort(rng.normal(size=15))
    a = truth + 0.3 * rng.normal(size=15)
    b = a.copy()
    worst = np.argsort(a)[:2]
    b[worst] = b[worst[::-1]]
    sem = np.full(15, 0.2)
    paired = paired_tau_difference(a, b, truth, truth_sem=sem, n_boot=400, seed=1)
    spread_a = evaluate_ranking(a, truth, truth_sem=sem, n_boot=400, seed=2)["weighted_tau"].std
    spread_b = evaluate_ranking(b, truth, truth_sem=sem, n_boot=400, seed=3)["weighted_tau"].std
    assert paired.std < 0.5 * np.hypot(spread_a, spread_b)


def test_paired_difference_refuses_small_zoos_and_bad_n_boot():
    with pytest.raises(InputError, match="needs at least 5 models, got 4"):
        paired_tau_difference([1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4])
    with pytest.raises(InputError, match="n_boot=0 must be an int >= 1"):
        paired_tau_difference(np.arange(6.0), np.arange(6.0), np.arange(6.0), n_boot=0)
    with pytest.raises(InputError, match="scores_b.*scores are the same for every model"):
        paired_tau_difference(np.arange(6.0), np.zeros(6), np.arange(6.0))


def _difference(mu, sd, rng, n=4000):
    samples = rng.normal(mu, sd, size=n)
    low, high = np.percentile(samples, [2.5, 97.5])
    return PairedDifference(mu, sd, low, high, n, mu, 0.0, samples)


def test_summarise_wins_counts_and_brackets_the_mean():
    rng = np.random.default_rng(9)
    mus, sds = [0.1, -0.2, 0.0, 0.3], [0.02, 0.3, 0.1, 0.05]
    pairs = enumerate(zip(mus, sds, strict=True))
    differences = {f"t{i}": _difference(mu, sd, rng) for i, (mu, sd) in pairs}
    summary = summarise_wins(differences, names=("EMMS (evidence)", "EMMS"), n_draw=20000)
    assert (summary.wins, summary.losses, summary.ties, summary.n_targets) == (2, 1, 1, 4)
    assert (summary.clear_wins, summary.clear_losses) == (2, 0)
    assert summary.mean == pytest.approx(np.mean(mus))
    # independent samples: the mean has sd sqrt(sum sd^2) / n, a normal interval
    half_width = 1.96 * np.sqrt(np.sum(np.square(sds))) / len(sds)
    assert summary.low == pytest.approx(np.mean(mus) - half_width, abs=0.01)
    assert summary.high == pytest.approx(np.mean(mus) + half_width, abs=0.01)
    assert str(summary).startswith("EMMS (evidence) beats EMMS on 2 of 4 targets (2 clearly")


def test_summarise_wins_of_a_perfect_selector_excludes_zero():
    rng = np.random.default_rng(10)
    differences = []
    for _ in range(3):
        truth = rng.normal(size=30)
        differences.append(
            paired_tau_difference(truth, rng.normal(size=30), truth, n_boot=300, seed=1)
        )
    summary = summarise_wins(differences)
    assert summary.wins == 3 and summary.low > 0
    with pytest.raises(InputError, match="differences is empty"):
        summarise_wins([])


def test_relative_gain_is_the_papers_ratio_and_undefined_over_a_chance_baseline():
    from emms.evaluation import relative_gain

    assert relative_gain(0.545, 0.5) == pytest.approx(0.09)  # the paper's +9.0 % shape
    assert relative_gain(0.3, 0.4) == pytest.approx(-0.25)
    for baseline in (0.0, -0.14, -1.0):  # text QA's LogME (F-label) ranked below chance
        assert np.isnan(relative_gain(0.1, baseline))
