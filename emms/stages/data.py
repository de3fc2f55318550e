"""``data``: the task's raw dataset (pinned) -> ``data/processed/TASK``."""

from __future__ import annotations

from emms.paths import TaskPaths, raw_dir

from . import record_time


def run(task, params, root=".") -> None:
    paths = TaskPaths(task.name, root)
    with record_time(paths, "data"):
        task.build_data(
            params.task(task.name), paths, raw_dir(params.tasks[task.name].dataset, root)
        )
