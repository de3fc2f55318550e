"""The paper-scale run, end to end: pre-flight checks, features (streamed, resumable),
F-labels, truth, scores, weighted tau and the report.

Order:

1. **Pre-flight** (nothing is written before it passes): the data and weights folders
   exist; every model's identifier is known and its weights files are in place
   (:func:`emms.models.paper_zoo.check_weights`); every dataset reads and has samples;
   every F-label encoder has its folder; the truth table is there.
2. **Features**, model by model: the recipe fingerprint is computed without loading
   weights (image models: the architecture built with random weights, for its
   preprocessing; text-QA models: the tokenizer); the (model, dataset) pairs already
   cached with a matching sidecar are skipped; the weights are loaded only if a pair is
   left, and each pair is streamed to the cache (images: :mod:`emms.paper.extract`, the
   pooled classifier input; text QA: :mod:`emms.paper.text_extract`, the context-token
   mean of the final hidden states; captioning: :mod:`emms.paper.caption_extract`, per
   encoder/decoder pair the caption-position mean of the decoder's final hidden states;
   VQA: :mod:`emms.paper.vqa_extract`, the joint (image, question) representation;
   referring: :mod:`emms.paper.referring_extract`, the candidate locations' features
   weighted by their match with the expression).
3. **F-labels**, dataset by encoder, skipped when cached (:mod:`emms.paper.labels`):
   class names through the template (recognition); ``Q: question A: answer`` (text QA,
   ``no answer`` for SQuAD 2.0's unanswerable questions); the first reference caption
   (captioning); ``Q: question A: answer`` (VQA); the box as text, ``[x1, y1, x2, y2]``
   normalised by the image size (referring).
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

from . import (
    caption_extract,
    extract,
    labels,
    referring_extract,
    score,
    text_extract,
    vqa_extract,
)
from .config import PaperRunError, RunConfig
from .report import write_report

__all__ = ["RunResult", "preflight", "run"]


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

    for what, folder, flag in (("data", cfg.data, "--data"), ("weights", cfg.weights, "--weights")):
        if not folder.is_dir():
            raise PaperRunError(
                f"{what} folder {folder} does not exist; pass {flag} DIR (layout: "
                "docs/paper-scale.md)."
            )
    for name in cfg.models:
        check_weights(cfg.zoo.entry(name), cfg.weights)
        FEATURES[cfg.task].check(cfg.zoo.entry(name), cfg)
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


class _ImageFeatures:
    """Pooled classifier inputs (and source probabilities) of one image model."""

    @staticmethod
    def check(entry, cfg: RunConfig) -> None:
        """Pre-flight beyond the weights files: nothing (the architecture is built later)."""

    def __init__(self, entry, cfg: RunConfig):
        self.entry, self.cfg = entry, cfg
        self.transform, self.description = extract.preprocessing(
            entry, _architecture(entry, cfg), cfg
        )
        self.recipe = extract.model_recipe(entry, self.description, cfg)

    def extract(self, network, jobs, device) -> None:
        forward = extract.feature_forward(network, self.entry)
        for dataset, record, indices, meta in jobs:
            extract.extract_pair(
                forward,
                self.transform,
                record,
                indices,
                {
                    "features": self.cfg.features_path(dataset, self.entry.name),
                    "source_probs": self.cfg.source_probs_path(dataset, self.entry.name),
                },
                {**meta, "preprocess": self.description},
                self.cfg,
                device,
                desc=f"{self.entry.name} on {dataset}",
            )


class _TextQAFeatures:
    """Context-token means of the final hidden states of one text encoder."""

    @staticmethod
    def check(entry, cfg: RunConfig) -> None:
        """Pre-flight: the tokenizer files are there and readable, max_length fits."""
        text_extract.load_tokenizer(entry, cfg)

    def __init__(self, entry, cfg: RunConfig):
        self.entry, self.cfg = entry, cfg
        self.tokenizer = text_extract.load_tokenizer(entry, cfg)
        self.recipe = text_extract.text_recipe(entry, self.tokenizer, cfg)

    def extract(self, network, jobs, device) -> None:
        for dataset, record, indices, meta in jobs:
            text_extract.extract_text_pair(
                network,
                self.tokenizer,
                record,
                indices,
                self.cfg.features_path(dataset, self.entry.name),
                {**meta, "max_length": self.cfg.max_length},
                self.cfg,
                device,
                desc=f"{self.entry.name} on {dataset}",
            )


class _CaptioningFeatures:
    """Caption-position means of the decoder's final hidden states of one pair."""

    @staticmethod
    def check(entry, cfg: RunConfig) -> None:
        """Pre-flight: tokenizer, image processor and the decoder's start / pad ids."""
        text_extract.load_tokenizer(entry, cfg)
        caption_extract.load_image_processor(entry, cfg)
        caption_extract.check_pair_config(entry, cfg)

    def __init__(self, entry, cfg: RunConfig):
        self.entry, self.cfg = entry, cfg
        self.tokenizer = text_extract.load_tokenizer(entry, cfg)
        self.processor = caption_extract.load_image_processor(entry, cfg)
        self.recipe = caption_extract.caption_recipe(entry, self.tokenizer, self.processor, cfg)

    def extract(self, network, jobs, device) -> None:
        for dataset, record, indices, meta in jobs:
            caption_extract.extract_caption_pair(
                network,
                self.tokenizer,
                self.processor,
                record,
                indices,
                self.cfg.features_path(dataset, self.entry.name),
                {**meta, "max_length": self.cfg.max_length},
                self.cfg,
                device,
                desc=f"{self.entry.name} on {dataset}",
            )


class _ImageTextFeatures:
    """Features of one image-text model under a rule module's ``model_kind``, recipe and
    extraction (VQA: :mod:`emms.paper.vqa_extract`, referring:
    :mod:`emms.paper.referring_extract`); both read the folder's image processor and
    tokenizer (:func:`emms.paper.vqa_extract.load_inputs`)."""

    kind = staticmethod(vqa_extract.model_kind)
    recipe_of = staticmethod(vqa_extract.vqa_recipe)
    extract_pair = staticmethod(vqa_extract.extract_vqa_pair)

    @classmethod
    def check(cls, entry, cfg: RunConfig) -> None:
        """Pre-flight: a model type with a rule, its image processor and tokenizer."""
        cls.kind(entry, cfg)
        vqa_extract.load_inputs(entry, cfg)

    def __init__(self, entry, cfg: RunConfig):
        self.entry, self.cfg = entry, cfg
        self.model_type = self.kind(entry, cfg)
        self.processor, self.tokenizer = vqa_extract.load_inputs(entry, cfg)
        self.recipe = self.recipe_of(entry, self.model_type, self.processor, self.tokenizer, cfg)

    def extract(self, network, jobs, device) -> None:
        for dataset, record, indices, meta in jobs:
            self.extract_pair(
                network,
                self.model_type,
                self.processor,
                self.tokenizer,
                record,
                indices,
                self.cfg.features_path(dataset, self.entry.name),
                {**meta, "max_length": self.cfg.max_length},
                self.cfg,
                device,
                desc=f"{self.entry.name} on {dataset}",
            )


class _ReferringFeatures(_ImageTextFeatures):
    """Expression-weighted candidate features of one grounding model."""

    kind = staticmethod(referring_extract.model_kind)
    recipe_of = staticmethod(referring_extract.referring_recipe)
    extract_pair = staticmethod(referring_extract.extract_referring_pair)


#: the feature rule of each task the runner extracts (all five)
FEATURES = {
    "recognition": _ImageFeatures,
    "captioning": _CaptioningFeatures,
    "vqa": _ImageTextFeatures,
    "textqa": _TextQAFeatures,
    "referring": _ReferringFeatures,
}


def _class_labels(cfg: RunConfig, record, indices: np.ndarray):
    """What the class-label selectors read; tasks with other label formats have none."""
    if cfg.label_format == "class":
        return np.asarray(record.class_ids)[indices]
    return None


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
        entry = cfg.zoo.entry(model)
        features = FEATURES[cfg.task](entry, cfg)
        recipe = fingerprint([features.recipe, _weights_identity(entry, cfg)])
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
        jobs = [
            (d, records[d], indices[d], {**expects[d][model], "device": str(device)})
            for d in pending
        ]
        features.extract(network, jobs, device)
        computed += [("features", d, model) for d in pending]
        del network
    for dataset, record in records.items():
        labels.write_flabels(dataset, record, indices[dataset], cfg, computed, reused, device)
    frames = []
    for dataset, record in records.items():
        labels_here = _class_labels(cfg, record, indices[dataset])
        frames.append(score.score_dataset(cfg, dataset, labels_here, expects[dataset]))
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
