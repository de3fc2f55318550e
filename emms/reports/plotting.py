"""Figures of the experiment reports (seaborn), saved as PNG and SVG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from emms.cache import atomic_write_bytes  # noqa: E402

__all__ = [
    "save_figure",
    "plot_truth",
    "plot_scores_vs_truth",
    "plot_tau",
    "plot_weights",
    "plot_wallclock",
]

sns.set_theme(style="whitegrid", context="notebook")


def save_figure(fig, directory, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` atomically (no timestamps in the files)."""
    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)
        path = Path(directory) / f"{name}.{fmt}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def plot_truth(summary: pd.DataFrame):
    """Fine-tuned test accuracy (mean and seed std) of every model on every dataset."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = summary[summary.dataset == dataset].sort_values("mean")
        ax.barh(part["model"], part["mean"], xerr=part["std"], color=sns.color_palette()[0])
        low = max(0.0, part["mean"].min() - 3 * part["std"].max() - 0.02)
        ax.set_xlim(low, min(1.0, part["mean"].max() + 3 * part["std"].max() + 0.02))
        ax.set_title(f"{dataset}\nrange / seed std = {part['range_over_seed_std'].iloc[0]:.1f}")
        ax.set_xlabel("test accuracy (mean ± std over seeds)")
    fig.tight_layout()
    return fig


def plot_scores_vs_truth(scores: pd.DataFrame, summary: pd.DataFrame, methods):
    """One panel per (method, dataset): each model's score against its fine-tuned accuracy."""
    datasets = list(dict.fromkeys(scores["dataset"]))
    fig, axes = plt.subplots(
        len(methods),
        len(datasets),
        figsize=(3.8 * len(datasets), 3.2 * len(methods)),
        squeeze=False,
    )
    merged = scores.merge(summary, on=["dataset", "model"])
    for row, method in enumerate(methods):
        for col, dataset in enumerate(datasets):
            ax = axes[row][col]
            part = merged[(merged.method == method) & (merged.dataset == dataset)]
            ax.errorbar(part["score"], part["mean"], yerr=part["std"], fmt="o", ms=5, capsize=2)
            for _, point in part.iterrows():
                ax.annotate(
                    point["model"],
                    (point["score"], point["mean"]),
                    fontsize=6,
                    xytext=(3, 2),
                    textcoords="offset points",
                )
            ax.set_title(f"{part['label'].iloc[0]} · {dataset}", fontsize=9)
            ax.set_xlabel("score")
            ax.set_ylabel("fine-tuned accuracy")
    fig.tight_layout()
    return fig


def plot_tau(evaluation: pd.DataFrame, metric: str = "weighted_tau"):
    """A metric per method and dataset with its 95 % bootstrap interval."""
    part = evaluation[evaluation.metric == metric].copy()
    order = part.groupby("label")["value"].mean().sort_values(ascending=False).index
    datasets = list(dict.fromkeys(part["dataset"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(order) * len(datasets) / 2 + 1.5))
    palette = sns.color_palette(n_colors=len(datasets))
    offsets = {d: (i - (len(datasets) - 1) / 2) * 0.25 for i, d in enumerate(datasets)}
    positions = {label: i for i, label in enumerate(order)}
    for color, dataset in zip(palette, datasets, strict=True):
        rows = part[part.dataset == dataset]
        y = [positions[label] + offsets[dataset] for label in rows["label"]]
        ax.errorbar(
            rows["value"],
            y,
            xerr=[rows["value"] - rows["low"], rows["high"] - rows["value"]],
            fmt="o",
            color=color,
            capsize=2,
            label=dataset,
            ms=4,
        )
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"{metric.replace('_', ' ')} (95 % bootstrap interval)")
    ax.legend(title="dataset", loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_weights(weights: pd.DataFrame):
    """EMMS's weight of every F-label encoder, per model and dataset."""
    grid = sns.catplot(
        data=weights,
        x="weight",
        y="model",
        hue="encoder",
        col="dataset",
        kind="bar",
        height=3.6,
        aspect=1.0,
        orient="h",
    )
    grid.set_titles("{col_name}")
    grid.set_axis_labels("EMMS weight t_k", "")
    return grid.figure


def plot_wallclock(scores: pd.DataFrame):
    """Total seconds per method over the zoo and datasets (log scale)."""
    totals = scores.groupby("label")["seconds"].sum().sort_values()
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(totals) + 1.2))
    ax.barh(totals.index, totals.values, color=sns.color_palette()[2])
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds, all models and datasets (this machine)")
    fig.tight_layout()
    return fig
