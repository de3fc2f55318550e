"""The report of a paper-scale run: ``OUT/TASK-paper.md`` and, under ``OUT/TASK-paper/``,
``scores.csv``, ``tau.csv``, ``tau.md``, ``metrics.json`` and the figures of the embedded
reports drawn by the same code (:mod:`emms.reports.plotting`: weighted tau per selector
with its bootstrap interval, scores against the truth), as PNG and SVG. Every computed figure is
labelled as computed by this run; the paper's figures (``data/reference``) are shown
beside them and labelled as published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emms.cache import atomic_write_text
from emms.evaluation import relative_gain
from emms.selectors.registry import SELECTORS
from emms.tasks import get_task

from .config import RunConfig

__all__ = ["write_report"]

_REPO = Path(__file__).resolve().parents[2]


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.3f}"


def _markdown(frame: pd.DataFrame) -> str:
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def tau_tables(tau: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per group: selector x dataset weighted tau (with interval when there is one), and
    the mean over the datasets."""
    out = {}
    for group, block in tau.groupby("group", sort=False):
        values = zip(block["weighted_tau"], block["low"], block["high"], strict=True)
        cells = block.assign(
            cell=[
                _fmt(t) + ("" if not np.isfinite(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
                for t, lo, hi in values
            ]
        )
        table = cells.pivot(index="selector", columns="dataset", values="cell")
        table = table.reindex(index=list(dict.fromkeys(block["selector"])))
        means = block.groupby("selector")["weighted_tau"].mean()
        table["mean"] = [_fmt(means[s]) for s in table.index]
        table.insert(0, "method", [SELECTORS[s].label for s in table.index])
        out[group] = table.reset_index()
    return out


def _speedup(scores: pd.DataFrame) -> float | None:
    """Seconds of LogME (F-label) over seconds of EMMS, summed over the (dataset, model)
    calls both scored (one timed call each: a single run's wall-clock, not a median)."""
    if "seconds" not in scores or not {"emms", "logme_flabel"} <= set(scores["selector"]):
        return None
    seconds = scores.pivot_table(
        index=["dataset", "model"], columns="selector", values="seconds", aggfunc="sum"
    )[["emms", "logme_flabel"]].dropna()
    if not len(seconds) or seconds["emms"].sum() <= 0:
        return None
    return float(seconds["logme_flabel"].sum() / seconds["emms"].sum())


def _headline(cfg: RunConfig, tau: pd.DataFrame, scores: pd.DataFrame) -> dict[str, Any]:
    means = tau.groupby("selector")["weighted_tau"].mean()
    computed = None
    if "emms" in means and "logme_flabel" in means:
        gain = relative_gain(means["emms"], means["logme_flabel"])
        computed = float(100 * gain) if np.isfinite(gain) else None
    published = published_speedup = None
    path = _REPO / "data" / "reference" / "headline.csv"
    row = get_task(cfg.task).headline_task
    if path.is_file():
        table = pd.read_csv(path).set_index("task")
        if row in table.index:
            published = float(table.loc[row, "gain_over_logme_flabel_percent"])
            published_speedup = float(table.loc[row, "speedup_over_logme_flabel"])
    return {
        "computed_gain_percent": computed,
        "published_gain_percent": published,
        "computed_speedup": _speedup(scores),
        "published_speedup": published_speedup,
    }


#: the selectors drawn against the truth: the paper's method and its headline baseline
SCATTER_SELECTORS = ("emms", "logme_flabel")


def write_figures(cfg: RunConfig, scores: pd.DataFrame, tau: pd.DataFrame, truth) -> list[str]:
    """``weighted_tau`` and ``scores_vs_truth`` (PNG + SVG) in the report folder; returns
    the Markdown lines that show them (paths relative to the report)."""
    import matplotlib.pyplot as plt

    from emms.reports.plotting import plot_scores_vs_truth, plot_tau, save_figure

    folder = cfg.report_dir()
    several = tau["group"].nunique() > 1  # recognition: CNNs and ViTs ranked apart
    where = (tau["group"] + "/" + tau["dataset"]) if several else tau["dataset"]
    evaluation = pd.DataFrame({
        "metric": "weighted_tau",
        "label": [SELECTORS[s].label for s in tau["selector"]],
        "dataset": where,
        "value": tau["weighted_tau"],
        "low": tau["low"].fillna(tau["weighted_tau"]),
        "high": tau["high"].fillna(tau["weighted_tau"]),
    }).dropna(subset=["value"])  # fmt: skip
    lines = ["## Figures (computed by this run)", ""]
    if len(evaluation):
        figure = plot_tau(evaluation)
        save_figure(figure, folder, "weighted_tau")
        plt.close(figure)
        lines += [
            "Weighted tau per selector and dataset; bars: the 95 % bootstrap interval over the "
            "zoo (none drawn for groups under 5 models).",
            "",
            f"![weighted tau]({folder.name}/weighted_tau.svg)",
            "",
        ]
    shown = [s for s in SCATTER_SELECTORS if s in set(scores["selector"])]
    points = scores[scores["selector"].isin(shown)].dropna(subset=["score"])
    if len(points):
        points = points.assign(method=points["selector"],
                               label=[SELECTORS[s].label for s in points["selector"]])  # fmt: skip
        summary = truth.rename(columns={"truth": "mean"}).assign(std=0.0)
        methods = [s for s in shown if s in set(points["method"])]
        figure = plot_scores_vs_truth(points, summary, methods, truth_label="truth")
        save_figure(figure, folder, "scores_vs_truth")
        plt.close(figure)
        lines += [
            "Each model's score against its truth (the table's value, the mean over seeds "
            "for a fine-tuned table): a good selector orders the points like the truth.",
            "",
            f"![scores against the truth]({folder.name}/scores_vs_truth.svg)",
            "",
        ]
    return lines


def _or_na(value: float | None, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def write_report(
    cfg: RunConfig,
    scores: pd.DataFrame,
    tau: pd.DataFrame,
    truth: pd.DataFrame,
    truth_source: str,
    run_info: dict[str, Any],
) -> Path:
    """Write the report files; returns the Markdown report's path."""
    folder = cfg.report_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "scores.csv", scores.to_csv(index=False))
    atomic_write_text(folder / "tau.csv", tau.to_csv(index=False))
    tables = tau_tables(tau)
    tau_md = "".join(
        f"### Group `{group}`: weighted tau (computed by this run)\n\n{_markdown(table)}\n"
        for group, table in tables.items()
    )
    atomic_write_text(folder / "tau.md", tau_md)
    headline = _headline(cfg, tau, scores)
    metrics = {
        "task": cfg.task,
        "truth_source": truth_source,
        "run": run_info,
        "headline": headline,
        "tau": {
            f"{r.group}/{r.dataset}/{r.selector}": {
                "weighted_tau": None if not np.isfinite(r.weighted_tau) else r.weighted_tau,
                "low": None if not np.isfinite(r.low) else r.low,
                "high": None if not np.isfinite(r.high) else r.high,
                "n_models": int(r.n_models),
                "note": r.note,
            }
            for r in tau.itertuples()
        },
        "mean_seconds_per_model": scores.groupby("selector")["seconds"].mean().to_dict(),
    }
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")

    published = truth.pivot_table(index="dataset", columns="model", values="truth")
    published = published.reindex(index=[d for d in cfg.datasets if d in published.index])
    lines = [
        f"# {cfg.task}: paper-scale model selection (computed)",
        "",
        f"Zoo `{cfg.config_path}`, {len(cfg.models)} models; datasets: "
        + ", ".join(f"`{d}` (N={run_info['samples'].get(d)})" for d in cfg.datasets)
        + ".",
        f"Device `{run_info['device']}`, autocast `{run_info['precision']}`; F-label "
        f"encoders: {', '.join(f'`{e}`' for e in cfg.encoders)}; template `{cfg.template}`.",
        f"Truth: {truth_source}.",
        "",
        "## Weighted Kendall tau per selector and dataset (computed by this run)",
        "",
        "Brackets: the 95 % bootstrap interval over the zoo (groups of 5+ models only).",
        "",
        tau_md,
    ]
    notes = tau[tau["note"] != ""]
    if len(notes):
        lines += ["Not scored:", ""]
        lines += [f"- `{r.group}/{r.dataset}/{r.selector}`: {r.note}" for r in notes.itertuples()]
        lines.append("")
    gain_published = headline["published_gain_percent"]
    gain_computed = headline["computed_gain_percent"]
    truth_label = truth_source
    lines += [
        "## The paper's figures beside the computed ones",
        "",
        "Relative gain of EMMS over LogME (F-label) in mean weighted tau:",
        "",
        "| source | gain (%) |",
        "| --- | --- |",
        "| published (Meng et al., 2023, abstract; data/reference/headline.csv) | "
        + ("n/a" if gain_published is None else f"{gain_published:.1f}")
        + " |",
        "| computed by this run (EMMS exact vs LogME F-label) | "
        + ("n/a" if gain_computed is None else f"{gain_computed:.1f}")
        + " |",
        "",
        "(n/a for the computed gain: EMMS or LogME (F-label) was not scored, or LogME "
        "(F-label)'s mean tau is not above 0, where a relative gain means nothing: "
        "`emms.evaluation.relative_gain`.)\n",
        "Speed-up of EMMS over LogME (F-label) in wall-clock:",
        "",
        "| source | speed-up (x) |",
        "| --- | --- |",
        "| published (Meng et al., 2023, abstract; data/reference/headline.csv) | "
        + _or_na(headline["published_speedup"], "{:.2f}")
        + " |",
        "| computed by this run (sum over the scored calls, one timed call each) | "
        + _or_na(headline["computed_speedup"], "{:.2f}")
        + " |",
        "",
        f"(This run's seconds are one call per (dataset, model) on `{run_info['device']}`"
        " scoring on the CPU, not medians over repeats; `scores.csv` has each call's time.)\n",
        *write_figures(cfg, scores, tau, truth),
        f"Fine-tuned performance used as truth ({truth_label}):",
        "",
        _markdown(published.reset_index().round(3)),
        "Files: `scores.csv` (every score and its time), `tau.csv`, `tau.md`, `metrics.json`, "
        "the figures as PNG and SVG.",
        "",
    ]
    report = cfg.out / f"{cfg.task}-paper.md"
    atomic_write_text(report, "\n".join(lines))
    return report
