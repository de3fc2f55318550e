"""Figures of the experiment reports (seaborn), saved as PNG and SVG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from emms.cache import atomic_write_bytes  # noqa: E402

__all__ = [
    "save_figure",
    "plot_truth",
    "plot_scores_vs_truth",
    "plot_tau",
    "plot_tau_heatmap",
    "plot_weights",
    "plot_wallclock",
    "plot_paper_spread",
    "model_styles",
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


def plot_truth(summary: pd.DataFrame, label: str = "test accuracy", upper: float = 1.0):
    """Fine-tuned truth (mean and seed std) of every model on every dataset; ``label``
    names the metric, ``upper`` is its largest value (1 for accuracy, 100 for percent)."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = summary[summary.dataset == dataset].sort_values("mean")
        ax.barh(part["model"], part["mean"], xerr=part["std"], color=sns.color_palette()[0])
        pad = 0.02 * upper
        low = max(0.0, part["mean"].min() - 3 * part["std"].max() - pad)
        ax.set_xlim(low, min(upper, part["mean"].max() + 3 * part["std"].max() + pad))
        ax.set_title(f"{dataset}\nrange / seed std = {part['range_over_seed_std'].iloc[0]:.1f}")
        ax.set_xlabel(f"{label} (mean ± std over seeds)")
    fig.tight_layout()
    return fig


_MARKERS = "osD^vP*Xph<>"


def model_styles(models) -> dict:
    """A colour and marker per model, the same in every panel (one legend for all)."""
    models = list(dict.fromkeys(models))
    palette = sns.color_palette("tab10" if len(models) <= 10 else "tab20", len(models))
    return {m: (palette[i], _MARKERS[i % len(_MARKERS)]) for i, m in enumerate(models)}


def plot_scores_vs_truth(
    scores: pd.DataFrame, summary: pd.DataFrame, methods, truth_label: str = "fine-tuned accuracy"
):
    """One panel per (method, dataset): each model's score against its truth (``truth_label``).

    Models are told apart by colour and marker with one legend below the panels, so no
    label can collide with another."""
    datasets = list(dict.fromkeys(scores["dataset"]))
    fig, axes = plt.subplots(
        len(methods),
        len(datasets),
        figsize=(3.6 * len(datasets), 3.0 * len(methods) + 0.9),
        squeeze=False,
    )
    merged = scores.merge(summary, on=["dataset", "model"])
    styles = model_styles(merged["model"])
    for row, method in enumerate(methods):
        for col, dataset in enumerate(datasets):
            ax = axes[row][col]
            part = merged[(merged.method == method) & (merged.dataset == dataset)]
            for _, point in part.iterrows():
                color, marker = styles[point["model"]]
                ax.errorbar(
                    point["score"],
                    point["mean"],
                    yerr=point["std"],
                    fmt=marker,
                    color=color,
                    ms=6,
                    capsize=2,
                    label=point["model"],
                )
            ax.set_title(f"{part['label'].iloc[0]} · {dataset}", fontsize=9)
            ax.set_xlabel("score", fontsize=8)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            ax.set_ylabel(truth_label if col == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
    handles = [
        plt.Line2D([], [], ls="", marker=marker, color=color, label=model)
        for model, (color, marker) in styles.items()
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 5),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06 + 0.025 * ((len(handles) - 1) // 5), 1, 1))
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


def plot_weights(weights: pd.DataFrame, collapsed: set | None = None):
    """EMMS's weights t_k of the F-label encoders (they sum to 1), one stacked bar per
    model and one panel per dataset.

    ``collapsed`` holds the (dataset, model) pairs whose fit collapsed (D >= N - 1: the
    features interpolate any F-label, every weight gives the same zero residual, so the
    weights are arbitrary): their bars are hatched and pale and their names marked."""
    collapsed = collapsed or set()
    datasets = list(dict.fromkeys(weights["dataset"]))
    encoders = list(dict.fromkeys(weights["encoder"]))
    models = list(dict.fromkeys(weights["model"]))
    palette = dict(zip(encoders, sns.color_palette(n_colors=len(encoders)), strict=True))
    fig, axes = plt.subplots(
        1,
        len(datasets),
        figsize=(4.2 * len(datasets), 0.34 * len(models) + 1.9),
        squeeze=False,
        sharey=False,
    )
    for ax, dataset in zip(axes[0], datasets, strict=True):
        table = (
            weights[weights.dataset == dataset]
            .pivot(index="model", columns="encoder", values="weight")
            .reindex(index=models, columns=encoders)
        )
        left = pd.Series(0.0, index=table.index)
        for encoder in encoders:
            for y, model in enumerate(table.index):
                bad = (dataset, model) in collapsed
                ax.barh(
                    y,
                    table.loc[model, encoder],
                    left=left[model],
                    color=palette[encoder],
                    alpha=0.35 if bad else 1.0,
                    hatch="//" if bad else None,
                    edgecolor="grey" if bad else "white",
                    linewidth=0.5,
                    label=encoder if y == 0 else None,
                )
            left += table[encoder].fillna(0.0)
        ax.set_yticks(
            range(len(table.index)),
            [f"{m}  ✗" if (dataset, m) in collapsed else m for m in table.index],
            fontsize=8,
        )
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("EMMS weight t_k (stacked, sums to 1)", fontsize=8)
        ax.set_title(dataset, fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(encoders), fontsize=8)
    note = (
        "✗ hatched: D ≥ N − 1, the least-squares fit is exact for any weights, "
        "so these weights are arbitrary"
        if collapsed
        else "no model has D ≥ N − 1 on these targets"
    )
    fig.text(0.5, 1.0, note, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 0.98))
    return fig


def plot_wallclock(timings: pd.DataFrame):
    """Seconds per call of each method (the median over repeats where a call was timed
    more than once): one dot per (dataset, model) call, log scale."""
    per_call = timings.groupby(["label", "dataset", "model"])["seconds"].median().reset_index()
    order = per_call.groupby("label")["seconds"].median().sort_values().index
    fig, ax = plt.subplots(figsize=(7.0, 0.34 * len(order) + 1.3))
    sns.stripplot(data=per_call, x="seconds", y="label", order=order, ax=ax, size=3.5, jitter=0.2)
    ax.set_xscale("log")
    ax.set_ylabel("")
    ax.set_xlabel("seconds per call (one dot per model and target; this machine)")
    fig.tight_layout()
    return fig


def plot_paper_spread(spreads: pd.DataFrame):
    """The ground truth's range across the zoo, per dataset: the paper's published
    fine-tuning tables beside this run's (points of accuracy, or of BLEU-4 x 100)."""
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(spreads) + 1.4))
    sns.barplot(data=spreads, x="range", y="where", hue="zoo", ax=ax, dodge=False)
    ax.set_xlabel("best minus worst fine-tuned score across the zoo (points)")
    ax.set_ylabel("")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_tau_heatmap(tau: pd.DataFrame):
    """Weighted tau of every selector (rows, best mean first) on every (task, target)."""
    table = tau.assign(column=tau.task + "\n" + tau.target).pivot(
        index="selector", columns="column", values="weighted_tau"
    )
    table = table.loc[table.mean(axis=1).sort_values(ascending=False).index]
    columns = list(dict.fromkeys(tau.task + "\n" + tau.target))
    table = table[columns]
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 3.0, 0.36 * len(table) + 1.4))
    sns.heatmap(
        table, annot=True, fmt="+.2f", cmap="RdBu", vmin=-1, vmax=1, cbar=False, ax=ax,
        annot_kws={"fontsize": 7},
    )  # fmt: skip
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig
