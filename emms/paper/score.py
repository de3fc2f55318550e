"""Truth, scores and weighted tau of a paper-scale run.

Truth. Recognition uses the published fine-tuning tables of ``data/reference`` (one per
zoo group: the CNNs and the ViTs are ranked separately, as in the paper). A task without
a published table, or a run given ``--truth CSV``, reads a long table with the columns of
the embedded truth table: ``dataset, model, seed, METRIC`` (mean over seeds).

Scores. Every registered selector that applies to the task's label format
(:func:`emms.selectors.registry.selectors_for`) scores every model of a group on every
dataset; LEEP and NCE need the models' source-head probabilities and are left out of a
group where a model has none. The ranking of each (group, dataset, selector) is compared
with the truth by :func:`emms.evaluation.evaluate_ranking` (weighted tau, scipy's
defaults; bootstrap interval when the group has 5+ models).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from emms._validation import InputError
from emms.cache import load_array
from emms.evaluation import MIN_MODELS_FOR_SPREAD, evaluate_ranking
from emms.selectors.registry import (
    FEATURES_LABEL_EMBEDDINGS,
    FEATURES_LABELS,
    SELECTORS,
    SOURCE_LABELS_LABELS,
    SOURCE_PROBS_LABELS,
    selectors_for,
)
from emms.tasks.base import SELECTOR_FORMAT

from .config import PaperRunError, RunConfig

__all__ = ["load_truth", "applicable_selectors", "score_dataset", "rank_scores"]

_REPO = Path(__file__).resolve().parents[2]


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() or path.exists() else _REPO / path


def _group_of(cfg: RunConfig) -> dict[str, str]:
    return {name: (cfg.zoo.entry(name).group or "all") for name in cfg.models}


def load_truth(cfg: RunConfig) -> tuple[pd.DataFrame, str]:
    """Long truth table ``group, dataset, model, truth`` and a sentence on its source."""
    groups = _group_of(cfg)
    if cfg.truth is not None:
        if not cfg.truth.is_file():
            raise PaperRunError(f"truth table {cfg.truth} not found; pass --truth CSV.")
        table = pd.read_csv(cfg.truth)
        if list(table.columns[:3]) != ["dataset", "model", "seed"] or table.shape[1] < 4:
            raise PaperRunError(
                f"truth table {cfg.truth} has columns {list(table.columns)}; expected "
                "dataset, model, seed, METRIC[, secondary metrics] (one row per "
                "fine-tuning seed; the fourth column is the truth)."
            )
        metric = table.columns[3]  # further columns (text QA's exact_match) are secondary
        mean = table.groupby(["dataset", "model"], as_index=False)[metric].mean()
        mean = mean.rename(columns={metric: "truth"})
        source = f"user-supplied fine-tuning table {cfg.truth} ({metric}, mean over seeds)"
    else:
        frames = []
        references = {
            name: block.get("reference")
            for name, block in cfg.zoo.groups.items()
            if block.get("reference")
        }
        if not references and cfg.zoo.reference:
            references = {"all": cfg.zoo.reference}
        if not references:
            raise PaperRunError(
                f"the {cfg.task} experiment has no published fine-tuning table; fine-tune "
                "the zoo and pass --truth CSV (columns dataset, model, seed, METRIC)."
            )
        for name, path in references.items():
            path = _resolve(path)
            if not path.is_file():
                raise PaperRunError(f"reference table {path} of group {name!r} not found.")
            wide = pd.read_csv(path)
            frames.append(wide.melt(id_vars="dataset", var_name="model", value_name="truth"))
        mean = pd.concat(frames, ignore_index=True).drop_duplicates(["dataset", "model"])
        source = (
            "the zoo's reference fine-tuning tables (data/reference holds the paper's "
            "published ones): " + ", ".join(f"{g}: {p}" for g, p in references.items())
        )
    mean = mean[mean["model"].isin(groups)].copy()
    mean["group"] = mean["model"].map(groups)
    return mean[["group", "dataset", "model", "truth"]].reset_index(drop=True), source


def applicable_selectors(cfg: RunConfig) -> list[str]:
    names = [s.name for s in selectors_for(label_format=SELECTOR_FORMAT[cfg.label_format])]
    if cfg.selectors:
        unknown = [n for n in cfg.selectors if n not in names]
        if unknown:
            raise PaperRunError(
                f"selectors {unknown} do not apply to {cfg.label_format} labels or are "
                f"unknown; choose from {names}."
            )
        names = [n for n in names if n in cfg.selectors]
    return names


def _inputs(needs, features, probs, labels, flabels):
    if needs == FEATURES_LABELS:
        return features, labels
    if needs == FEATURES_LABEL_EMBEDDINGS:
        return features, flabels
    if needs == SOURCE_PROBS_LABELS:
        return probs, labels
    if needs == SOURCE_LABELS_LABELS:
        return probs.argmax(axis=1), labels
    raise ValueError(needs)


def score_dataset(
    cfg: RunConfig, dataset: str, labels: np.ndarray, expects: dict[str, dict]
) -> pd.DataFrame:
    """Every applicable selector on every model of ``dataset``: rows ``dataset, model,
    group, selector, score, seconds, error``."""
    flabel_blocks = [load_array(cfg.flabels_path(dataset, e))[0] for e in cfg.encoders]
    widths = {b.shape[1] for b in flabel_blocks}
    flabels = np.stack(flabel_blocks, axis=2) if len(widths) == 1 else flabel_blocks
    groups = _group_of(cfg)
    rows = []
    for model in cfg.models:
        features, meta = load_array(cfg.features_path(dataset, model), expect=expects[model])
        features = features.astype(np.float64)
        probs = None
        if meta.get("has_source_probs"):
            probs = load_array(cfg.source_probs_path(dataset, model), expect=expects[model])[0]
            probs = probs.astype(np.float64)
            probs /= probs.sum(axis=1, keepdims=True)
        for name in applicable_selectors(cfg):
            spec = SELECTORS[name]
            row = {"dataset": dataset, "model": model, "group": groups[model], "selector": name}
            if spec.needs in (SOURCE_PROBS_LABELS, SOURCE_LABELS_LABELS) and probs is None:
                rows.append({**row, "score": np.nan, "seconds": np.nan, "error": "no source head"})
                continue
            start = time.perf_counter()
            try:
                score = spec(*_inputs(spec.needs, features, probs, labels, flabels))
                error = ""
            except (InputError, ValueError, np.linalg.LinAlgError) as failure:
                score, error = np.nan, f"{type(failure).__name__}: {failure}".splitlines()[0]
            if not error and not np.isfinite(score):
                error = f"the selector returned {score} (N={len(features)}, D={features.shape[1]})"
            rows.append(
                {**row, "score": score, "seconds": time.perf_counter() - start, "error": error}
            )
    return pd.DataFrame(rows)


def rank_scores(scores: pd.DataFrame, truth: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """Weighted tau (and interval) per group, dataset and selector."""
    rows = []
    for (group, dataset, selector), block in scores.groupby(
        ["group", "dataset", "selector"], sort=False
    ):
        truth_here = truth[(truth["group"] == group) & (truth["dataset"] == dataset)]
        merged = block.merge(truth_here[["model", "truth"]], on="model")
        row = {"group": group, "dataset": dataset, "selector": selector, "n_models": len(merged)}
        nan = {"weighted_tau": np.nan, "low": np.nan, "high": np.nan}
        if len(merged) < 2:
            rows.append({**row, **nan, "note": "fewer than 2 models with truth"})
            continue
        if merged["score"].isna().any():
            failed = merged.loc[merged["score"].isna(), "model"].tolist()
            reason = block.loc[block["score"].isna(), "error"].iloc[0]
            rows.append({**row, **nan, "note": f"no score for {failed} ({reason})"})
            continue
        s = pd.Series(merged["score"].to_numpy(), index=merged["model"])
        t = pd.Series(merged["truth"].to_numpy(), index=merged["model"])
        boot = n_boot if len(merged) >= MIN_MODELS_FOR_SPREAD else None
        try:
            estimate = evaluate_ranking(s, t, metrics=("weighted_tau",), n_boot=boot)
        except InputError as failure:
            rows.append({**row, **nan, "note": str(failure).splitlines()[0]})
            continue
        tau = estimate["weighted_tau"]
        rows.append(
            {**row, "weighted_tau": tau.value, "low": tau.low, "high": tau.high, "note": ""}
        )
    return pd.DataFrame(rows)
