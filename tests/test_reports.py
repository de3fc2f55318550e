"""The report module: what a reviewer reads (HTML without noise, figures embedded, no
machine paths, no truncation), and the numbers behind the timing and discussion text."""

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from emms.reports import discussion, experiment, plotting
from emms.reports.check import html_problems, report_problems

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
PNG = "data:image/png;base64,iVBORw0KGgo="
CLEAN = f"""<html><head><style>.x{{}}</style></head><body>
<div class="jp-OutputArea-output" data-mime-type="text/html"><table>
<tr><th>selector</th><th>digits10</th></tr><tr><td>EMMS (exact)</td><td>+0.848</td></tr>
</table></div><img src="{PNG}"></body></html>"""


# --- the HTML check ---------------------------------------------------------------------
def test_clean_html_has_no_problem():
    assert html_problems(CLEAN, n_figures=1) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ('data-mime-type="text/html"', 'data-mime-type="application/vnd.jupyter.stderr"'),
            "stderr",
        ),
        ((PNG, "figures/recognition/truth.png"), "without embedded data"),
        (("+0.848", "[PosixPath('reports/x.png')]"), "printed as text"),
        (("EMMS (exact)", "/work/main/.venv/lib/python3.11/x.py:3: UserWarning"), "path"),
        (("EMMS (exact)", "see /tmp/staging"), "path"),
        (("EMMS (exact)", "all-MiniLM-L6-v2 sentence encoder (pre-trained..."), "truncated"),
    ],
)
def test_each_kind_of_noise_is_found(change, problem):
    html = CLEAN.replace(*change)
    assert html != CLEAN
    found = html_problems(html, n_figures=1)
    assert any(problem in p for p in found), found


def test_missing_figures_are_counted():
    assert any("1 embedded image(s) for 3" in p for p in html_problems(CLEAN, n_figures=3))


def test_image_data_is_not_searched_for_paths():
    # base64 can spell "/tmp/" by chance; only what a reader sees counts
    html = CLEAN.replace(PNG, "data:image/png;base64,AAAA/tmp/BBBB/work/CC==")
    assert html_problems(html, n_figures=1) == []


@pytest.mark.parametrize("html", sorted(REPORTS.glob("*.html")), ids=lambda p: p.name)
def test_committed_reports_read_cleanly(html):
    # every table shown through emms.reports.session carries this class
    assert "emms-table-" in html.read_text(encoding="utf-8"), (
        f"{html.name} predates emms.reports' layout; regenerate it with "
        f"`python -m emms report --task {html.stem}`"
    )
    assert report_problems(REPORTS, html.stem) == []


# --- warnings, timings --------------------------------------------------------------------
def test_warning_rows_name_where_and_drop_machine_paths():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn(
            "read /work/main/.venv/lib/x.py failed\nsecond line", UserWarning, stacklevel=1
        )
    row = experiment.warning_row(caught[0], dataset="d", model="m", selector="s")
    assert row["warning"] == "UserWarning"
    assert (row["dataset"], row["model"], row["selector"]) == ("d", "m", "s")
    assert "/work/" not in row["message"] and ".venv" not in row["message"]
    assert row["message"].endswith("x.py failed")
    assert "second line" not in row["message"]


def _timings(slow, fast, repeats=5, outlier=None):
    rows = []
    for call, (a, b) in enumerate(zip(slow, fast, strict=True)):
        for repeat in range(repeats):
            spike = outlier if (outlier and repeat == 0) else 1.0
            rows += [
                {
                    "dataset": "t",
                    "model": f"m{call}",
                    "method": "logme_flabel",
                    "repeat": repeat,
                    "seconds": a * spike,
                },
                {
                    "dataset": "t",
                    "model": f"m{call}",
                    "method": "emms",
                    "repeat": repeat,
                    "seconds": b,
                },
            ]
    return pd.DataFrame(rows)


def test_speedup_is_the_ratio_of_summed_medians_and_ignores_a_slow_spell():
    slow, fast = [1.0, 2.0, 3.0, 4.0, 6.0], [0.1, 0.1, 0.2, 0.2, 0.4]
    speed = experiment.speedup(_timings(slow, fast, outlier=50.0))
    assert speed["speedup"] == pytest.approx(sum(slow) / sum(fast))
    assert speed["low"] <= speed["speedup"] <= speed["high"]
    assert speed["low"] < speed["high"]
    assert speed["calls"] == 5 and speed["repeats"] == 5


def test_speedup_interval_collapses_when_every_call_has_the_same_ratio():
    speed = experiment.speedup(_timings([1.0, 2.0, 4.0], [0.5, 1.0, 2.0]))
    assert speed["low"] == pytest.approx(2.0) and speed["high"] == pytest.approx(2.0)


# --- the paper's tables, the discussion -----------------------------------------------
def test_paper_scale_spread_of_the_published_cnn_table():
    table = pd.read_csv(ROOT / "data" / "reference" / "finetune_cnn_classification.csv")
    spread = experiment.paper_scale_spread(table).set_index("dataset")
    values = table.set_index("dataset")
    for dataset, row in spread.iterrows():
        assert row["range"] == pytest.approx(values.loc[dataset].max() - values.loc[dataset].min())
        assert row["best"] == values.loc[dataset].idxmax()
        assert 0 <= row["gap best - 2nd"] <= row["range"]


@pytest.mark.parametrize(
    ("low", "high", "word"),
    [(0.1, 0.3, "clearly better"), (-0.3, -0.1, "clearly worse"), (-0.1, 0.2, "not dist")],
)
def test_verdict_follows_the_interval(low, high, word):
    assert discussion.verdict(low, high).startswith(word)


def test_references_cover_every_cited_selector_and_the_tau():
    keys = set(discussion.references()["key"])
    assert {
        "emms",
        "logme",
        "leep",
        "nce",
        "nleep",
        "hscore",
        "transrate",
        "sfda",
        "gbc",
        "pactran",
        "parc",
        "kendall",
        "weightedtau",
    } <= keys


def _toy_run(seed=0):
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(8)]
    truth = pd.DataFrame(
        [
            {"dataset": d, "model": m, "mean": 0.5 + 0.05 * i + 0.01 * rng.normal(), "sem": 0.01}
            for d in ("a", "b")
            for i, m in enumerate(models)
        ]
    )
    scores = []
    for d in ("a", "b"):
        for i, m in enumerate(models):
            scores += [
                {
                    "dataset": d,
                    "model": m,
                    "method": "emms",
                    "label": "EMMS (exact)",
                    "score": i + 0.1 * rng.normal(),
                },
                {
                    "dataset": d,
                    "model": m,
                    "method": "logme_flabel",
                    "label": "LogME (F-label)",
                    "score": rng.normal(),
                },
            ]
    return pd.DataFrame(scores), truth


def test_paired_differences_judge_a_selector_that_tracks_the_truth():
    scores, truth = _toy_run()
    table, wins = experiment.paired_differences(scores, truth, n_boot=200)
    assert list(table.dataset) == ["a", "b"] and set(table.label) == {"LogME (F-label)"}
    assert (table.low <= table.difference).all() and (table.difference <= table.high).all()
    assert wins["logme_flabel"].wins == 2 and wins["logme_flabel"].low > 0


def test_discussion_numbers_come_from_the_tables():
    scores, truth = _toy_run()
    evaluation = experiment.evaluate_methods(scores, truth, n_boot=100)
    paired, wins = experiment.paired_differences(scores, truth, n_boot=100)
    dims = pd.DataFrame(
        [
            {"dataset": d, "model": m, "N": 20, "D": 30 if m == "m0" and d == "b" else 8}
            for d in ("a", "b")
            for m in truth.model.unique()
        ]
    )
    dims["D >= N - 1"] = dims.D >= dims.N - 1
    spread = pd.DataFrame({"range_over_seed_std": [12.5, 3.25]}, index=["a", "b"])
    text = discussion.discussion(
        evaluation=evaluation,
        paired=paired,
        wins=wins,
        paired_evidence=pd.DataFrame(columns=["dataset"]),
        dims=dims,
        weights=pd.DataFrame(columns=["dataset", "model", "encoder", "weight"]),
        spread=spread,
        headline={"gain_run": 42.25, "gain_paper": 9.0, "speedup_paper": 5.13},
        speed={"speedup": 7.5, "low": 6.0, "high": 9.0, "calls": 16, "repeats": 5},
    )
    tau_a = evaluation.query("dataset == 'a' and metric == 'weighted_tau'").value.max()
    assert f"{tau_a:+.3f}" in text
    assert wins["logme_flabel"].text in text and "holds on this benchmark" in text
    assert "+42.2 %" in text and "7.5×" in text and "6.0–9.0×" in text
    assert "1 of 8 models have D ≥ N − 1 (m0)" in text
    assert "12.5" in text and "3.2" in text


def test_weights_figure_marks_collapsed_fits():
    weights = pd.DataFrame(
        [
            {"dataset": d, "model": m, "encoder": e, "weight": w}
            for d in ("a", "b")
            for m in ("m0", "m1")
            for e, w in (("x", 0.3), ("y", 0.7))
        ]
    )
    fig = plotting.plot_weights(weights, collapsed={("b", "m1")})
    ticks = [[t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes]
    assert ticks[0] == ["m0", "m1"] and ticks[1] == ["m0", "m1  ✗"]
    assert any("arbitrary" in t.get_text() for t in fig.texts)
    matplotlib.pyplot.close(fig)


def test_tables_are_whole_without_index_and_carry_the_layout_class():
    from emms.reports.session import _html_table

    long = "MiniLM's pre-trained word-piece embeddings, mean-pooled over the words " * 2
    frame = pd.DataFrame({"encoder": ["minilm"], "what it is": [long], "width": [384]})
    frame.columns.name = "dataset"
    html = _html_table(frame)
    assert "emms-table-" in html and long.strip() in html
    assert "<th>dataset</th>" not in html  # no stray header from the columns' name
    assert html_problems(html) == []


def test_summary_reads_gain_taus_and_paired_wins_from_every_task(tmp_path, monkeypatch):
    """The cross-task summary (reports/summary.html) from two synthetic metrics files: the
    paper's five rows, each built task's gain, mean taus and speed-up, its per-target
    taus and its paired comparisons; a task without a gain (LogME (F-label) tau <= 0)
    shows none."""
    import json
    import shutil

    import yaml

    from emms.reports import summary as summary_module
    from emms.reports.summary import SummarySession

    shown = []
    monkeypatch.setattr(summary_module, "show", lambda *items: shown.extend(items))
    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "tests" / "data" / "params-tiny.yaml").read_text())
    text = yaml.safe_load((root / "tests" / "data" / "params-tiny-textqa.yaml").read_text())
    params["tasks"].update(text["tasks"])
    params["textqa"] = text["textqa"]
    params["evaluation"]["isa_allowance"].update(text["evaluation"]["isa_allowance"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(root / "data" / "reference", tmp_path / "data" / "reference")
    wins = {"wins": 2, "clear_wins": 1, "clear_losses": 0, "targets": 2}

    def metrics(gain, taus, mean):
        out = {"intervals": {}, "truth": {}}
        for target, (emms, logme) in taus.items():
            out[target] = {
                "emms": {"weighted_tau": emms},
                "logme_flabel": {"weighted_tau": logme},
            }
            out["intervals"][target] = {
                "emms": {"weighted_tau": [emms - 0.1, emms + 0.1]},
                "logme_flabel": {"weighted_tau": [logme - 0.1, logme + 0.1]},
            }
            out["truth"][target] = {"a": {}, "b": {}}
        out["_truth_range_over_seed_std"] = dict.fromkeys(taus, 9.0)
        out["_truth_split_seed_reliability"] = dict.fromkeys(taus, 0.9)
        out["headline"] = {"gain in mean weighted tau over LogME (F-label), %": gain}
        interval = {"mean": mean, "low": mean - 0.2, "high": mean + 0.2}
        out["paired"] = {"emms - logme_flabel": {**wins, **interval}}
        speed = {"speedup": 20.0, "low": 15.0, "high": 25.0}
        out["wallclock"] = {"speed-up over LogME (F-label)": speed}
        return out

    folder = tmp_path / "reports" / "metrics"
    folder.mkdir(parents=True)
    for task, gain, taus, mean in (
        ("recognition", 12.5, {"d1": (0.9, 0.8), "d2": (0.5, 0.4)}, 0.3),
        ("textqa", None, {"s": (-0.1, -0.2)}, -0.25),
    ):
        (folder / f"{task}.json").write_text(json.dumps(metrics(gain, taus, mean)))
    summary = SummarySession(tmp_path / "out", tmp_path)
    summary.headline()
    summary.taus()
    summary.paired()
    summary.discussion()
    head = pd.read_csv(tmp_path / "out" / "tables" / "headline.csv").set_index("experiment")
    assert len(head) == 5
    assert head.loc["recognition (§4.1)", "embedded: gain, %"] == 12.5
    assert (
        head.loc["recognition (§4.1)", "embedded: mean tau, EMMS / LogME (F-label)"]
        == "+0.700 / +0.600"
    )
    assert np.isnan(head.loc["textqa (§4.4)", "embedded: gain, %"])
    assert head.loc["textqa (§4.4)", "embedded: speed-up, x"] == 20.0
    assert head.loc["vqa (§4.3)", "embedded targets"] == "not built yet"
    tau = pd.read_csv(tmp_path / "out" / "tables" / "weighted_tau.csv")
    assert len(tau) == 6 and tau.set_index(["target", "method"]).loc[("d2", "emms"), "low"] == 0.4
    paired = pd.read_csv(tmp_path / "out" / "tables" / "paired.csv").set_index("task")
    assert paired.loc["recognition", "mean"] == 0.3
    assert paired.loc["textqa", "high"] == pytest.approx(-0.05)
    text = shown[-1]  # the discussion's sentences
    assert "EMMS − LogME (F-label) wins 2 of 2 targets" in text and "clearly positive" in text
    assert "clearly negative" in text
