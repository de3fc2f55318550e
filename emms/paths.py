"""Every file the pipeline reads or writes, spelled once.

A stage, a report and a test ask this module where things are; nothing else builds a
data, cache or report path. All paths are relative to the project root (the folder that
holds ``dvc.yaml``), so the same code serves the pipeline, the notebooks and a test that
runs the pipeline in a temporary copy.

    data/raw/DATASET/                      raw bytes of one embedded dataset (pinned)
    data/processed/TASK/source/            the task's pre-training (source) data
    data/processed/TASK/TARGET/            one target: train/test inputs and labels
    models/TASK/MODEL.safetensors (.json)  the zoo, pre-trained in the pipeline
    cache/TASK/features/TARGET/MODEL.npy   features of the training split (+ .json sidecar)
    cache/TASK/features/TARGET/MODEL.source_probs.npy   source-head probabilities
    cache/TASK/flabels/TARGET/ENCODER.npy  F-labels of the training split
    cache/TASK/truth.csv                   fine-tuning ground truth, one row per run
    reports/TASK.ipynb, reports/TASK.html  the executed report
    reports/{figures,tables}/TASK/         its figures and tables
    reports/metrics/TASK.json              the numbers CI compares
    reports/timings/TASK.json              wall-clock of each stage (not a DVC output:
                                           outputs are pure functions of their inputs)

``dvc.yaml`` spells the same layout with ``${key}`` for the task; tests/test_house.py
checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RAW", "TaskPaths", "raw_dir"]

RAW = Path("data/raw")


def raw_dir(dataset: str, root: str | Path = ".") -> Path:
    """The raw folder of one embedded dataset (``data/raw/DATASET``)."""
    return Path(root) / RAW / dataset


@dataclass(frozen=True)
class TaskPaths:
    """The data, model, cache and report paths of one task."""

    task: str
    root: Path = Path(".")

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # --- data and models --------------------------------------------------------------
    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed" / self.task

    def processed_target(self, target: str) -> Path:
        return self.processed / target

    @property
    def source(self) -> Path:
        return self.processed / "source"

    @property
    def models(self) -> Path:
        return self.root / "models" / self.task

    def checkpoint(self, model: str) -> Path:
        return self.models / f"{model}.safetensors"

    # --- cached arrays ------------------------------------------------------------------
    @property
    def cache(self) -> Path:
        return self.root / "cache" / self.task

    def features(self, target: str, model: str) -> Path:
        return self.cache / "features" / target / f"{model}.npy"

    def source_probs(self, target: str, model: str) -> Path:
        """Beside the features: one DVC output per stage."""
        return self.cache / "features" / target / f"{model}.source_probs.npy"

    def flabels(self, target: str, encoder: str) -> Path:
        return self.cache / "flabels" / target / f"{encoder}.npy"

    @property
    def truth(self) -> Path:
        return self.cache / "truth.csv"

    # --- reports ------------------------------------------------------------------------
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def notebook_source(self) -> Path:
        return self.root / "notebooks" / f"{self.task}.ipynb"

    @property
    def notebook(self) -> Path:
        return self.reports / f"{self.task}.ipynb"

    @property
    def html(self) -> Path:
        return self.reports / f"{self.task}.html"

    @property
    def figures(self) -> Path:
        return self.reports / "figures" / self.task

    @property
    def tables(self) -> Path:
        return self.reports / "tables" / self.task

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics" / f"{self.task}.json"

    @property
    def timings(self) -> Path:
        return self.reports / "timings" / f"{self.task}.json"
