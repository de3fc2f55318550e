"""The five experiments of the paper as tasks: :data:`TASKS` is the only list of them.

``get_task(name)`` returns the task object whose hooks the stages call
(:mod:`emms.tasks.base` says what a task declares).
"""

from __future__ import annotations

from importlib import import_module

from .base import LABEL_FORMATS, TargetData, Task, TaskNotBuilt, label_text

__all__ = ["LABEL_FORMATS", "TASKS", "Task", "TargetData", "TaskNotBuilt", "get_task", "label_text"]

#: task name -> "module:Class". Imported on first use, so a stage of one task imports (and
#: ``dvc.yaml`` lists) only that task's module.
TASKS: dict[str, str] = {
    "recognition": "emms.tasks.recognition:Recognition",
    "captioning": "emms.tasks.declared:Captioning",
    "vqa": "emms.tasks.declared:VisualQA",
    "textqa": "emms.tasks.textqa:TextQA",
    "referring": "emms.tasks.declared:Referring",
}


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name lists the valid ones."""
    if name not in TASKS:
        raise UnknownTaskError(f"unknown task {name!r}; the tasks are {sorted(TASKS)}.")
    module, cls = TASKS[name].split(":")
    task = getattr(import_module(module), cls)()
    if task.name != name:
        raise RuntimeError(f"TASKS[{name!r}] builds a task named {task.name!r}.")
    return task
