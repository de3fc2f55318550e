"""The discussion and the references of a report, written from the run's numbers.

Every number in the text is formatted from the tables the report computed (never typed
in); the words that judge them ("holds", "fails", "not settled") follow from where the
paired intervals lie. Only the list of cited papers is fixed text.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["REFERENCES", "discussion", "references", "verdict"]

#: Every paper a report cites, by key: (authors, year, title, venue).
REFERENCES: dict[str, tuple[str, str, str, str]] = {
    "emms": (
        "F. Meng, W. Shao, Z. Peng, C. Jiang, K. Zhang, Y. Qiao, P. Luo",
        "2023",
        "Foundation Model is Efficient Multimodal Multitask Model Selector",
        "NeurIPS 2023 (arXiv 2308.06262)",
    ),
    "logme": (
        "K. You, Y. Liu, J. Wang, M. Long",
        "2021",
        "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
        "ICML 2021",
    ),
    "leep": (
        "C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau",
        "2020",
        "LEEP: A New Measure to Evaluate Transferability of Learned Representations",
        "ICML 2020",
    ),
    "nce": (
        "A. T. Tran, C. V. Nguyen, T. Hassner",
        "2019",
        "Transferability and Hardness of Supervised Classification Tasks",
        "ICCV 2019",
    ),
    "nleep": (
        "Y. Li, X. Jia, R. Sang, Y. Zhu, B. Green, L. Wang, B. Gong",
        "2021",
        "Ranking Neural Checkpoints",
        "CVPR 2021",
    ),
    "hscore": (
        "Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir, L. Guibas",
        "2019",
        "An Information-Theoretic Approach to Transferability in Task Transfer Learning",
        "ICIP 2019",
    ),
    "hscore_reg": (
        "S. Ibrahim, N. Ponomareva, R. Mazumder",
        "2022",
        "Newer is Not Always Better: Rethinking Transferability Metrics, Their Peculiarities, "
        "Stability and Performance",
        "ECML-PKDD 2022 (shrinkage-regularised H-score)",
    ),
    "transrate": (
        "L.-K. Huang, J. Huang, Y. Rong, Q. Yang, Y. Wei",
        "2022",
        "Frustratingly Easy Transferability Estimation",
        "ICML 2022",
    ),
    "sfda": (
        "W. Shao, X. Zhao, Y. Ge, Z. Zhang, L. Yang, X. Wang, Y. Shan, P. Luo",
        "2022",
        "Not All Models Are Equal: Predicting Model Transferability in a Self-challenging "
        "Fisher Space",
        "ECCV 2022",
    ),
    "gbc": (
        "M. Pandy, A. Agostinelli, J. Uijlings, V. Ferrari, T. Mensink",
        "2022",
        "Transferability Estimation using Bhattacharyya Class Separability",
        "CVPR 2022",
    ),
    "pactran": (
        "N. Ding, X. Chen, T. Levinboim, S. Changpinyo, R. Soricut",
        "2022",
        "PACTran: PAC-Bayesian Metrics for Estimating the Transferability of Pretrained "
        "Models to Classification Tasks",
        "ECCV 2022",
    ),
    "parc": (
        "D. Bolya, R. Mittapalli, J. Hoffman",
        "2021",
        "Scalable Diverse Model Selection for Accessible Transfer Learning",
        "NeurIPS 2021",
    ),
    "kendall": (
        "M. G. Kendall",
        "1938",
        "A New Measure of Rank Correlation",
        "Biometrika 30(1/2)",
    ),
    "weightedtau": (
        "S. Vigna",
        "2015",
        "A Weighted Correlation Index for Rankings with Ties",
        "WWW 2015 (the weighted tau of scipy.stats.weightedtau)",
    ),
}


def references() -> pd.DataFrame:
    """The references table of a report."""
    return pd.DataFrame(
        [
            {"key": key, "authors": a, "year": y, "title": t, "venue": v}
            for key, (a, y, t, v) in REFERENCES.items()
        ]
    )


def _interval(low: float, high: float) -> str:
    if np.isnan(low) or np.isnan(high):
        return "no interval (zoo too small)"
    return f"[{low:+.3f}, {high:+.3f}]"


def verdict(low: float, high: float) -> str:
    """What a 95 % interval of a difference A - B says."""
    if np.isnan(low) or np.isnan(high):
        return "cannot be judged (no interval)"
    if low > 0:
        return "clearly better"
    if high < 0:
        return "clearly worse"
    return "not distinguishable (the interval holds 0)"


def _per_target(evaluation: pd.DataFrame, paired: pd.DataFrame, method_label: str) -> list[str]:
    tau = evaluation[evaluation.metric == "weighted_tau"]
    lines = []
    for dataset, part in tau.groupby("dataset", sort=False):
        ranked = part.sort_values("value", ascending=False)
        best = ranked.iloc[0]
        tied = list(ranked.label[np.isclose(ranked.value, best.value, atol=5e-4)])
        spread = "" if np.isnan(best.low) else f", 95 % interval {_interval(best.low, best.high)}"
        names = " and ".join(tied) if len(tied) <= 3 else f"{len(tied)} selectors (tied)"
        line = f"* **{dataset}**: the best ranking is by {names} (τw = {best.value:+.3f}{spread})"
        own = part[part.label == method_label]
        if method_label in tied:
            line += f"; {method_label} is among the best"
        elif not own.empty:
            line += f"; {method_label} reaches {own.value.iloc[0]:+.3f}"
            row = paired[(paired.dataset == dataset) & (paired.label == best.label)]
            if not row.empty and np.isfinite(row.iloc[0].low):
                r = row.iloc[0]
                line += (
                    f", and {method_label} − {best.label} = {r.difference:+.3f} "
                    f"{_interval(r.low, r.high)} paired: {verdict(r.low, r.high)}"
                )
            else:
                line += " (no paired interval: the zoo is too small for a bootstrap)"
        lines.append(line + ".")
    return lines


def _claim(wins, headline: Mapping[str, float], speed: Mapping[str, float]) -> list[str]:
    lines = []
    if wins is None:
        lines.append(
            "* The paired comparison of EMMS with LogME (F-label) has no interval on this "
            "run (too few models per target), so the claim cannot be judged here."
        )
    else:
        if wins.low > 0:
            judged = "holds on this benchmark: the interval of the mean difference is above 0"
        elif wins.high < 0:
            judged = "fails on this benchmark: the interval of the mean difference is below 0"
        else:
            judged = "is not settled by this benchmark: the interval of the mean difference holds 0"
        lines.append(f"* {wins.text}. The paper's claim (EMMS ranks better) {judged}.")
    if np.isfinite(headline["gain_run"]):
        lines.append(
            f"* Relative gain of the mean weighted tau, as the abstract defines it: "
            f"{headline['gain_run']:+.1f} % here against {headline['gain_paper']:+.1f} % in "
            "the paper."
        )
    else:
        lines.append(
            "* No relative gain is given here: LogME (F-label)'s mean weighted tau is not "
            "above zero, and a percentage of a baseline that ranks no better than chance "
            f"means nothing the paper's {headline['gain_paper']:+.1f} % means."
        )
    if speed:
        lines.append(
            f"* Speed: EMMS is {speed['speedup']:.1f}× faster than LogME (F-label) here "
            f"(95 % interval {speed['low']:.1f}–{speed['high']:.1f}×, ratio of the sums of "
            f"per-call medians over {speed['calls']} calls × {speed['repeats']} repeats) "
            f"against {headline['speedup_paper']:.2f}× in the paper; the direction "
            + ("agrees." if (speed["low"] > 1) == (headline["speedup_paper"] > 1) else "differs.")
        )
    return lines


def _collapse(
    dims: pd.DataFrame,
    paired_evidence: pd.DataFrame,
    evaluation: pd.DataFrame,
    scores: pd.DataFrame | None = None,
) -> list[str]:
    if "baseline" in paired_evidence:  # EMMS (evidence) is also paired with LogME (F-label)
        paired_evidence = paired_evidence[paired_evidence.baseline == "emms"]
    collapsed = dims[dims["D >= N - 1"]]
    if collapsed.empty:
        return [
            "* No model has D ≥ N − 1 on any target of this run: EMMS's least-squares fit "
            "never collapses here."
        ]
    lines = []
    tau = evaluation[evaluation.metric == "weighted_tau"].set_index(["dataset", "method"])
    for dataset, part in collapsed.groupby("dataset", sort=False):
        n_models = (dims.dataset == dataset).sum()
        names = ", ".join(part.model)
        line = (
            f"* **{dataset}** (N = {part.N.iloc[0]}): {len(part)} of {n_models} models have "
            f"D ≥ N − 1 ({names}). Their features fit any F-label exactly after centring: the "
            "residual is zero whatever the weights"
        )
        if scores is not None:
            own = scores[
                (scores.dataset == dataset)
                & (scores.method == "emms")
                & scores.model.isin(part.model)
            ]["score"]
            if len(own) > 1 and np.ptp(own.to_numpy()) == 0:
                line += (
                    f", and EMMS gives them all the same score ({own.iloc[0]:.3g}), "
                    "so it cannot order them"
                )
        if (dataset, "emms") in tau.index:
            line += f"; EMMS's τw there is {tau.loc[(dataset, 'emms'), 'value']:+.3f}"
        row = paired_evidence[paired_evidence.dataset == dataset]
        if not row.empty:
            r = row.iloc[0]
            fixes = {
                "clearly better": "fixes it",
                "clearly worse": "makes it worse",
                "cannot be judged (no interval)": "cannot be judged without an interval",
            }.get(verdict(r.low, r.high), "does not clearly fix it")
            line += (
                f". EMMS (evidence), which chooses a ridge by maximum evidence, reaches "
                f"{r.tau_a:+.3f}: difference {r.difference:+.3f} {_interval(r.low, r.high)} "
                f"paired, so it {fixes}"
            )
        lines.append(line + ".")
    others = paired_evidence[~paired_evidence.dataset.isin(collapsed.dataset)]
    if not others.empty:
        diffs = ", ".join(
            f"{r.dataset} {r.difference:+.3f} {_interval(r.low, r.high)}"
            for r in others.itertuples()
        )
        lines.append(
            f"* Where no fit collapses, EMMS (evidence) − EMMS (exact) is {diffs}: the ridge "
            "matters only where D approaches N."
        )
    return lines


def _controls(weights: pd.DataFrame, dims: pd.DataFrame) -> list[str]:
    if weights.empty:
        return []
    fine = weights.merge(dims[["dataset", "model", "D >= N - 1"]], on=["dataset", "model"])
    fine = fine[~fine["D >= N - 1"]]
    encoders = list(dict.fromkeys(weights.encoder))
    uniform = 1.0 / len(encoders)
    mean = fine.groupby("encoder")["weight"].mean().reindex(encoders)
    lines = [
        f"* Mean EMMS weight per encoder over the models whose fit did not collapse "
        f"({fine[['dataset', 'model']].drop_duplicates().shape[0]} model-target pairs; "
        f"uniform would be 1/K = {uniform:.3f}): "
        + ", ".join(f"{e} {w:.3f}" for e, w in mean.items())
        + "."
    ]
    if "shuffled-minilm" in mean.index:
        w = mean["shuffled-minilm"]
        judged = (
            "EMMS discounts the pure-noise F-label, as its noise model predicts"
            if w < 0.5 * uniform
            else "EMMS does not discount the pure-noise F-label"
        )
        lines.append(f"* `shuffled-minilm` (labels permuted: pure noise) gets {w:.3f}: {judged}.")
    if "random-minilm" in mean.index and "minilm" in mean.index:
        r, m = mean["random-minilm"], mean["minilm"]
        if abs(r - m) < 0.1 * uniform:
            judged = (
                "EMMS trusts a meaningless but consistent code of the classes about as much as "
                "meaningful text: what it rewards here is consistency, not semantics"
            )
        elif r > m:
            judged = "the consistent random code is trusted more than the meaningful embedding"
        else:
            judged = "the meaningful embedding is preferred to a consistent random code"
        lines.append(f"* `random-minilm` gets {r:.3f} against {m:.3f} for `minilm`: {judged}.")
    return lines


def discussion(
    *,
    evaluation: pd.DataFrame,
    paired: pd.DataFrame,
    wins: Mapping,
    paired_evidence: pd.DataFrame,
    dims: pd.DataFrame,
    weights: pd.DataFrame,
    spread: pd.DataFrame,
    headline: Mapping[str, float],
    speed: Mapping[str, float] | None,
    method_label: str = "EMMS (exact)",
    scores: pd.DataFrame | None = None,
) -> str:
    """The discussion, as markdown, from this run's tables (see the module docstring)."""
    sizes = dims.groupby("dataset").size()
    n_models = f"{sizes.min()}" if sizes.min() == sizes.max() else f"{sizes.min()}-{sizes.max()}"
    noise = ", ".join(f"{d} {v:.1f}" for d, v in spread["range_over_seed_std"].items())
    parts = [
        "### Which selector wins, per target",
        *_per_target(evaluation, paired, method_label),
        "",
        "### The paper's claim: EMMS against LogME on the same F-labels",
        *_claim(wins.get("logme_flabel"), headline, speed or {}),
        "",
        "### Where EMMS's fit collapses (D ≥ N − 1)",
        *_collapse(dims, paired_evidence, evaluation, scores),
        "",
        "### What the control encoders show",
        *(_controls(weights, dims) or ["* No EMMS weights on this run."]),
        "",
        "### How far to trust these numbers",
        f"* Each tau is over {n_models} models. The truth's range across the zoo over its "
        f"seed noise is {noise} (per target): the larger, the better defined the ranking.",
        "* Intervals are 95 % bootstrap percentiles over the zoo with the truth redrawn from "
        "its seed noise; differences are paired (the same resamples for both selectors).",
    ]
    return "\n".join(parts) + "\n"
