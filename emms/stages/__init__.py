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

__all__ = ["record_time"]


@contextmanager
def record_time(paths, stage: str):
    """Time the body and store ``{stage: seconds}`` in ``paths.timings``."""
    start = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - start, 1)
    timings = json.loads(paths.timings.read_text()) if paths.timings.is_file() else {}
    timings[stage] = seconds
    atomic_write_text(paths.timings, json.dumps(timings, indent=2, sort_keys=True) + "\n")
