"""``truth``: fine-tune every model on every target with every seed -> ``cache/TASK/truth.csv``.

One row per (dataset, model, seed) with the task's truth metric; the seconds of each run
go to ``reports/timings/TASK.json``, not into the table (outputs stay pure)."""

from __future__ import annotations

import csv
import io

from tqdm.auto import tqdm

from emms.cache import atomic_write_text
from emms.paths import TaskPaths

from . import configure_torch, record_time


def run(task, params, root=".") -> None:
    paths = TaskPaths(task.name, root)
    block = params.task(task.name)
    configure_torch(params.compute)
    with record_time(paths, "truth"):
        targets = {name: task.load_target(paths, name) for name in block.data.targets}
        jobs = [
            (target, model, seed)
            for target in block.data.targets
            for model in block.models
            for seed in block.finetune.seeds
        ]
        rows = []
        for target, model, seed in tqdm(jobs, desc="fine-tuning"):
            value = task.finetune(block, paths, model, targets[target], seed)
            rows.append((target, model, seed, f"{value:.6f}"))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(task.truth_columns)
        writer.writerows(rows)
        atomic_write_text(paths.truth, buffer.getvalue())
