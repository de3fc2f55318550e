"""Score a zoo on a target with every selector and evaluate the rankings.

The logic the experiment notebooks call (paper §4): load the cached features, source
predictions, F-labels and fine-tuning truth of one target; run every selector on every
model, timing each call; rank; evaluate with :func:`emms.evaluation.evaluate_ranking`.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from emms.cache import CacheError, fingerprint, load_array
from emms.evaluation import (
    MIN_MODELS_FOR_SPREAD,
    InputError,
    align_scores_and_truth,
    evaluate_ranking,
    paired_tau_difference,
    relative_gain,
    summarise_wins,
    weighted_tau,
)
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
    "warning_row",
    "time_calls",
    "speedup",
    "paired_differences",
    "paper_scale_spread",
    "machine_table",
    "split_seed_taus",
    "secondary_truth",
]

# an absolute path (POSIX or Windows) inside a message: shown by its last part only
_PATH = re.compile(r"(?<![\w:/.])(?:[A-Za-z]:)?(?:[\\/][\w.~+-]+){2,}[\\/]?")


def _strip_paths(text: str) -> str:
    return _PATH.sub(
        lambda m: "…/" + m.group(0).rstrip("/\\").replace("\\", "/").split("/")[-1], text
    )


def warning_row(caught: warnings.WarningMessage, **where) -> dict:
    """One recorded warning as a table row: where it arose (``where``), its category and
    its message's first line, with no path of the machine that ran it."""
    message = str(caught.message).strip().splitlines()[0] if str(caught.message).strip() else ""
    return {
        **where,
        "warning": caught.category.__name__,
        "message": _strip_paths(message),
    }


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


def load_target_inputs(
    task, block, dataset: str, encoders: Sequence[str], root=".", models: Sequence[str] | None = None
) -> TargetInputs:
    """Read one target's cached inputs (the features of ``models``, default the whole
    zoo); every array is checked against its sidecar (task, dataset, split, the model and
    its recipe, or the encoder and its template)."""
    paths = TaskPaths(task.name, root)
    target = task.load_target(paths, dataset)
    recipes = {entry["name"]: fingerprint(entry) for entry in block.zoo.models}
    features, probs = {}, {}
    for model in block.models if models is None else models:
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
    inputs: TargetInputs,
    methods: Sequence[str] | None = None,
    *,
    progress: bool = True,
    caught: list | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every method on every model of one target.

    With ``caught`` a list, every warning a call raises is recorded there (one row per
    warning: dataset, model, selector, category, message, see :func:`warning_row`) instead
    of being shown; without it, warnings behave as usual.

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
        with warnings.catch_warnings(record=caught is not None) as recorded:
            if caught is not None:
                warnings.simplefilter("always")
            start = time.perf_counter()
            if method == "emms":  # the registry's EMMS entry, keeping the weights
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
        if caught is not None:
            caught += [
                warning_row(w, dataset=inputs.dataset, model=model, selector=spec.label)
                for w in recorded
            ]
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


def split_seed_taus(truth: pd.DataFrame, metric: str) -> pd.DataFrame:
    """How well the truth ranks the zoo against itself: per dataset and per split of the
    seeds into two halves (sizes floor(S/2) and the rest; every such split), the
    weighted tau between the per-model means of one half and of the other.

    A selector is compared with the mean over all seeds, which is less noisy than either
    half, so the mean tau is a conservative estimate of the ceiling any selector's tau
    can reach on this truth (a value near 1: the seed noise does not reorder the zoo).
    """
    from itertools import combinations

    from emms.evaluation import weighted_tau

    rows = []
    seeds = sorted(truth["seed"].unique())
    if len(seeds) < 2:
        raise ValueError("split-seed reliability needs >= 2 seeds.")
    half = len(seeds) // 2
    splits = [set(c) for c in combinations(seeds, half)]
    if 2 * half == len(seeds):  # {A, B} and {B, A} are the same split
        splits = [c for c in splits if min(seeds) in c]
    for dataset, part in truth.groupby("dataset", sort=False):
        for first in splits:
            a = part[part.seed.isin(first)].groupby("model")[metric].mean()
            b = part[~part.seed.isin(first)].groupby("model")[metric].mean()
            rows.append(
                {
                    "dataset": dataset,
                    "seeds A": ", ".join(map(str, sorted(first))),
                    "seeds B": ", ".join(str(s) for s in seeds if s not in first),
                    "weighted_tau": weighted_tau(a, b.loc[a.index]),
                }
            )
    return pd.DataFrame(rows)


def secondary_truth(truth: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and seed std of further truth columns (e.g. exact match), per model."""
    grouped = truth.groupby(["dataset", "model"], sort=False)
    frames = [
        grouped[m].agg(["mean", lambda a: a.std(ddof=1)]).set_axis([f"{m}", f"{m}_std"], axis=1)
        for m in metrics
    ]
    return pd.concat(frames, axis=1).reset_index()


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
    evaluation: pd.DataFrame,
    scores: pd.DataFrame,
    reference: Mapping[str, float],
    *,
    speed: Mapping[str, float] | None = None,
    paper_label: str = "paper (11 datasets, ImageNet zoo)",
) -> pd.DataFrame:
    """EMMS vs LogME (F-label), as in the paper's abstract: relative gain in weighted tau
    (mean over datasets) and wall-clock speed-up, beside the paper's.

    ``speed``: the result of :func:`speedup` (medians of repeated calls); without it the
    speed-up is the ratio of single-call sums."""
    tau = evaluation[evaluation.metric == "weighted_tau"].pivot(
        index="dataset", columns="method", values="value"
    )
    # gain of the mean tau over datasets (a mean of per-dataset ratios explodes near 0)
    gain = relative_gain(tau["emms"].mean(), tau["logme_flabel"].mean())
    if speed is None:  # one call each: indicative only
        seconds = scores.groupby("method")["seconds"].sum()
        speed = {"speedup": float(seconds["logme_flabel"] / seconds["emms"])}
    return pd.DataFrame(
        {
            "quantity": [
                "gain in weighted tau over LogME (F-label), %",
                "speed-up over LogME (F-label), x",
            ],
            paper_label: [
                reference["gain_over_logme_flabel_percent"],
                reference["speedup_over_logme_flabel"],
            ],
            "embedded (this run)": [
                100 * float(gain),
                float(speed["speedup"]),
            ],
        }
    )


def time_calls(inputs: TargetInputs, methods: Sequence[str], *, repeats: int = 5) -> pd.DataFrame:
    """Time every (model, method) call of one target ``repeats`` times.

    The calls are interleaved (all methods of a model once, then again), so a slow spell of
    a shared machine hits every method alike. Warnings are silenced: :func:`score_zoo`
    already reported them. Returns one row per (dataset, model, method, repeat).
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1.")
    rows = []
    for model in inputs.features:
        for repeat in range(repeats):
            for method in methods:
                spec = SELECTORS[method]
                first, second = _inputs_for(spec.needs, inputs, model)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    spec(first, second)
                    seconds = time.perf_counter() - start
                rows.append(
                    {
                        "dataset": inputs.dataset,
                        "model": model,
                        "method": method,
                        "repeat": repeat,
                        "seconds": seconds,
                    }
                )
    return pd.DataFrame(rows)


def speedup(
    timings: pd.DataFrame,
    slow: str = "logme_flabel",
    fast: str = "emms",
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """How many times faster ``fast`` is than ``slow`` over the same calls.

    Per call (dataset, model) the median over repeats; the speed-up is the ratio of the
    sums of those medians (the time to score the whole benchmark with each). Its interval
    resamples the calls with replacement (the same calls for both methods) and takes the
    2.5 and 97.5 % percentiles of the ratio.

    Returns:
        ``{"speedup", "low", "high", "calls", "repeats", "slow_seconds", "fast_seconds",
        "median_call_ratio"}`` (the last: median over calls of the per-call ratio).
    """
    medians = timings.groupby(["dataset", "model", "method"])["seconds"].median().unstack("method")
    medians = medians[[slow, fast]].dropna()
    a, b = medians[slow].to_numpy(), medians[fast].to_numpy()
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), size=(n_boot, len(a)))
    ratios = a[index].sum(axis=1) / b[index].sum(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {
        "speedup": float(a.sum() / b.sum()),
        "low": float(low),
        "high": float(high),
        "calls": len(a),
        "repeats": int(timings.groupby(["dataset", "model", "method"]).size().min()),
        "slow_seconds": float(a.sum()),
        "fast_seconds": float(b.sum()),
        "median_call_ratio": float(np.median(a / b)),
    }


def paired_differences(
    scores: pd.DataFrame,
    summary: pd.DataFrame,
    method: str = "emms",
    baselines: Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Weighted tau of ``method`` minus that of each baseline, per target, with a paired
    bootstrap interval (:func:`emms.evaluation.paired_tau_difference`, the same resamples
    for both), and the wins across targets (:func:`emms.evaluation.summarise_wins`).

    Returns:
        ``(table, wins)``: one row per (baseline, dataset) with ``difference``, ``low``,
        ``high``, ``tau_a``, ``tau_b`` (NaN interval where the zoo is too small or a
        selector is constant); ``wins[baseline]`` a WinSummary, or None where a target
        has no interval.
    """
    labels = scores.drop_duplicates("method").set_index("method")["label"]
    baselines = [m for m in (baselines or labels.index) if m != method]
    rows, wins = [], {}
    for baseline in baselines:
        results = {}
        for dataset in dict.fromkeys(scores["dataset"]):
            part = scores[scores.dataset == dataset]
            a = part[part.method == method].set_index("model")["score"]
            b = part[part.method == baseline].set_index("model")["score"]
            if a.empty or b.empty:
                continue
            truth = summary[summary.dataset == dataset].set_index("model")
            a, mean, sem = align_scores_and_truth(a, truth["mean"], truth["sem"])
            row = {"baseline": baseline, "label": labels[baseline], "dataset": dataset}
            try:
                diff = paired_tau_difference(
                    a, b.reindex(a.index), mean, truth_sem=sem, n_boot=n_boot, seed=seed
                )
            except InputError as error:  # too few models, or a constant selector
                points = []
                for scores_ in (a, b.reindex(a.index)):
                    try:
                        points.append(weighted_tau(scores_.to_numpy(), mean.to_numpy()))
                    except InputError:
                        points.append(np.nan)
                rows.append(
                    {
                        **row,
                        "difference": points[0] - points[1],
                        "low": np.nan,
                        "high": np.nan,
                        "tau_a": points[0],
                        "tau_b": points[1],
                        "note": str(error),
                    }
                )
                continue
            results[dataset] = diff
            rows.append(
                {
                    **row,
                    "difference": diff.value,
                    "low": diff.low,
                    "high": diff.high,
                    "tau_a": diff.value_a,
                    "tau_b": diff.value_b,
                    "note": "",
                }
            )
        try:
            wins[baseline] = (
                summarise_wins(results, names=(labels[method], labels[baseline]), seed=seed)
                if results
                else None
            )
        except InputError:
            wins[baseline] = None
    return pd.DataFrame(rows), wins


def paper_scale_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset of a published fine-tuning table (datasets as rows, models as columns):
    the zoo's best, worst, range and standard deviation, and the gap between the best and
    the second best model (how hard it is to pick the winner)."""
    values = table.set_index("dataset")
    ordered = np.sort(values.to_numpy(dtype=float), axis=1)
    return pd.DataFrame(
        {
            "dataset": values.index,
            "models": values.notna().sum(axis=1).to_numpy(),
            "best": values.idxmax(axis=1).to_numpy(),
            "worst": values.idxmin(axis=1).to_numpy(),
            "range": ordered[:, -1] - ordered[:, 0],
            "std": values.std(axis=1, ddof=1).to_numpy(),
            "gap best - 2nd": ordered[:, -1] - ordered[:, -2],
        }
    )


def machine_table() -> pd.DataFrame:
    """Where the report was computed (:func:`emms.environment.machine_info`: CPU, its
    instruction set, the kernels torch picked, BLAS and threads) and the load while timing.
    No path of the machine."""
    import os

    from emms.environment import machine_info

    info = machine_info()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = {
        "CPU": f"{info['cpu']} ({info['machine']}, {info['cpu_count']} cores visible)",
        "instruction sets": info["isa_flags"] or "-",
        "torch CPU kernels": info["torch_cpu_capability"],
        "instruction-set switches": ", ".join(
            f"{k}={v}" for k, v in info["isa_switches"].items() if v
        )
        or "none",
        "torch threads": str(info["torch_threads"]),
        "BLAS": info["blas"] or "-",
        "load average (1 min) while timing": f"{load:.2f}",
        "Python / NumPy / torch": f"{info['python']} / {info['numpy']} / {info['torch']}",
    }
    return pd.DataFrame({"item": list(rows), "value": list(rows.values())})


def split_seed_reliability(splits: pd.DataFrame) -> pd.Series:
    """Per dataset, the mean weighted tau over the splits of :func:`split_seed_taus`: the
    ceiling any selector can reach against a truth this noisy."""
    return splits.groupby("dataset", sort=False)["weighted_tau"].mean().rename(
        "split_seed_reliability"
    )
