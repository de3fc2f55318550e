"""``zoo``: pre-train every recipe of ``TASK.zoo.models`` -> ``models/TASK``."""

from __future__ import annotations

from emms.paths import TaskPaths

from . import configure_torch, record_time


def run(task, params, root=".") -> None:
    paths = TaskPaths(task.name, root)
    configure_torch(params.compute)
    with record_time(paths, "zoo"):
        task.pretrain_zoo(params.task(task.name), paths)
