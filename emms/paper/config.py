"""The configuration of a paper-scale run: the zoo of ``params/paper/<task>.yaml`` and its
optional ``run:`` block, overridden by the command line.

``run:`` keys (all optional):

``datasets``
    the targets (default: every dataset of the task in the registry that has a row in
    the zoo's reference tables, else every dataset of the task).
``dataset_options``
    reader options per dataset, e.g. ``{cifar10: {allow_pickle: true}}``.
``max_samples`` / ``sample_seed``
    score on a seeded random sample of at most this many training images (default: all).
``encoders``
    F-label encoders, names of :data:`emms.models.flabels.ENCODERS` (default: the paper's
    ``clip-vit-g-14``, ``bert-large-uncased``, ``gpt2-medium``).
``encoder_dirs``
    encoder name -> local folder (default ``<weights>/<encoder name>``).
``template``
    class name -> text, ``{name}`` substituted (default ``"{name}"``).
``precision``
    ``bfloat16`` (default), ``float16`` or ``float32``: the autocast dtype on CUDA (CPU
    runs float32). bfloat16 keeps float32's exponent range: float16 flushed the ~1e-9
    features of a randomly initialised MobileNetV2 to zero on an H100.
``batch_size``, ``num_workers``
    of the image loader (text QA: questions per batch; no workers).
``image_size``
    resize and centre-crop every image to this size instead of the model's own input
    size (a debugging / smoke-test option; recorded in the recipe).
``max_length``
    text QA: tokens of ``question [SEP] context`` a model reads (default 384, the usual
    SQuAD recipe; longer contexts are truncated, see :mod:`emms.paper.text_extract`).
``selectors``
    the selectors to score (default: every registered one that applies).
``n_boot``
    bootstrap resamples of the tau intervals (zoos of 5+ models).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emms.models.paper_zoo import PaperZoo, load_zoo

__all__ = ["PaperRunError", "RunConfig", "PAPER_ENCODERS", "TASK_LABEL_FORMAT", "load_run_config"]

#: The paper's three F-label encoders (§4, "implementation details").
PAPER_ENCODERS = ("clip-vit-g-14", "bert-large-uncased", "gpt2-medium")

#: Label format of each task (see emms.tasks.base.LABEL_FORMATS).
TASK_LABEL_FORMAT = {
    "recognition": "class",
    "captioning": "caption",
    "vqa": "answer",
    "textqa": "span",
    "referring": "box",
}

_RUN_KEYS = {
    "datasets", "dataset_options", "max_samples", "sample_seed", "encoders", "encoder_dirs",
    "template", "precision", "batch_size", "num_workers", "image_size", "max_length",
    "selectors", "n_boot", "device",
}  # fmt: skip


class PaperRunError(ValueError):
    """A paper-scale run cannot go on; the message names the problem and the fix."""


@dataclass
class RunConfig:
    task: str
    config_path: Path
    zoo: PaperZoo
    data: Path
    weights: Path
    cache: Path
    out: Path
    device: str = "auto"
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_samples: int | None = None
    sample_seed: int = 0
    encoders: list[str] = field(default_factory=lambda: list(PAPER_ENCODERS))
    encoder_dirs: dict[str, Path] = field(default_factory=dict)
    template: str = "{name}"
    precision: str = "bfloat16"
    batch_size: int = 64
    num_workers: int = 0
    image_size: int | None = None
    max_length: int = 384
    selectors: list[str] | None = None
    n_boot: int = 1000
    truth: Path | None = None
    progress: bool = True

    @property
    def label_format(self) -> str:
        return TASK_LABEL_FORMAT[self.task]

    def task_cache(self) -> Path:
        return self.cache / "paper" / self.task

    def features_path(self, dataset: str, model: str) -> Path:
        return self.task_cache() / "features" / dataset / f"{model}.npy"

    def source_probs_path(self, dataset: str, model: str) -> Path:
        return self.task_cache() / "source_probs" / dataset / f"{model}.npy"

    def flabels_path(self, dataset: str, encoder: str) -> Path:
        return self.task_cache() / "flabels" / dataset / f"{encoder}.npy"

    def report_dir(self) -> Path:
        return self.out / f"{self.task}-paper"


def _default_datasets(task: str, zoo: PaperZoo, repo: Path) -> list[str]:
    import pandas as pd

    from emms.datasets.paper import PAPER_DATASETS

    names = [n for n, spec in PAPER_DATASETS.items() if spec.task == task]
    rows: set[str] = set()
    for group in zoo.groups.values():
        if group.get("reference"):
            path = Path(group["reference"])
            path = path if path.is_absolute() else repo / path
            if path.is_file():
                rows |= set(pd.read_csv(path)["dataset"])
    if zoo.reference:
        path = Path(zoo.reference)
        path = path if path.is_absolute() else repo / path
        if path.is_file():
            rows |= set(pd.read_csv(path)["dataset"])
    return [n for n in names if n in rows] or names


def load_run_config(
    task: str,
    config: str | os.PathLike,
    data: str | os.PathLike,
    weights: str | os.PathLike,
    *,
    out: str | os.PathLike = "reports",
    cache: str | os.PathLike = "cache",
    device: str | None = None,
    truth: str | os.PathLike | None = None,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunConfig:
    """Read the zoo and its ``run:`` block and check every name in it."""
    from emms.datasets.paper import PAPER_DATASETS
    from emms.models.flabels import ENCODERS

    if task not in TASK_LABEL_FORMAT:
        raise PaperRunError(f"unknown task {task!r}; choose one of {sorted(TASK_LABEL_FORMAT)}.")
    path = Path(config)
    if not path.is_file():
        raise PaperRunError(f"config {path} not found; pass --config params/paper/{task}.yaml.")
    zoo = load_zoo(path)
    if zoo.task != task:
        raise PaperRunError(f"config {path} is the {zoo.task!r} zoo, not {task!r}.")
    try:
        block = (yaml.safe_load(path.read_text()) or {}).get("run") or {}
    except yaml.YAMLError as error:
        raise PaperRunError(f"config {path} is not valid YAML ({error}).") from None
    block.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(block) - _RUN_KEYS
    if unknown:
        raise PaperRunError(
            f"{path}: unknown run keys {sorted(unknown)}; allowed: {sorted(_RUN_KEYS)}."
        )
    repo = Path(__file__).resolve().parents[2]
    chosen = datasets or block.get("datasets") or _default_datasets(task, zoo, repo)
    for name in chosen:
        if name not in PAPER_DATASETS or PAPER_DATASETS[name].task != task:
            raise PaperRunError(
                f"dataset {name!r} is not a {task} dataset of the paper; choose from "
                f"{sorted(n for n, s in PAPER_DATASETS.items() if s.task == task)}."
            )
    chosen_models = models or zoo.ranked
    for name in chosen_models:
        if name not in zoo.ranked:
            raise PaperRunError(
                f"model {name!r} is not in the zoo {path}; choose from {sorted(zoo.ranked)}"
                + (" (the encoder/decoder pairs)." if zoo.pairs else ".")
            )
    encoders = list(block.get("encoders") or PAPER_ENCODERS)
    for name in encoders:
        if name not in ENCODERS:
            raise PaperRunError(
                f"{path}: unknown F-label encoder {name!r}; choose from {sorted(ENCODERS)}."
            )
    precision = block.get("precision", "bfloat16")
    if precision not in ("float16", "bfloat16", "float32"):
        raise PaperRunError(f"{path}: precision {precision!r} is not float16/bfloat16/float32.")
    device = str(device or block.get("device") or "auto")  # --device, else run.device
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise PaperRunError(f"device {device!r} is not auto, cpu or cuda[:N].")
    return RunConfig(
        task=task,
        config_path=path,
        zoo=zoo,
        data=Path(data),
        weights=Path(weights),
        cache=Path(cache),
        out=Path(out),
        device=device,
        datasets=list(chosen),
        models=list(chosen_models),
        dataset_options={k: dict(v or {}) for k, v in (block.get("dataset_options") or {}).items()},
        max_samples=block.get("max_samples"),
        sample_seed=int(block.get("sample_seed", 0)),
        encoders=encoders,
        encoder_dirs={k: Path(v) for k, v in (block.get("encoder_dirs") or {}).items()},
        template=str(block.get("template", "{name}")),
        precision=precision,
        batch_size=int(block.get("batch_size", 64)),
        num_workers=int(block.get("num_workers", 0)),
        image_size=block.get("image_size"),
        max_length=int(block.get("max_length", 384)),
        selectors=block.get("selectors"),
        n_boot=int(block.get("n_boot", 1000)),
        truth=Path(truth) if truth else None,
        progress=progress,
    )
