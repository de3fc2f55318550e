"""The paper-scale run, end to end: pre-flight checks, features (streamed, resumable),
F-labels, truth, scores, weighted tau and the report.

Order:

1. **Pre-flight** (nothing is written before it passes): the data and weights folders
   exist; every model's identifier is known and its weights files are in place
   (:func:`emms.models.paper_zoo.check_weights`); every dataset reads and has samples;
   every F-label encoder has its folder; the truth table is there.
2. **Features**, model by model: the architecture is built (random weights, cheap) to
   know its preprocessing and recipe fingerprint; the (model, dataset) pairs already
   cached with a matching sidecar are skipped; the weights are loaded only if a pair is
   left, and each pair is streamed to the cache (:mod:`emms.paper.extract`).
3. **F-labels**, dataset by encoder, skipped when cached (:mod:`emms.paper.labels`).
4. **Scores, tau, report** (:mod:`emms.paper.score`, :mod:`emms.paper.report`); always
   recomputed from the cache (minutes at most).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from emms.cache import fingerprint, read_sidecar
from emms.models.paper_zoo import build_architecture, check_weights, load_model

from . import extract, labels, score
from .config import PaperRunError, RunConfig
from .report import write_report

__all__ = ["RunResult", "preflight", "run"]

BUILT_TASKS = ("recognition",)


@dataclass
class RunResult:
    report: Path
    tau: pd.DataFrame
    scores: pd.DataFrame
    computed: list[tuple] = field(default_factory=list)
    reused: list[tuple] = field(default_factory=list)


def preflight(cfg: RunConfig) -> tuple[dict[str, Any], pd.DataFrame, str]:
    """Check everything a run needs before anything is written (module docstring)."""
    from emms.datasets.paper import read_paper_dataset

    if cfg.task not in BUILT_TASKS:
        raise PaperRunError(
            f"the paper-scale runner extracts image-classifier features for "
            f"{list(BUILT_TASKS)} only; the {cfg.task} features (encoder/decoder pairs, "
            "multimodal models) are not built yet."
        )
    for what, folder, flag in (("data", cfg.data, "--data"), ("weights", cfg.weights, "--weights")):
        if not folder.is_dir():
            raise PaperRunError(
                f"{what} folder {folder} does not exist; pass {flag} DIR (layout: "
                "docs/paper-scale.md)."
            )
    for name in cfg.models:
        check_weights(cfg.zoo.models[name], cfg.weights)
    records = {}
    for name in cfg.datasets:
        record = read_paper_dataset(name, cfg.data, **cfg.dataset_options.get(name, {}))
        if len(record) == 0:
            raise PaperRunError(f"dataset {name!r} under {cfg.data} has no samples.")
        records[name] = record
    for name in cfg.encoders:
        labels.check_encoder(name, cfg)
    truth, source = score.load_truth(cfg)
    score.applicable_selectors(cfg)
    return records, truth, source


def _architecture(entry, cfg: RunConfig):
    """What :func:`extract.preprocessing` reads, without loading weights."""
    if entry.source == "transformers":
        from transformers import AutoConfig

        folder = cfg.weights / entry.name
        return SimpleNamespace(config=AutoConfig.from_pretrained(folder, local_files_only=True))
    return build_architecture(entry)


def _weights_identity(entry, cfg: RunConfig) -> list:
    folder = cfg.weights / entry.name
    return sorted(
        (p.name, p.stat().st_size)
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".pth", ".tar", ".json")
    )


def pair_finished(cfg: RunConfig, dataset: str, model: str, expect: dict) -> bool:
    path = cfg.features_path(dataset, model)
    if not extract.is_finished(path, expect):
        return False
    if read_sidecar(path).get("has_source_probs"):
        return extract.is_finished(cfg.source_probs_path(dataset, model), expect)
    return True


def run(cfg: RunConfig) -> RunResult:
    """Run the whole paper-scale path for ``cfg`` (see the module docstring)."""
    started = time.perf_counter()
    records, truth, truth_source = preflight(cfg)
    device = extract.resolve_device(cfg.device)
    indices = {d: extract.sample_indices(len(r), cfg) for d, r in records.items()}
    computed: list[tuple] = []
    reused: list[tuple] = []
    expects: dict[str, dict[str, dict]] = {d: {} for d in cfg.datasets}
    for model in cfg.models:
        entry = cfg.zoo.models[model]
        transform, description = extract.preprocessing(entry, _architecture(entry, cfg), cfg)
        recipe = extract.model_recipe(entry, description, cfg)
        recipe = fingerprint([recipe, _weights_identity(entry, cfg)])
        pending = []
        for dataset, record in records.items():
            expects[dataset][model] = {
                "task": cfg.task,
                "model": model,
                "recipe": recipe,
                "dataset": dataset,
                "split": record.split,
                "sample": fingerprint(indices[dataset].tolist()),
            }
            if pair_finished(cfg, dataset, model, expects[dataset][model]):
                reused.append(("features", dataset, model))
            else:
                pending.append(dataset)
        if not pending:
            continue
        network = load_model(entry, cfg.weights).to(device)
        forward = extract.feature_forward(network, entry)
        for dataset in pending:
            extract.extract_pair(
                forward,
                transform,
                records[dataset],
                indices[dataset],
                {
                    "features": cfg.features_path(dataset, model),
                    "source_probs": cfg.source_probs_path(dataset, model),
                },
                {**expects[dataset][model], "preprocess": description, "device": str(device)},
                cfg,
                device,
                desc=f"{model} on {dataset}",
            )
            computed.append(("features", dataset, model))
        del network, forward
    for dataset, record in records.items():
        labels.write_flabels(dataset, record, indices[dataset], cfg, computed, reused)
    frames = []
    for dataset, record in records.items():
        class_ids = np.asarray(record.class_ids)[indices[dataset]]
        frames.append(score.score_dataset(cfg, dataset, class_ids, expects[dataset]))
    scores = pd.concat(frames, ignore_index=True)
    tau = score.rank_scores(scores, truth, cfg.n_boot)
    info = {
        "device": str(device),
        "precision": cfg.precision if device.type == "cuda" else "float32 (CPU)",
        "samples": {d: int(len(i)) for d, i in indices.items()},
        "computed": [list(c) for c in computed],
        "reused": len(reused),
        "seconds": round(time.perf_counter() - started, 1),
    }
    report = write_report(cfg, scores, tau, truth, truth_source, info)
    return RunResult(report, tau, scores, computed, reused)
