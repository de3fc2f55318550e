"""The five experiments side by side: ``notebooks/summary.ipynb`` -> ``reports/summary.html``.

Each task's report writes ``reports/metrics/TASK.json`` (its taus with 95 % bootstrap
intervals, the paired EMMS differences summarised across targets, the truth's
reliability, the headline gain, and, as provenance, the wall-clock speed-up). This module
reads those files only, never the caches, and puts them beside the paper's headline table
(``data/reference/headline.csv``: its relative gain of EMMS over LogME fed with the same
F-labels, and its speed-up over it, for the five experiments of §4.1-4.5). A task that is
declared but not built yet appears as such, so the table always has the paper's five rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from emms.params import load_params
from emms.paths import TaskPaths
from emms.selectors.registry import SELECTORS
from emms.tasks import TASKS, get_task

from . import plotting
from .session import REFERENCE, ReportOutputs, _section, show

__all__ = ["SummarySession"]

#: the comparisons each task report pairs on the same bootstrap resamples (metrics "paired")
PAIRS = {
    "emms - logme_flabel": "EMMS − LogME (F-label)",
    "emms_evidence - logme_flabel": "EMMS (evidence) − LogME (F-label)",
    "emms_evidence - emms": "EMMS (evidence) − EMMS",
}


def _label(method: str) -> str:
    return SELECTORS[method].label if method in SELECTORS else method


def _interval(value: float, low: float, high: float) -> str:
    if not np.isfinite(low):
        return f"{value:+.3f}"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


class SummarySession(ReportOutputs):
    """The cross-task summary, written to ``output_dir`` (``figures/``, ``tables/``)."""

    def __init__(self, output_dir: str | Path, root: str | Path = "."):
        self.caught: list[dict] = []
        self.root = Path(root)
        self.out = Path(output_dir)
        self.tasks = list(load_params(self.root / "params.yaml").tasks)
        self.metrics = {}
        for task in self.tasks:
            path = TaskPaths(task, self.root).metrics
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; run `dvc repro report@{task}`.")
            self.metrics[task] = json.loads(path.read_text())
        self.reference = pd.read_csv(self.root / REFERENCE / "headline.csv").set_index("task")

    # --- sections -------------------------------------------------------------------------
    @_section
    def headline(self) -> None:
        """The paper's five headline rows beside this run's, task by task."""
        rows = []
        built = {get_task(t).headline_task: t for t in self.tasks}
        for name in TASKS:
            task = get_task(name)
            paper = self.reference.loc[task.headline_task]
            ours = self.metrics.get(built.get(task.headline_task, ""), {})
            speed = ours.get("wallclock", {}).get("speed-up over LogME (F-label)", {})
            gain = ours.get("headline", {}).get("gain in mean weighted tau over LogME (F-label), %")
            rows.append(
                {
                    "experiment": f"{name} ({task.paper_section})",
                    "paper: gain over LogME (F-label), %": paper["gain_over_logme_flabel_percent"],
                    "paper: speed-up, x": paper["speedup_over_logme_flabel"],
                    "embedded: gain, %": gain if gain is not None else np.nan,
                    "embedded: mean tau, EMMS / LogME (F-label)": _mean_taus(ours),
                    "embedded: speed-up, x": speed.get("speedup", np.nan),
                    "speed-up 95 % interval": (
                        f"[{speed['low']:.1f}, {speed['high']:.1f}]" if speed else "–"
                    ),
                    "embedded targets": ", ".join(_targets(ours)) or "not built yet",
                }
            )
        table = pd.DataFrame(rows)
        self.save_table(table, "headline")
        show(
            (table, "{:.2f}"),
            "A gain is left blank (–) where the experiment is not built, or where LogME "
            "(F-label)'s mean tau is not above zero: a percentage of a baseline that ranks "
            "no better than chance means nothing the paper's percentages mean; the mean "
            "taus beside it say what happened.",
        )

    @_section
    def taus(self) -> None:
        """Weighted tau of every selector on every target, with its 95 % interval."""
        rows = []
        for task in self.tasks:
            metrics = self.metrics[task]
            for target in _targets(metrics):
                for method, values in metrics[target].items():
                    low, high = metrics["intervals"][target][method]["weighted_tau"]
                    rows.append(
                        {
                            "task": task,
                            "target": target,
                            "method": method,
                            "selector": _label(method),
                            "weighted_tau": values["weighted_tau"],
                            "low": low if low is not None else np.nan,
                            "high": high if high is not None else np.nan,
                        }
                    )
        self.tau = pd.DataFrame(rows)
        self.save_table(self.tau, "weighted_tau")
        wide = self.tau.assign(
            cell=[_interval(r.weighted_tau, r.low, r.high) for r in self.tau.itertuples()],
            column=self.tau.task + " · " + self.tau.target,
        ).pivot(index="selector", columns="column", values="cell")
        mean = self.tau.groupby("selector")["weighted_tau"].mean().sort_values(ascending=False)
        wide = wide.loc[mean.index].reset_index()
        wide.insert(1, "mean over targets", mean.to_numpy())
        figure = self.save_figure(plotting.plot_tau_heatmap(self.tau), "weighted_tau")
        show(figure, (wide, "{:+.3f}"))

    @_section
    def paired(self) -> None:
        """EMMS against LogME (F-label), and the evidence variant against both, across the
        targets of each task: wins, clear wins (interval above 0) and the mean difference
        with its 95 % interval (paired bootstrap: the same resamples for both taus)."""
        rows = [
            {"task": task, "comparison": label, **wins}
            for task in self.tasks
            for key, label in PAIRS.items()
            if (wins := self.metrics[task].get("paired", {}).get(key)) is not None
        ]
        columns = ["task", "comparison", "wins", "clear_wins", "clear_losses", "targets"]
        self.paired_table = pd.DataFrame(rows, columns=[*columns, "mean", "low", "high"])
        self.save_table(self.paired_table, "paired")
        if self.paired_table.empty:  # zoos under MIN_MODELS_FOR_SPREAD have no intervals
            show("No task has a paired comparison with an interval (zoos of 5+ models).")
            return
        shown = pd.DataFrame(
            {
                "task": self.paired_table.task,
                "comparison": self.paired_table.comparison,
                "wins (clearly)": [
                    f"{r.wins} of {r.targets} ({r.clear_wins})" for r in self.paired_table.itertuples()
                ],
                "clear losses": self.paired_table.clear_losses,
                "mean difference [95 %]": [
                    _interval(r.mean, r.low, r.high) for r in self.paired_table.itertuples()
                ],
            }
        )
        show(shown)

    @_section
    def truth_quality(self) -> None:
        """How far each task's truth can be trusted: the zoo's range over its seed noise
        and the split-seed reliability, the ceiling any selector's tau can reach."""
        rows = [
            {
                "task": task,
                "target": target,
                "range / mean seed std": self.metrics[task]["_truth_range_over_seed_std"][target],
                "split-seed reliability": self.metrics[task]["_truth_split_seed_reliability"][
                    target
                ],
                "models": len(self.metrics[task]["truth"][target]),
            }
            for task in self.tasks
            for target in _targets(self.metrics[task])
        ]
        table = pd.DataFrame(rows)
        self.save_table(table, "truth_quality")
        show((table, "{:.3f}"))

    @_section
    def discussion(self) -> None:
        """One sentence per task and comparison, generated from where the paired interval
        of the mean difference lies."""
        lines = []
        for r in self.paired_table.itertuples():
            verdict = (
                "clearly positive"
                if r.low > 0
                else "clearly negative"
                if r.high < 0
                else "not distinguishable from zero"
            )
            lines.append(
                f"* **{r.task}**: {r.comparison} wins {r.wins} of {r.targets} targets "
                f"({r.clear_wins} clearly, {r.clear_losses} clear losses); the mean difference "
                f"in weighted tau is {_interval(r.mean, r.low, r.high)}, {verdict}."
            )
        show("\n".join(lines) or "No paired comparison in the task reports.")


def _mean_taus(metrics: dict) -> str:
    """``"+0.674 / +0.772"``: EMMS's and LogME (F-label)'s weighted tau, mean over targets."""
    targets = _targets(metrics)
    if not targets:
        return "–"
    means = [np.mean([metrics[t][m]["weighted_tau"] for t in targets]) for m in ("emms", "logme_flabel")]
    return f"{means[0]:+.3f} / {means[1]:+.3f}"


def _targets(metrics: dict) -> list[str]:
    """The targets of a task's metrics JSON (its per-target keys)."""
    return [k for k in metrics.get("truth", {})]
