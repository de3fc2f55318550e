"""How far can the committed metrics move without anything being wrong?

CI reruns the pipeline and compares its metrics with the committed ones
(`evaluation.ci_tolerance`). On the same machine the pipeline is bit-for-bit
deterministic; on another CPU, floating-point differences in training act like another
fine-tuning seed. This script measures the size of that: it recomputes every metric of
the recognition report with the ground truth of ONE fine-tuning seed at a time (instead of
their mean) and prints the largest change of each metric against the committed values.

    python benchmarks/metric_drift.py     # after `make repro`
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from emms.evaluation import METRICS
from emms.paths import TaskPaths
from emms.reports.experiment import load_truth
from emms.tasks import get_task


def main() -> None:
    scores = pd.read_csv("reports/tables/recognition/scores.csv")
    task = get_task("recognition")
    truth = load_truth(task, TaskPaths(task.name))
    committed = json.loads(Path("reports/metrics/recognition.json").read_text())
    worst: dict[str, float] = {}
    for seed, per_seed in truth.groupby("seed"):
        merged = scores.merge(per_seed, on=["dataset", "model"])
        for (dataset, method), group in merged.groupby(["dataset", "method"]):
            for metric, function in METRICS.items():
                value = function(group["score"], group["test_accuracy"])
                change = abs(value - committed[dataset][method][metric])
                worst[metric] = max(worst.get(metric, 0.0), change)
                print(f"seed {seed} {dataset:14s} {method:18s} {metric:13s} {change:.3f}")
    print("\nlargest change per metric when the truth is one seed instead of the mean:")
    for metric, change in worst.items():
        print(f"  {metric:13s} {change:.3f}")


if __name__ == "__main__":
    main()
