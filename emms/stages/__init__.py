"""The pipeline's stages, one module each, as ``dvc.yaml`` runs them.

``python -m emms STAGE --task TASK`` calls ``emms.stages.STAGE.run(task, params, root)``.
Each stage imports only the code it runs (``dvc.yaml`` lists exactly that as its deps;
tests/test_house.py checks it), writes only under its outputs, and writes every file
atomically. Wall-clock seconds go to ``reports/timings/TASK.json`` (:func:`record_time`),
never into a cached output, so a rerun that computes the same bytes leaves every DVC hash
unchanged.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

from emms.cache import atomic_write_text

__all__ = ["record_time", "configure_torch"]


def configure_torch(compute) -> None:
    """Fix what training results depend on besides the seed: the thread count (a sum's
    order changes with it) and torch's deterministic algorithms. The instruction set is
    the machine's; README, "Reproducibility", says how far it moves the results."""
    import torch

    torch.set_num_threads(compute.threads)
    torch.use_deterministic_algorithms(compute.deterministic)


@contextmanager
def record_time(paths, stage: str):
    """Time the body and store ``{stage: seconds}`` in ``paths.timings``."""
    start = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - start, 1)
    timings = json.loads(paths.timings.read_text()) if paths.timings.is_file() else {}
    timings[stage] = seconds
    atomic_write_text(paths.timings, json.dumps(timings, indent=2, sort_keys=True) + "\n")
