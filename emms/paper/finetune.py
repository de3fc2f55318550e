"""What every paper-scale fine-tuning shares: the recipe block, the optimiser and its
schedule, determinism, and the truth table built one cached (dataset, model, seed) row at
a time.

A task's fine-tuning module (:mod:`emms.paper.text_finetune`,
:mod:`emms.paper.vqa_finetune`, :mod:`emms.paper.referring_finetune`) defines its recipe
(a pydantic model read from the ``finetune:`` block of ``params/paper/TASK.yaml``) and
one function that fine-tunes one model with one seed and returns its metrics; this module
runs the loop around it:

* each row is cached on its own (``CACHE/paper/TASK/truth/DATASET/MODEL-seedS.json``,
  written atomically) with the fingerprint of the zoo entry, the recipe and the run
  settings, so a run that stops resumes at the next unfinished fine-tune and a changed
  recipe is never read from an old row;
* torch's deterministic algorithms are on while it runs (warn-only on CUDA, where some
  kernels have no deterministic version) and restored after;
* float16 autocast is refused: it needs loss scaling, which these recipes do not do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ValidationError

from emms.cache import atomic_write_text

from .config import PaperRunError, RunConfig

__all__ = [
    "FINETUNING",
    "run_task_finetuning",
    "load_finetune_block",
    "adamw_warmup_linear",
    "deterministic",
    "seeded",
    "check_precision",
    "finetune_rows",
    "write_truth",
    "run_image_text_finetuning",
]


#: task -> the module whose ``run_finetuning(cfg, out)`` makes its truth table
FINETUNING = {
    "textqa": "emms.paper.text_finetune",
    "vqa": "emms.paper.vqa_finetune",
    "referring": "emms.paper.referring_finetune",
}

#: tasks whose truth is a published table (data/reference), not fine-tuned here
_PUBLISHED = {
    "recognition": "data/reference/finetune_{cnn,vit}_classification.csv",
    "captioning": "data/reference/finetune_captioning_bleu4.csv",
}


def run_task_finetuning(cfg: RunConfig, out: str | Path) -> pd.DataFrame:
    """The truth table of ``cfg.task`` by its fine-tuning module (:data:`FINETUNING`)."""
    import importlib

    if cfg.task in _PUBLISHED:
        raise PaperRunError(
            f"{cfg.task}'s ground truth is the paper's published table "
            f"({_PUBLISHED[cfg.task]}), which `run` reads; nothing is fine-tuned for it."
        )
    if cfg.task not in FINETUNING:
        raise PaperRunError(
            f"no paper-scale fine-tuning for {cfg.task!r}; built for {sorted(FINETUNING)}."
        )
    return importlib.import_module(FINETUNING[cfg.task]).run_finetuning(cfg, out)


def load_finetune_block(cfg: RunConfig, recipe_class: type[BaseModel], module: str):
    """The config's ``finetune:`` block as ``recipe_class`` (its defaults where the block
    is absent); a bad field stops with its dotted name and the module that documents it."""
    import yaml

    block = (yaml.safe_load(cfg.config_path.read_text()) or {}).get("finetune") or {}
    try:
        return recipe_class.model_validate(block)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise PaperRunError(
            f"{cfg.config_path}: finetune.{where}: {problem['msg']} (the fields and their "
            f"defaults are in {module})."
        ) from None


def adamw_warmup_linear(groups, *, weight_decay: float, warmup: float, steps: int):
    """AdamW over parameter groups ``[(parameters, lr), ...]`` with weight decay on the
    matrices only (not on biases and normalisation weights, BERT's and ViLT's rule),
    linear warm-up over the first ``warmup`` fraction of ``steps`` then linear decay to
    0. Returns ``(optimizer, scheduler)``; call ``scheduler.step()`` after every step."""
    import torch

    param_groups = []
    for parameters, lr in groups:
        trainable = [p for p in parameters if p.requires_grad]
        for decay in (True, False):
            chosen = [p for p in trainable if (p.ndim > 1) == decay]
            if chosen:
                param_groups.append(
                    {"params": chosen, "lr": lr, "weight_decay": weight_decay if decay else 0.0}
                )
    optimizer = torch.optim.AdamW(param_groups)
    ramp = math.ceil(warmup * steps)

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        return max(0.0, (steps - step) / max(1, steps - ramp))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@contextmanager
def deterministic(device):
    """torch's deterministic algorithms on inside the block (warn-only on CUDA), then the
    previous setting back."""
    import torch

    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@contextmanager
def seeded(seed: int, device):
    """torch's global random state (CPU, and ``device`` when it is a GPU) seeded with
    ``seed`` inside the block and restored after: a new head's initial weights and every
    dropout mask of a fine-tune then depend on its seed alone, not on the fine-tunes that
    ran before it in the process (so a resumed run equals an uninterrupted one)."""
    import torch

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def check_precision(device, precision: str) -> None:
    """Refuse float16 autocast for training (no loss scaling here)."""
    if device.type == "cuda" and precision == "float16":
        raise PaperRunError(
            "fine-tuning under float16 autocast needs loss scaling, which this recipe does "
            "not do (gradients would underflow); use --precision bfloat16 (the default) or "
            "float32."
        )


def _row_path(cfg: RunConfig, dataset: str, model: str, seed: int) -> Path:
    return cfg.task_cache() / "truth" / dataset / f"{model}-seed{seed}.json"


def finetune_rows(
    cfg: RunConfig,
    recipe: BaseModel,
    seeds,
    finetune_one: Callable[[str, str, int], dict[str, float]],
    *,
    device,
    settings: dict | None = None,
) -> list[dict]:
    """Every (dataset, model, seed) row of the truth table, in that order: from its cache
    file when the zoo entry, ``recipe`` and ``settings`` (the run settings the result
    depends on) match, else ``finetune_one(dataset, model, seed)`` now, cached atomically."""
    rows = []
    for dataset in cfg.datasets:
        for name in cfg.models:
            for seed in seeds:
                path = _row_path(cfg, dataset, name, seed)
                fingerprint = json.loads(
                    json.dumps(
                        {
                            "entry": asdict(cfg.zoo.models[name]),
                            "recipe": recipe.model_dump(),
                            **(settings or {}),
                        }
                    )
                )
                if path.is_file():
                    cached = json.loads(path.read_text())
                    if cached.get("fingerprint") == fingerprint:
                        rows.append(cached["row"])
                        continue
                row = {"dataset": dataset, "model": name, "seed": seed}
                row |= finetune_one(dataset, name, seed)
                document = {"row": row, "fingerprint": fingerprint, "device": str(device)}
                atomic_write_text(path, json.dumps(document, indent=1) + "\n")
                rows.append(row)
    return rows


def write_truth(rows: list[dict], task: str, out: str | Path) -> pd.DataFrame:
    """The truth table (CSV at ``out``) in the embedded task's columns: one format at
    both scales, the one ``python -m emms.paper run --truth`` reads."""
    from emms.tasks import get_task

    table = pd.DataFrame(rows, columns=list(get_task(task).truth_columns))
    atomic_write_text(Path(out), table.to_csv(index=False, float_format="%.6f"))
    return table


def run_image_text_finetuning(
    cfg: RunConfig, out: str | Path, recipe, *, model_kind, finetune_model
) -> pd.DataFrame:
    """The run of an image-text task (VQA, referring): every model checked before any
    training (weights, a model type with a rule, image processor and tokenizer), each
    dataset's train split and ``recipe.eval_split`` read once, then
    ``finetune_model(entry, cfg, recipe, train, dev, seed=, device=)`` per row not cached
    yet; the truth table written to ``out`` and returned."""
    from emms.datasets.paper import read_paper_dataset
    from emms.models.paper_zoo import check_weights

    from .extract import resolve_device
    from .vqa_extract import load_inputs

    device = resolve_device(cfg.device)
    check_precision(device, cfg.precision)
    for name in cfg.models:
        check_weights(cfg.zoo.models[name], cfg.weights)
        model_kind(cfg.zoo.models[name], cfg)
        load_inputs(cfg.zoo.models[name], cfg)
    splits = {
        name: {
            role: read_paper_dataset(
                name, cfg.data, split=split, **cfg.dataset_options.get(name, {})
            )
            for role, split in (("train", "train"), ("dev", recipe.eval_split[name]))
        }
        for name in cfg.datasets
    }

    def finetune_one(dataset: str, name: str, seed: int) -> dict[str, float]:
        entry, train, dev = cfg.zoo.models[name], splits[dataset]["train"], splits[dataset]["dev"]
        return finetune_model(entry, cfg, recipe, train, dev, seed=seed, device=device)

    with deterministic(device):
        rows = finetune_rows(
            cfg,
            recipe,
            recipe.seeds,
            finetune_one,
            device=device,
            settings={"max_length": cfg.max_length, "precision": cfg.precision},
        )
    return write_truth(rows, cfg.task, out)
