"""Which models' ground truth another CPU can reorder (README, "Reproducibility").

benchmarks/isa_envelope.py retrains the zoo and the truth under simulated instruction sets;
here each model's largest change is set against the zoo's **resolution** on that dataset,
the median gap between neighbouring models' mean truths: a model that moves by more than
that can swap places with a neighbour on another machine, and the report flags it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["isa_results", "zoo_resolution", "isa_sensitivity"]


def isa_results(task: str, root: str | Path = ".") -> Path:
    """The measurement of ``python benchmarks/isa_envelope.py --task TASK``."""
    return Path(root) / "benchmarks" / "results" / f"isa_envelope-{task}.json"


def zoo_resolution(summary: pd.DataFrame) -> pd.Series:
    """Per dataset: the median gap between neighbouring mean truths of the zoo.

    Args:
        summary: one row per (dataset, model) with the seed mean in ``mean``.
    """
    return summary.groupby("dataset")["mean"].apply(
        lambda means: float(np.median(np.diff(np.sort(means.to_numpy()))))
    )


def isa_sensitivity(summary: pd.DataFrame, task: str, root: str | Path = ".") -> pd.DataFrame:
    """Per (dataset, model): the largest change of the mean truth across the simulated
    instruction sets, the dataset's resolution, and whether the change exceeds it.

    Returns an empty frame when the measurement does not exist (e.g. a new task)."""
    path = isa_results(task, root)
    columns = ["dataset", "model", "largest ISA change", "zoo resolution", "can reorder"]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    rows = pd.DataFrame(json.loads(path.read_text())["rows"])
    change = rows.assign(change=rows["change"].abs()).groupby(["dataset", "model"])["change"]
    frame = change.max().rename("largest ISA change").reset_index()
    resolution = zoo_resolution(summary).rename("zoo resolution")
    frame = frame.merge(resolution, left_on="dataset", right_index=True)
    frame["can reorder"] = frame["largest ISA change"] > frame["zoo resolution"]
    known = summary[["dataset", "model"]]
    return frame.merge(known, on=["dataset", "model"])[columns]
