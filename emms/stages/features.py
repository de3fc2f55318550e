"""``features``: every model's features (and source-head probabilities, where the task
has them) on every target's training split -> ``cache/TASK/features``.

Each (model, target) pair is independent and writes its own cache files atomically, so
the pairs can run anywhere: in this process by default, or as one Dask task each when
the environment variable ``EMMS_DASK`` names a scheduler (``tcp://host:8786`` for a
cluster whose workers see this project at the same path, or ``local:N`` for a
``LocalCluster`` of N single-threaded worker processes started for the stage). The
variable is not a DVC param on purpose: where the pairs run does not change a byte of
what they write (every worker fixes the same torch threads and deterministic
algorithms, ``compute`` in params.yaml; tests/test_pipeline.py compares the bytes).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from tqdm.auto import tqdm

from emms.cache import fingerprint, save_array
from emms.paths import TaskPaths

from . import configure_torch, record_time

#: the environment variable naming the Dask scheduler (module doc)
DASK_VARIABLE = "EMMS_DASK"


class SchedulerError(ValueError):
    """``EMMS_DASK`` names no usable scheduler."""


def extract_pair(task, params, model: str, target, root=".") -> str:
    """Features (and source probabilities) of one model on one loaded target
    (:class:`~emms.tasks.base.TargetData`), cached; returns the features path.
    Self-contained, so that a Dask worker can run it."""
    paths = TaskPaths(task.name, root)
    block = params.task(task.name)
    configure_torch(params.compute)
    entry = next(e for e in block.zoo.models if e["name"] == model)
    meta = {
        "task": task.name,
        "model": model,
        "recipe": fingerprint(entry),
        "dataset": target.name,
        "split": "train",
    }
    outputs = task.model_outputs(block, paths, model, target)
    save_array(paths.features(target.name, model), outputs["features"], **meta)
    if task.has_source_probs:
        save_array(paths.source_probs(target.name, model), outputs["source_probs"], **meta)
    return str(paths.features(target.name, model))


def run(task, params, root=".") -> None:
    paths = TaskPaths(task.name, root)
    block = params.task(task.name)
    # each target read once (a missing input stops here, before any progress bar)
    targets = [task.load_target(paths, name) for name in block.data.targets]
    pairs = [(model, target) for model in block.models for target in targets]
    with record_time(paths, "features"):
        scheduler = os.environ.get(DASK_VARIABLE)
        if not scheduler:
            for model, target in tqdm(pairs, desc="features"):
                extract_pair(task, params, model, target, root)
            return
        with dask_client(scheduler) as client:
            from distributed import as_completed

            root = os.path.abspath(root)
            futures = [
                client.submit(extract_pair, task, params, m, t, root, pure=False) for m, t in pairs
            ]
            for future in tqdm(as_completed(futures), total=len(futures), desc="features"):
                future.result()  # re-raises a worker's error here, naming the pair's input


@contextmanager
def dask_client(scheduler: str):
    """A ``distributed.Client`` for ``EMMS_DASK``: ``local:N`` or a scheduler address."""
    try:
        import distributed
    except ImportError:  # pragma: no cover - a pinned dependency
        raise SchedulerError(
            f"{DASK_VARIABLE}={scheduler} needs dask.distributed: pip install "
            '"dask[distributed]", or unset the variable.'
        ) from None
    if scheduler.startswith("local:"):
        count = scheduler.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise SchedulerError(f"{DASK_VARIABLE}={scheduler}: write local:N with N >= 1 workers.")
        with (
            distributed.LocalCluster(
                n_workers=int(count),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    if "://" not in scheduler:
        raise SchedulerError(
            f"{DASK_VARIABLE}={scheduler}: give a scheduler address (tcp://host:8786) or local:N."
        )
    with distributed.Client(scheduler) as client:
        yield client
