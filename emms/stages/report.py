"""``report``: execute ``notebooks/TASK.ipynb`` with papermill -> ``reports/TASK.*``."""

from __future__ import annotations

from emms.paths import TaskPaths

from . import record_time


def run(task, params, root=".") -> None:
    from emms.reports.notebook import run_notebook

    paths = TaskPaths(task.name, root)
    with record_time(paths, "report"):
        run_notebook(paths)
