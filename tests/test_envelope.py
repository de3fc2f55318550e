"""The two levels of reproduction: exact metric comparison and the from-scratch envelope."""

import copy
import json
from pathlib import Path

import pytest

from emms.params import load_params
from emms.reports.envelope import check_envelope
from emms.reports.metrics import compare_metrics, flatten, max_metric_change

ROOT = Path(__file__).resolve().parents[1]


def _tree():
    return {
        "digits10": {"emms": {"weighted_tau": 0.5}, "logme_flabel": {"weighted_tau": 0.3}},
        "intervals": {
            "digits10": {
                "emms": {"weighted_tau": [0.2, 0.8]},
                "logme_flabel": {"weighted_tau": [-0.1, 0.6]},
            }
        },
        "truth": {"digits10": {"m1": {"mean": 0.90, "std": 0.01, "seeds": 3}}},
        "winners": {"digits10": "emms"},
        "headline": {"sign": "+"},
        "machine": {"cpu": "this one"},
    }


def test_identical_runs_are_inside_with_every_check_counted():
    result = check_envelope(_tree(), _tree(), isa_allowance=0.0)
    assert result.ok and not result.flags and result.checked == 3  # 1 truth + 2 taus


def test_truth_bound_is_seed_noise_plus_isa_allowance():
    fresh = _tree()
    noise = (2 * 0.01**2 / 3) ** 0.5  # both means' standard errors
    fresh["truth"]["digits10"]["m1"]["mean"] = 0.90 + 3 * noise + 0.009
    assert check_envelope(fresh, _tree(), isa_allowance=0.01).ok
    problems = check_envelope(fresh, _tree(), isa_allowance=0.0).problems
    assert len(problems) == 1 and "truth/digits10/m1" in problems[0]


def test_tau_outside_its_committed_interval_fails_and_winner_change_is_flagged():
    fresh = _tree()
    fresh["digits10"]["emms"]["weighted_tau"] = 0.1
    fresh["winners"]["digits10"] = "logme_flabel"
    result = check_envelope(fresh, _tree(), isa_allowance=0.0)
    assert [p.split(":")[0] for p in result.problems] == ["digits10/emms/weighted_tau"]
    assert result.flags == ["winners/digits10: 'logme_flabel' now, 'emms' committed"]
    fresh["digits10"]["emms"]["weighted_tau"] = 0.19  # within the slack of 0.02
    assert check_envelope(fresh, _tree(), isa_allowance=0.0).ok


def test_a_model_missing_from_the_fresh_truth_fails():
    fresh = copy.deepcopy(_tree())
    del fresh["truth"]["digits10"]["m1"]
    assert "missing" in check_envelope(fresh, _tree(), isa_allowance=1.0).problems[0]


def test_exact_comparison_ignores_the_machine_and_compares_intervals():
    other = _tree()
    other["machine"] = {"cpu": "another"}
    assert compare_metrics(other, _tree(), 1e-9) == []
    assert "intervals/digits10/emms/weighted_tau/1" in flatten(_tree())
    other["intervals"]["digits10"]["emms"]["weighted_tau"][1] = 0.81
    assert compare_metrics(other, _tree(), 1e-9) == [
        "intervals/digits10/emms/weighted_tau/1: fresh 0.81 vs committed 0.8"
    ]
    assert max_metric_change(other, _tree()) == pytest.approx(0.01)


@pytest.mark.parametrize("task", ["recognition", "textqa"])
def test_isa_allowance_covers_what_simulated_instruction_sets_did(task):
    from emms.reports.stability import isa_results

    measured = json.loads(isa_results(task, ROOT).read_text())
    allowance = load_params(ROOT / "params.yaml").evaluation.isa_allowance[task]
    assert measured["task"] == task
    assert allowance >= measured["largest_change"], (allowance, measured["largest_change"])
    committed = json.loads((ROOT / "reports" / "metrics" / f"{task}.json").read_text())
    seeds = {model["seeds"] for d in committed["truth"].values() for model in d.values()}
    assert seeds == {len(measured["seeds"])}  # measured on the committed recipe


def test_zoo_resolution_and_isa_flags_on_a_constructed_zoo(tmp_path):
    import pandas as pd

    from emms.reports.stability import isa_sensitivity, zoo_resolution

    summary = pd.DataFrame(
        {"dataset": ["d"] * 4, "model": list("abcd"), "mean": [0.1, 0.2, 0.4, 0.8]}
    )
    assert zoo_resolution(summary)["d"] == pytest.approx(0.2)  # median of 0.1, 0.2, 0.4
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    rows = [
        {"setting": "avx2", "dataset": "d", "model": "a", "change": -0.05},
        {"setting": "default", "dataset": "d", "model": "a", "change": 0.25},
        {"setting": "avx2", "dataset": "d", "model": "b", "change": 0.1},
    ]
    (results / "isa_envelope-toy.json").write_text(json.dumps({"rows": rows}))
    frame = isa_sensitivity(summary, "toy", tmp_path).set_index("model")
    assert frame.loc["a", "largest ISA change"] == pytest.approx(0.25)
    assert bool(frame.loc["a", "can reorder"]) and not bool(frame.loc["b", "can reorder"])
    assert isa_sensitivity(summary, "toy", tmp_path / "nowhere").empty
    assert isa_sensitivity(summary, "other", tmp_path).empty  # another task's measurement
