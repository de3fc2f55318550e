"""The report's scoring step as independent (target, model) jobs.

One job runs every selector of the registry on one model's cached features for one
target (:func:`emms.reports.experiment.score_zoo` on that model alone) and writes its
rows atomically to ``OUT/scores/TARGET/MODEL.json``: the scores with their seconds,
EMMS's weights per encoder and the warnings the calls raised. :func:`score_pairs` runs
the jobs in this process, or as one Dask task each when the environment variable
``EMMS_DASK`` names a scheduler (the variable and schedulers of the features stage,
:mod:`emms.stages.features`: ``local:N`` or ``tcp://host:8786`` with workers that see
this project at the same path), and reads the files back in (target, model) order, so
the tables are the same rows in the same order either way.

Scores do not depend on where a job runs: every job runs its BLAS on ``compute.threads``
threads (params.yaml), as the order of a product's partial sums follows the thread count
(a worker's default of 1 thread moved scores by up to 9e-13). Seconds do depend on it: they are the wall-clock of the
worker that ran the job, and with ``local:N`` N jobs share the machine's cores. The
committed reports are scored in-process (``EMMS_DASK`` unset), one call at a time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from emms.cache import atomic_write_text

__all__ = ["score_pair", "score_pairs", "pair_path"]


def pair_path(out_dir: str | os.PathLike, dataset: str, model: str) -> Path:
    return Path(out_dir) / "scores" / dataset / f"{model}.json"


def score_pair(task_name: str, dataset: str, model: str, out_dir: str, root: str) -> str:
    """Score one model on one target by every selector; returns the written path.
    Self-contained (reads params, task and caches from ``root``), so a Dask worker can
    run it."""
    from emms.params import load_params
    from emms.tasks import get_task

    from .experiment import load_target_inputs, score_zoo

    params = load_params(Path(root) / "params.yaml")
    task = get_task(task_name)
    block = params.task(task_name)
    inputs = load_target_inputs(
        task, block, dataset, params.check_encoders(), root=root, models=[model]
    )
    caught: list[dict] = []
    # the BLAS thread count decides the order of a product's partial sums: fixed, so a
    # score does not depend on where the job runs (a Dask worker defaults to 1 thread)
    with threadpool_limits(limits=params.compute.threads, user_api="blas"):
        scores, weights = score_zoo(inputs, progress=False, caught=caught)
    path = pair_path(out_dir, dataset, model)
    document = {
        "scores": scores.to_dict(orient="records"),
        "weights": weights.to_dict(orient="records"),
        "warnings": caught,
    }
    atomic_write_text(path, json.dumps(document, indent=1) + "\n")
    return str(path)


def score_pairs(
    task_name: str,
    datasets: list[str],
    models: list[str],
    out_dir: str | os.PathLike,
    root: str | os.PathLike = ".",
    *,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Every (target, model) job, here or on ``EMMS_DASK``'s scheduler; returns
    ``(scores, weights, warnings)`` in (target, model) order."""
    from tqdm.auto import tqdm

    from emms.stages.features import DASK_VARIABLE, dask_client

    out_dir, root = os.path.abspath(out_dir), os.path.abspath(root)
    pairs = [(dataset, model) for dataset in datasets for model in models]
    scheduler = os.environ.get(DASK_VARIABLE)
    if not scheduler:
        for dataset, model in tqdm(pairs, desc="scoring", disable=not progress):
            score_pair(task_name, dataset, model, out_dir, root)
    else:
        with dask_client(scheduler) as client:
            from distributed import as_completed

            futures = [
                client.submit(score_pair, task_name, d, m, out_dir, root, pure=False)
                for d, m in pairs
            ]
            for future in tqdm(
                as_completed(futures), total=len(futures), desc="scoring", disable=not progress
            ):
                future.result()  # re-raises a worker's error here, naming its input
    documents = [json.loads(pair_path(out_dir, d, m).read_text()) for d, m in pairs]
    scores = pd.DataFrame([row for doc in documents for row in doc["scores"]])
    weights = pd.DataFrame([row for doc in documents for row in doc["weights"]])
    return scores, weights, [row for doc in documents for row in doc["warnings"]]
