"""The stages of the embedded image-recognition experiment (DESIGN.md §4-§5).

``dvc.yaml`` runs each stage as ``python -m emms STAGE``; every stage reads
``params.yaml`` (its own group), writes only under its output folder and writes every file
atomically, so an interrupted stage leaves nothing that a later ``dvc repro`` would trust
(DVC also records a stage in ``dvc.lock`` only after it succeeds).

    data/raw (data.dvc) --data--> data/processed/{source,TARGET}/
    data/processed/source --zoo--> models/MODEL.safetensors (+ .json recipe)
    models + targets --features--> cache/features/TARGET/MODEL.npy
                                    cache/source_probs/TARGET/MODEL.npy
    targets --flabels--> cache/flabels/TARGET/ENCODER.npy
    models + targets --truth--> cache/truth/finetune.csv
    all of the above --recognition--> reports/ (papermill + HTML)
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from .cache import CacheError, atomic_write_text, load_array, save_array

__all__ = [
    "ParamsError",
    "Params",
    "load_params",
    "dvc_dir_md5",
    "materialize_data",
    "run_data",
    "load_processed_target",
    "run_zoo",
    "run_features",
    "run_flabels",
    "run_truth",
    "load_truth",
    "label_texts",
    "load_flabels",
    "run_notebook",
    "compare_metrics",
]


class ParamsError(ValueError):
    """``params.yaml`` names something that does not exist or is malformed."""


@dataclass(frozen=True)
class Params:
    """The validated content of ``params.yaml``."""

    raw: Mapping[str, Any]

    @property
    def targets(self) -> list[str]:
        return list(self.raw["data"]["targets"])

    @property
    def models(self) -> list[str]:
        return [entry["name"] for entry in self.raw["zoo"]["models"]]

    @property
    def encoders(self) -> list[str]:
        return list(self.raw["flabels"]["encoders"])

    def __getitem__(self, key):
        return self.raw[key]


_GROUPS = ("data", "zoo", "finetune", "features", "flabels", "evaluation")


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; unknown targets, architectures or encoders stop
    here with the list of valid names."""
    from .datasets.digits import TARGETS
    from .models.flabels import ENCODERS
    from .models.zoo import recipes_from_config

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise ParamsError(f"{path} not found; run from the project root.") from error
    missing = [group for group in _GROUPS if group not in (raw or {})]
    if missing:
        raise ParamsError(f"{path} lacks the group(s) {missing}; see the README's params table.")
    unknown = [name for name in raw["data"]["targets"] if name not in TARGETS]
    if unknown:
        raise ParamsError(
            f"{path}: data.targets names unknown dataset(s) {unknown}; valid: {sorted(TARGETS)}."
        )
    unknown = [
        name
        for name in raw["flabels"]["encoders"]
        if name.removeprefix(SHUFFLED_PREFIX) not in ENCODERS
    ]
    if unknown:
        raise ParamsError(
            f"{path}: flabels.encoders names unknown encoder(s) {unknown}; "
            f"valid: {sorted(ENCODERS)}, each optionally prefixed by {SHUFFLED_PREFIX!r}."
        )
    try:
        recipes = recipes_from_config(raw["zoo"]["models"])
    except ValueError as error:
        raise ParamsError(f"{path}: zoo.models: {error}") from error
    names = [recipe.name for recipe in recipes]
    if len(set(names)) != len(names):
        raise ParamsError(f"{path}: zoo.models has duplicate names {names}.")
    if len(names) < 3:
        raise ParamsError(f"{path}: zoo.models needs at least 3 models to rank, got {names}.")
    return Params(raw)


# --- data --------------------------------------------------------------------------------


def dvc_dir_md5(folder: str | os.PathLike) -> str:
    """The hash DVC gives a directory: the md5 of the JSON list of its files' md5s
    (``[{"md5": ..., "relpath": ...}]``, sorted by path), with the ``.dir`` suffix."""
    import hashlib

    folder = Path(folder)
    entries = [
        {
            "md5": hashlib.md5(path.read_bytes()).hexdigest(),
            "relpath": path.relative_to(folder).as_posix(),
        }
        for path in sorted(p for p in folder.rglob("*") if p.is_file())
    ]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def materialize_data(raw_dir: str | os.PathLike = "data/raw", dvc_file: str = "data.dvc") -> str:
    """Create the raw data from scikit-learn when absent, then check that its bytes are
    those ``data.dvc`` pins, and store them in the DVC cache. Returns what was done."""
    from .datasets.digits import RAW_FILES, materialize_raw

    raw_dir = Path(raw_dir)
    created = not all((raw_dir / name).is_file() for name in RAW_FILES)
    if created:
        materialize_raw(raw_dir)
    pinned = yaml.safe_load(Path(dvc_file).read_text())["outs"][0]["md5"]
    actual = dvc_dir_md5(raw_dir)
    if actual != pinned:
        raise RuntimeError(
            f"{raw_dir} hashes to {actual}, but {dvc_file} pins {pinned}: the bytes differ "
            f"(another scikit-learn's digits, or an edited file). Delete {raw_dir} and rerun "
            "`make repro`, or fetch the pinned data from a remote with `dvc pull`."
        )
    subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", dvc_file], check=True
    )
    return f"{raw_dir}: {'created from scikit-learn' if created else 'present'}; matches {dvc_file}"


def run_data(params: Params, raw_dir="data/raw", out_dir="data/processed") -> None:
    """Build the source task and every target from the raw digits."""
    from .datasets.digits import load_raw, load_source, load_target

    arrays = load_raw(raw_dir)
    size = params["data"]["image_size"]
    out_dir = Path(out_dir)
    source = load_source(arrays, image_size=size)
    save_array(out_dir / "source" / "images.npy", source.images, dataset="source")
    save_array(out_dir / "source" / "labels.npy", source.labels, dataset="source")
    atomic_write_text(
        out_dir / "source" / "meta.json",
        json.dumps({"class_names": source.class_names, "description": source.description}),
    )
    for name in tqdm(params.targets, desc="targets"):
        target = load_target(name, arrays, seed=params["data"]["seed"], image_size=size)
        for split in ("train", "test"):
            for kind in ("images", "labels"):
                save_array(
                    out_dir / name / f"{split}_{kind}.npy",
                    getattr(target, f"{split}_{kind}"),
                    dataset=name,
                    split=split,
                )
        atomic_write_text(
            out_dir / name / "meta.json",
            json.dumps(
                {"class_names": target.class_names, "description": target.description}, indent=2
            ),
        )


def load_processed_target(data_dir, name: str):
    """A :class:`emms.digits.TargetDataset` from the ``data`` stage's output."""
    from .datasets.digits import TargetDataset

    folder = Path(data_dir) / name
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise CacheError(f"{meta_path} is missing; run `dvc repro data`.")
    meta = json.loads(meta_path.read_text())
    arrays = {
        f"{split}_{kind}": load_array(folder / f"{split}_{kind}.npy", expect={"dataset": name})[0]
        for split in ("train", "test")
        for kind in ("images", "labels")
    }
    return TargetDataset(
        name=name, class_names=meta["class_names"], description=meta["description"], **arrays
    )


def _load_source(data_dir):
    from .datasets.digits import SourceDataset

    folder = Path(data_dir) / "source"
    meta = json.loads((folder / "meta.json").read_text())
    return SourceDataset(
        images=load_array(folder / "images.npy")[0],
        labels=load_array(folder / "labels.npy")[0],
        class_names=meta["class_names"],
        description=meta["description"],
    )


# --- zoo, features, truth ---------------------------------------------------------------


def run_zoo(params: Params, data_dir="data/processed", out_dir="models") -> None:
    """Pre-train every recipe of ``zoo.models`` on the source task."""
    from .models.zoo import pretrain, recipes_from_config, save_checkpoint

    source = _load_source(data_dir)
    recipes = recipes_from_config(params["zoo"]["models"])
    for recipe in tqdm(recipes, desc="zoo"):
        start = time.perf_counter()
        model = pretrain(recipe, source, progress=False)
        save_checkpoint(
            model,
            recipe,
            Path(out_dir) / f"{recipe.name}.safetensors",
            extra={"pretrain_seconds": round(time.perf_counter() - start, 2)},
        )


def run_features(params: Params, data_dir="data/processed", models_dir="models", out_dir="cache"):
    """Features (input of the final classifier) and source-class probabilities of every
    model on every target's training split."""
    from .models.features import extract_features
    from .models.zoo import load_checkpoint, source_probabilities

    batch = params["features"]["batch_size"]
    targets = {name: load_processed_target(data_dir, name) for name in params.targets}
    for model_name in tqdm(params.models, desc="features"):
        model, _ = load_checkpoint(Path(models_dir) / f"{model_name}.safetensors")
        for name, target in targets.items():
            meta = {"model": model_name, "dataset": name, "split": "train"}
            features = extract_features(model, target.train_images, batch_size=batch)
            save_array(Path(out_dir) / "features" / name / f"{model_name}.npy", features, **meta)
            probs = source_probabilities(model, target.train_images, batch_size=batch)
            save_array(Path(out_dir) / "source_probs" / name / f"{model_name}.npy", probs, **meta)


def label_texts(class_names: Sequence[str], labels: np.ndarray, template: str) -> list[str]:
    """One text per sample: ``template.format(name=class_names[label])``."""
    if "{name}" not in template:
        raise ParamsError(f"flabels.template {template!r} must contain '{{name}}'.")
    return [template.format(name=class_names[int(label)]) for label in labels]


#: ``shuffled-ENCODER`` embeds the labels of a seeded random permutation of the samples:
#: F-labels from a real encoder that are independent of the true labels (a label-noise
#: control, which EMMS should give no weight).
SHUFFLED_PREFIX = "shuffled-"


def run_flabels(params: Params, data_dir="data/processed", out_dir="cache/flabels") -> None:
    """Embed every training label of every target with every encoder."""
    from .models.flabels import embed_texts, load_encoder

    template = params["flabels"]["template"]
    targets = {name: load_processed_target(data_dir, name) for name in params.targets}
    for encoder_name in params.encoders:
        base = encoder_name.removeprefix(SHUFFLED_PREFIX)
        encoder = load_encoder(base)
        description = encoder.description
        if base != encoder_name:
            description = (
                f"{description}, embedding the labels of a random permutation of the "
                "samples (seed 0): a label-noise control, independent of the true labels"
            )
        for name, target in targets.items():
            labels = target.train_labels
            if base != encoder_name:
                labels = np.random.default_rng(0).permutation(labels)
            texts = label_texts(target.class_names, labels, template)
            embeddings = embed_texts(encoder, texts)
            save_array(
                Path(out_dir) / name / f"{encoder_name}.npy",
                embeddings,
                encoder=encoder_name,
                description=description,
                dataset=name,
                split="train",
                template=template,
            )


def load_flabels(cache_dir, target: str, encoders: Sequence[str]) -> np.ndarray:
    """The F-labels of ``target`` stacked as (N, L, K), K = len(encoders)."""
    blocks = [
        load_array(
            Path(cache_dir) / "flabels" / target / f"{name}.npy", expect={"dataset": target}
        )[0]
        for name in encoders
    ]
    widths = {block.shape[1] for block in blocks}
    if len(widths) == 1:
        return np.stack(blocks, axis=2)
    return blocks  # unequal widths: emms.emms reduces them (documented there)


TRUTH_COLUMNS = ("dataset", "model", "seed", "test_accuracy", "seconds")


def run_truth(
    params: Params, data_dir="data/processed", models_dir="models", out="cache/truth/finetune.csv"
):
    """Fine-tune every model on every target with every seed (one fixed recipe)."""
    from .models.finetune import finetune

    recipe = params["finetune"]
    targets = {name: load_processed_target(data_dir, name) for name in params.targets}
    jobs = [(t, m, s) for t in params.targets for m in params.models for s in recipe["seeds"]]
    rows = []
    for name, model_name, seed in tqdm(jobs, desc="fine-tuning"):
        start = time.perf_counter()
        accuracy = finetune(
            Path(models_dir) / f"{model_name}.safetensors",
            targets[name],
            epochs=recipe["epochs"],
            lr=recipe["lr"],
            batch_size=recipe["batch_size"],
            weight_decay=recipe["weight_decay"],
            head_lr=recipe["head_lr"],
            min_steps=recipe["min_steps"],
            seed=seed,
        )
        rows.append(
            (name, model_name, seed, f"{accuracy:.6f}", f"{time.perf_counter() - start:.2f}")
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRUTH_COLUMNS)
    writer.writerows(rows)
    atomic_write_text(out, buffer.getvalue())


def load_truth(path="cache/truth/finetune.csv"):
    """The fine-tuning table as a pandas DataFrame (one row per dataset, model, seed)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"{path} is missing; run `dvc repro truth`.")
    table = pd.read_csv(path)
    if tuple(table.columns) != TRUTH_COLUMNS:
        raise CacheError(f"{path} has columns {list(table.columns)}, expected {TRUTH_COLUMNS}.")
    return table


# --- notebooks and metrics ----------------------------------------------------------------


def run_notebook(name: str, params: Params, reports="reports", notebooks="notebooks") -> Path:
    """Execute ``notebooks/NAME.ipynb`` with papermill into ``reports/NAME.ipynb`` and
    export it to HTML; both appear only once the whole notebook has run."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    source = Path(notebooks) / f"{name}.ipynb"
    partial = reports / f".{name}.partial.ipynb"
    parameters = {
        "targets": params.targets,
        "models": params.models,
        "encoders": params.encoders,
        "n_boot": params["evaluation"]["n_boot"],
        "seed": params["evaluation"]["seed"],
        "reports_dir": str(reports),
    }
    try:
        papermill.execute_notebook(
            str(source),
            str(partial),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(Path.cwd()),
            progress_bar=False,
        )
        notebook = nbformat.read(partial, as_version=4)
        html, _ = HTMLExporter().from_notebook_node(notebook)
        atomic_write_text(reports / f"{name}.html", html)
        os.replace(partial, reports / f"{name}.ipynb")
    finally:
        partial.unlink(missing_ok=True)
    return reports / f"{name}.ipynb"


def _flatten(tree, prefix=""):
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): tree}


def max_metric_change(fresh: Mapping, committed: Mapping) -> float:
    """The largest absolute difference between numeric entries present in both trees."""
    a, b = _flatten(fresh), _flatten(committed)
    changes = [
        abs(a[key] - b[key])
        for key in set(a) & set(b)
        if isinstance(a[key], int | float)
        and isinstance(b[key], int | float)
        and not (np.isnan(a[key]) or np.isnan(b[key]))
    ]
    return max(changes, default=0.0)


def compare_metrics(fresh: Mapping, committed: Mapping, tolerance: float) -> list[str]:
    """Entries of two metric trees that differ by more than ``tolerance`` (or are missing)."""
    a, b = _flatten(fresh), _flatten(committed)
    problems = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            problems.append(f"{key}: only in {'committed' if key in b else 'fresh'} metrics")
            continue
        x, y = a[key], b[key]
        if isinstance(x, int | float) and isinstance(y, int | float):
            if not (abs(x - y) <= tolerance or (np.isnan(x) and np.isnan(y))):
                problems.append(f"{key}: fresh {x:.6g} vs committed {y:.6g}")
        elif x != y:
            problems.append(f"{key}: fresh {x!r} vs committed {y!r}")
    return problems
