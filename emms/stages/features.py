"""``features``: every model's features (and source-head probabilities, where the task
has them) on every target's training split -> ``cache/TASK/features``."""

from __future__ import annotations

from tqdm.auto import tqdm

from emms.cache import fingerprint, save_array
from emms.paths import TaskPaths

from . import configure_torch, record_time


def run(task, params, root=".") -> None:
    paths = TaskPaths(task.name, root)
    block = params.task(task.name)
    configure_torch(params.compute)
    with record_time(paths, "features"):
        targets = {name: task.load_target(paths, name) for name in block.data.targets}
        recipes = {entry["name"]: fingerprint(entry) for entry in block.zoo.models}
        for model in tqdm(block.models, desc="features"):
            for name, target in targets.items():
                meta = {
                    "task": task.name,
                    "model": model,
                    "recipe": recipes[model],
                    "dataset": name,
                    "split": "train",
                }
                outputs = task.model_outputs(block, paths, model, target)
                save_array(paths.features(name, model), outputs["features"], **meta)
                if task.has_source_probs:
                    probs = outputs["source_probs"]
                    save_array(paths.source_probs(name, model), probs, **meta)
