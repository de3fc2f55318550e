"""``truth``: fine-tune every model on every target with every seed -> ``cache/TASK/truth.csv``.

One row per (dataset, model, seed) with the task's truth metric (and any secondary metric
columns the task declares); the seconds of each run go to ``reports/timings/TASK.json``,
not into the table (outputs stay pure). A task may run its jobs in ``truth_workers``
processes (each single-threaded and seeded, so the table does not depend on how many)."""

from __future__ import annotations

import csv
import io
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

from tqdm.auto import tqdm

from emms.cache import atomic_write_text
from emms.paths import TaskPaths

from . import configure_torch, record_time


def _values(task, value) -> list[float]:
    metrics = task.truth_columns[3:]
    values = [value[m] for m in metrics] if isinstance(value, Mapping) else [value]
    if len(values) != len(metrics):
        raise ValueError(f"{task.name}.finetune returned {value!r}, not {metrics}.")
    return values


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
        workers = task.truth_workers(block)
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [
                    pool.submit(task.finetune, block, paths, model, targets[target], seed)
                    for target, model, seed in jobs
                ]
                values = []
                for job, future in zip(jobs, futures, strict=True):
                    values.append(future.result())
                    tqdm.write(f"{job}: {values[-1]}")  # progress, in job order
        else:
            values = [
                task.finetune(block, paths, model, targets[target], seed)
                for target, model, seed in tqdm(jobs, desc="fine-tuning")
            ]
        rows = [
            (target, model, seed, *(f"{v:.6f}" for v in _values(task, value)))
            for (target, model, seed), value in zip(jobs, values, strict=True)
        ]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(task.truth_columns)
        writer.writerows(rows)
        atomic_write_text(paths.truth, buffer.getvalue())
