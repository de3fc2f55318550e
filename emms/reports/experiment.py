"""Score a zoo on a target with every selector and evaluate the rankings.

The logic the experiment notebooks call (paper §4): load the cached features, source
predictions, F-labels and fine-tuning truth of one target; run every selector on every
model, timing each call; rank; evaluate with :func:`emms.evaluation.evaluate_ranking`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emms.cache import CacheError, fingerprint, load_array
from emms.evaluation import MIN_MODELS_FOR_SPREAD, align_scores_and_truth, evaluate_ranking
from emms.paths import TaskPaths
from emms.selectors.emms_selector import emms
from emms.selectors.registry import (
    FEATURES_LABEL_EMBEDDINGS,
    FEATURES_LABELS,
    SELECTORS,
    SOURCE_LABELS_LABELS,
    SOURCE_PROBS_LABELS,
)

__all__ = [
    "TargetInputs",
    "load_target_inputs",
    "load_flabels",
    "load_truth",
    "score_zoo",
    "truth_summary",
    "evaluate_methods",
    "headline",
]


@dataclass
class TargetInputs:
    """Everything the selectors see for one target (training split only)."""

    dataset: str
    labels: np.ndarray  # (N,) class ids, or None for non-class labels
    class_names: list[str] | None
    features: dict[str, np.ndarray]  # model -> (N, D)
    source_probs: dict[str, np.ndarray]  # model -> (N, Z); empty without a source head
    flabels: np.ndarray | list  # (N, L, K), K encoders in ``encoders`` order
    encoders: list[str]


def load_flabels(
    paths: TaskPaths, target: str, encoders: Sequence[str], template: str | None = None
):
    """The F-labels of ``target`` stacked as (N, L, K), K = len(encoders), each block
    checked to be the named encoder's embedding of this task's target with ``template``."""
    blocks = [
        load_array(
            paths.flabels(target, name),
            expect={
                "task": paths.task,
                "dataset": target,
                "split": "train",
                "encoder": name,
                "template": template,
            },
        )[0]
        for name in encoders
    ]
    widths = {block.shape[1] for block in blocks}
    if len(widths) == 1:
        return np.stack(blocks, axis=2)
    return blocks  # unequal widths: emms.emms reduces them (documented there)


def load_truth(task, paths: TaskPaths) -> pd.DataFrame:
    """The fine-tuning table (one row per dataset, model, seed) of ``task``."""
    if not paths.truth.is_file():
        raise CacheError(f"{paths.truth} is missing; run `dvc repro truth@{task.name}`.")
    table = pd.read_csv(paths.truth)
    expected = task.truth_columns
    if tuple(table.columns) != expected:
        raise CacheError(
            f"{paths.truth} has columns {list(table.columns)}, expected {list(expected)}; "
            f"rerun `dvc repro truth@{task.name}`."
        )
    return table


def load_target_inputs(task, block, dataset: str, encoders: Sequence[str], root=".") -> TargetInputs:
    """Read one target's cached inputs; every array is checked against its sidecar
    (task, dataset, split, the model and its recipe, or the encoder and its template)."""
    paths = TaskPaths(task.name, root)
    target = task.load_target(paths, dataset)
    recipes = {entry["name"]: fingerprint(entry) for entry in block.zoo.models}
    features, probs = {}, {}
    for model in block.models:
        expect = {
            "task": task.name,
            "dataset": dataset,
            "split": "train",
            "model": model,
            "recipe": recipes[model],
        }
        features[model] = load_array(paths.features(dataset, model), expect=expect)[0]
        if task.has_source_probs:
            probs[model] = load_array(paths.source_probs(dataset, model), expect=expect)[0]
    return TargetInputs(
        dataset=dataset,
        labels=np.asarray(target.train_labels) if task.label_format == "class" else None,
        class_names=target.class_names,
        features=features,
        source_probs=probs,
        flabels=load_flabels(paths, dataset, encoders, task.flabel_template(block)),
        encoders=list(encoders),
    )


def _inputs_for(needs: str, inputs: TargetInputs, model: str):
    if needs == FEATURES_LABELS:
        return inputs.features[model], inputs.labels
    if needs == FEATURES_LABEL_EMBEDDINGS:
        return inputs.features[model], inputs.flabels
    if needs == SOURCE_PROBS_LABELS:
        return inputs.source_probs[model], inputs.labels
    if needs == SOURCE_LABELS_LABELS:
        return inputs.source_probs[model].argmax(axis=1), inputs.labels
    raise ValueError(f"unknown input kind {needs!r}")


def score_zoo(
    inputs: TargetInputs, methods: Sequence[str] | None = None, *, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every method on every model of one target.

    Returns:
        ``(scores, weights)``: scores has one row per (model, method) with ``score`` and
        ``seconds``; weights has one row per (model, encoder) with EMMS's (exact) weight.
    """
    from tqdm.auto import tqdm

    available = [
        name
        for name, spec in SELECTORS.items()
        if inputs.labels is not None or spec.needs == FEATURES_LABEL_EMBEDDINGS
    ]
    methods = available if methods is None else list(methods)
    unknown = set(methods) - set(available)
    if unknown:
        raise KeyError(f"unknown method(s) {sorted(unknown)}; choose from {sorted(available)}")
    rows, weights = [], []
    jobs = [(model, method) for model in inputs.features for method in methods]
    for model, method in tqdm(jobs, desc=f"scoring {inputs.dataset}", disable=not progress):
        spec = SELECTORS[method]
        first, second = _inputs_for(spec.needs, inputs, model)
        start = time.perf_counter()
        if method == "emms":  # the registry's EMMS entry, keeping the weights for the report
            result = emms(first, second)
            seconds = time.perf_counter() - start
            value = result.score
            weights += [
                {"dataset": inputs.dataset, "model": model, "encoder": enc, "weight": w}
                for enc, w in zip(inputs.encoders, result.weights, strict=True)
            ]
        else:
            value = spec(first, second)
            seconds = time.perf_counter() - start
        rows.append(
            {
                "dataset": inputs.dataset,
                "model": model,
                "method": method,
                "label": spec.label,
                "score": float(value),
                "seconds": seconds,
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(weights)


def truth_summary(truth: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Mean, std and standard error of the truth metric over seeds, per (dataset, model),
    plus per dataset the spread across the zoo and its ratio to the mean seed std."""
    grouped = truth.groupby(["dataset", "model"])[metric]
    summary = grouped.agg(mean="mean", std=lambda a: a.std(ddof=1), seeds="count").reset_index()
    summary["sem"] = summary["std"] / np.sqrt(summary["seeds"])
    per_dataset = summary.groupby("dataset").agg(
        zoo_range=("mean", lambda a: a.max() - a.min()),
        zoo_std=("mean", "std"),
        mean_seed_std=("std", "mean"),
    )
    per_dataset["range_over_seed_std"] = per_dataset["zoo_range"] / per_dataset["mean_seed_std"]
    per_dataset["zoo_std_over_seed_std"] = per_dataset["zoo_std"] / per_dataset["mean_seed_std"]
    return summary.merge(per_dataset.reset_index(), on="dataset")


def evaluate_methods(
    scores: pd.DataFrame, summary: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Every ranking metric, with its bootstrap spread, per (dataset, method).

    The bootstrap draws the truth from N(mean, sem^2) in each resample, so the spread
    covers both the choice of zoo and the seed noise of fine-tuning.
    """
    rows = []
    for (dataset, method), group in scores.groupby(["dataset", "method"], sort=False):
        truth = summary[summary.dataset == dataset].set_index("model")
        score, mean, sem = align_scores_and_truth(
            group.set_index("model")["score"], truth["mean"], truth["sem"]
        )
        # a spread needs a zoo of MIN_MODELS_FOR_SPREAD; smaller ones report NaN spreads
        enough = len(score) >= MIN_MODELS_FOR_SPREAD
        estimates = evaluate_ranking(
            score.to_numpy(),
            mean.to_numpy(),
            truth_sem=sem.to_numpy(),
            n_boot=n_boot if enough else None,
            seed=seed,
        )
        for metric, estimate in estimates.items():
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "label": group["label"].iloc[0],
                    "metric": metric,
                    "value": estimate.value,
                    "std": estimate.std,
                    "low": estimate.low,
                    "high": estimate.high,
                }
            )
    return pd.DataFrame(rows)


def headline(
    evaluation: pd.DataFrame, scores: pd.DataFrame, reference: Mapping[str, float]
) -> pd.DataFrame:
    """EMMS vs LogME (F-label), as in the paper's abstract: relative gain in weighted tau
    (mean over datasets) and wall-clock speed-up (total over the zoo), beside the paper's."""
    tau = evaluation[evaluation.metric == "weighted_tau"].pivot(
        index="dataset", columns="method", values="value"
    )
    # gain of the mean tau over datasets (a mean of per-dataset ratios explodes near 0)
    base = tau["logme_flabel"].mean()
    gain = (tau["emms"].mean() - base) / abs(base)
    seconds = scores.groupby("method")["seconds"].sum()
    return pd.DataFrame(
        {
            "quantity": [
                "gain in weighted tau over LogME (F-label), %",
                "speed-up over LogME (F-label), x",
            ],
            "paper (11 datasets, ImageNet zoo)": [
                reference["gain_over_logme_flabel_percent"],
                reference["speedup_over_logme_flabel"],
            ],
            "embedded (this run)": [
                100 * float(gain),
                float(seconds["logme_flabel"] / seconds["emms"]),
            ],
        }
    )


def split_seed_reliability(truth: pd.DataFrame, metric: str) -> pd.Series:
    """How well the truth ranks itself: per dataset, the weighted tau between the zoo
    ranked by the mean over one half of the seeds and by the mean over the other half,
    averaged over every split of the seeds into two halves (sizes floor(S/2), ceil(S/2)).

    It is the ceiling any selector can reach against a truth this noisy (a selector is
    compared with the mean over all seeds, which is somewhat less noisy than a half).
    NaN for fewer than 2 seeds.
    """
    from itertools import combinations

    from emms.evaluation import weighted_tau

    out = {}
    for dataset, table in truth.groupby("dataset"):
        seeds = sorted(table["seed"].unique())
        if len(seeds) < 2:
            out[dataset] = float("nan")
            continue
        wide = table.pivot_table(index="model", columns="seed", values=metric)
        taus = []
        for half in combinations(seeds, len(seeds) // 2):
            rest = [s for s in seeds if s not in half]
            a, b = wide[list(half)].mean(axis=1), wide[rest].mean(axis=1)
            taus.append(weighted_tau(a.to_numpy(), b.to_numpy()))
        out[dataset] = float(np.mean(taus))
    return pd.Series(out, name="split_seed_reliability")
