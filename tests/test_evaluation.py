"""The ranking metrics and their bootstrap uncertainty."""

import numpy as np
import pytest
import scipy.stats

import emms
from emms import InputError
from emms.evaluation import evaluate_ranking, rel_at_k


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
