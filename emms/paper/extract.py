"""Image features of a paper zoo, streamed to the cache, resumable.

Features are the pooled input of each model's classifier (the representation a linear
head reads), computed on the target's training images with the model's own preprocessing:

* timm: ``forward_features`` then ``forward_head(pre_logits=True)``; the source logits are
  ``get_classifier()`` of those features (none when the classifier is an Identity, e.g.
  MoCo v3's checkpoint without a head);
* torchvision: a forward hook on the final ``Linear`` (``fc``, or the last ``Linear`` of
  ``classifier``) takes its input (the pooled features: global average pooling, then the
  dropout that is an identity in eval mode) and its output (the ImageNet logits);
* transformers image classifiers (PVT v1): the same hook on ``classifier``.

Preprocessing: timm's ``resolve_data_config`` + ``create_transform`` (eval), torchvision's
weights transforms (``get_model_weights(identifier)[weights_tag].transforms()``, built
offline), and for transformers a resize to ``config.image_size`` + ImageNet mean/std.

Streaming and resume. Batches are written to a hidden ``.MODEL.partial.npy`` memory map
beside the target file; only when every image is done is the array saved with
:func:`emms.cache.save_array` (atomic ``.npy`` + JSON sidecar) and the partial file
removed. A pair is *finished* when its ``.npy`` matches its sidecar (SHA-256) and the
sidecar names the same task, model, recipe fingerprint, dataset, split and sample; a
partial file is never trusted: it is deleted and the pair recomputed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emms.cache import CacheError, fingerprint, load_array, save_array

from .config import PaperRunError, RunConfig

__all__ = [
    "FEATURE_RULE",
    "resolve_device",
    "sample_indices",
    "preprocessing",
    "feature_forward",
    "model_recipe",
    "is_finished",
    "extract_pair",
]

#: Bumped when the definition of the features changes (part of every recipe).
FEATURE_RULE = "pooled classifier input v1"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PaperRunError(f"--device {name} asked for, but CUDA is not available here.")
    return torch.device(name)


def sample_indices(n: int, cfg: RunConfig) -> np.ndarray:
    """All N indices, or a sorted seeded sample of ``max_samples`` of them."""
    if cfg.max_samples is None or cfg.max_samples >= n:
        return np.arange(n)
    rng = np.random.default_rng(cfg.sample_seed)
    return np.sort(rng.choice(n, size=int(cfg.max_samples), replace=False))


def _resize_crop(size: int, crop: int, mean, std, interpolation: str = "bilinear"):
    from torchvision import transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    return T.Compose(
        [
            T.Resize(size, interpolation=mode.get(interpolation, T.InterpolationMode.BILINEAR)),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def preprocessing(entry, network, cfg: RunConfig) -> tuple[Callable, dict[str, Any]]:
    """The eval transform of ``entry`` (PIL -> tensor) and a JSON description of it."""
    if entry.source == "timm":
        import timm.data

        data_cfg = timm.data.resolve_data_config({}, model=network)
        if cfg.image_size:
            data_cfg["input_size"] = (3, cfg.image_size, cfg.image_size)
            data_cfg["crop_pct"] = 1.0
        transform = timm.data.create_transform(**data_cfg, is_training=False)
        return transform, {"kind": "timm", **{k: list(v) if isinstance(v, tuple) else v
                                              for k, v in data_cfg.items()}}  # fmt: skip
    if entry.source == "torchvision":
        import torchvision

        weights = torchvision.models.get_model_weights(entry.identifier)[entry.weights_tag]
        preset = weights.transforms()
        mean, std = tuple(preset.mean), tuple(preset.std)
        resize, crop = int(preset.resize_size[0]), int(preset.crop_size[0])
        if cfg.image_size:
            resize = crop = int(cfg.image_size)
        interp = preset.interpolation.value
        return _resize_crop(resize, crop, mean, std, interp), {
            "kind": "torchvision",
            "weights": f"{entry.identifier}.{entry.weights_tag}",
            "resize": resize,
            "crop": crop,
            "mean": list(mean),
            "std": list(std),
            "interpolation": interp,
        }
    if entry.source == "transformers":
        size = int(cfg.image_size or getattr(network.config, "image_size", 224))
        return _resize_crop(size, size, IMAGENET_MEAN, IMAGENET_STD), {
            "kind": "resize+normalise (ImageNet mean/std)",
            "size": size,
        }
    raise PaperRunError(
        f"model {entry.name!r}: image features of {entry.source} models are not built "
        "(timm, torchvision and transformers classifiers are)."
    )


def _final_linear(network, entry):
    import torch

    if entry.source == "transformers":
        head = getattr(network, "classifier", None)
    else:
        head = getattr(network, "fc", None)
        if head is None:
            head = getattr(network, "classifier", None)
        if isinstance(head, torch.nn.Sequential):
            linears = [m for m in head if isinstance(m, torch.nn.Linear)]
            head = linears[-1] if linears else None
    if not isinstance(head, torch.nn.Linear):
        raise PaperRunError(
            f"model {entry.name!r} ({entry.source} {entry.identifier}): no final Linear "
            "classifier found (fc / classifier); its features are not defined here."
        )
    return head


def feature_forward(network, entry) -> Callable:
    """``forward(images) -> (features (B, D), logits (B, Z) or None)`` for the entry."""
    import torch

    if entry.source == "timm":
        classifier = network.get_classifier()
        has_head = isinstance(classifier, torch.nn.Module) and not isinstance(
            classifier, torch.nn.Identity
        )

        def forward(images):
            pooled = network.forward_head(network.forward_features(images), pre_logits=True)
            return pooled, (classifier(pooled) if has_head else None)

        return forward
    head = _final_linear(network, entry)
    seen: dict[str, Any] = {}

    def hook(module, inputs, output):
        seen["features"], seen["logits"] = inputs[0], output

    head.register_forward_hook(hook)

    def forward(images):
        seen.clear()
        if entry.source == "transformers":
            network(pixel_values=images)
        else:
            network(images)
        return seen["features"].flatten(1), seen["logits"]

    return forward


def model_recipe(entry, preprocess: dict[str, Any], cfg: RunConfig) -> str:
    """The fingerprint of everything that defines a model's features."""
    from dataclasses import asdict

    return fingerprint(
        {
            "entry": asdict(entry),
            "preprocess": preprocess,
            "rule": FEATURE_RULE,
            "precision": cfg.precision,
        }
    )


def is_finished(path: Path, expect: dict[str, Any]) -> bool:
    """True if ``path`` is a valid cache array whose sidecar matches ``expect``."""
    try:
        load_array(path, expect=expect)
    except CacheError:
        return False
    return True


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial.npy")


class _BlockWriter:
    """Rows appended batch by batch into a memory-mapped partial file; :meth:`finish`
    saves the full array atomically with its sidecar and removes the partial file."""

    def __init__(self, path: Path, n: int, dtype):
        self.path, self.n, self.dtype = path, n, np.dtype(dtype)
        self.partial = _partial(path)
        self.array = None
        self.filled = 0

    def write(self, rows: np.ndarray) -> None:
        if self.array is None:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.array = np.lib.format.open_memmap(
                self.partial, mode="w+", dtype=self.dtype, shape=(self.n, rows.shape[1])
            )
        self.array[self.filled : self.filled + len(rows)] = rows
        self.filled += len(rows)

    def finish(self, meta: dict[str, Any]) -> None:
        if self.array is None or self.filled != self.n:
            raise PaperRunError(f"{self.path}: {self.filled} of {self.n} rows written.")
        self.array.flush()
        save_array(self.path, np.asarray(self.array), **meta)
        self.discard()

    def discard(self) -> None:
        self.array = None
        self.partial.unlink(missing_ok=True)


class _Images:
    """A torch dataset over the record's sampled images."""

    def __init__(self, record, indices, transform):
        self.record, self.indices, self.transform = record, indices, transform

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.transform(self.record.load_image(int(self.indices[i])))


def _autocast(device, precision: str):
    import torch

    if device.type != "cuda" or precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=getattr(torch, precision))


def _check_range(features: np.ndarray, what: str, device, precision: str) -> None:
    """Refuse features that a reduced precision destroyed: non-finite values (float16
    overflows above 65504) or a batch flushed to zero (float16 underflows below 6e-8,
    e.g. the features of a randomly initialised MobileNetV2, about 1e-9, seen on an H100)."""
    if device.type != "cuda" or precision == "float32":
        return
    if not np.isfinite(features).all() or not features.any():
        raise PaperRunError(
            f"{what}: features under {precision} autocast are "
            + ("not finite" if not np.isfinite(features).all() else "all zero")
            + "; rerun with `--precision bfloat16` (float32's range) or `--precision float32`."
        )


def extract_pair(
    forward: Callable,
    transform: Callable,
    record,
    indices: np.ndarray,
    targets: dict[str, Path],
    meta: dict[str, Any],
    cfg: RunConfig,
    device,
    *,
    desc: str = "",
) -> None:
    """Features (and softmax source probabilities, when the model has a head) of one
    (model, dataset) pair, streamed batch by batch and cached; nothing is left behind if
    it fails (the partial files are removed).

    Args:
        targets: ``{"features": path, "source_probs": path}`` (the second optional).
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(
        _Images(record, indices, transform),
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
    )
    writers = {
        "features": _BlockWriter(targets["features"], len(indices), np.float32),
        "source_probs": _BlockWriter(targets["source_probs"], len(indices), np.float16),
    }
    for writer in writers.values():  # never trust a leftover of an interrupted run
        writer.discard()
    has_probs = True
    try:
        with torch.inference_mode():
            for images in tqdm(loader, desc=desc, disable=not cfg.progress, unit="batch"):
                with _autocast(device, cfg.precision):
                    features, logits = forward(images.to(device, non_blocking=True))
                block = features.float().cpu().numpy()
                _check_range(block, desc, device, cfg.precision)
                writers["features"].write(block)
                if logits is None:
                    has_probs = False
                else:
                    probs = torch.softmax(logits.float(), dim=1)
                    writers["source_probs"].write(probs.cpu().numpy().astype(np.float16))
        if has_probs:
            writers["source_probs"].finish(meta)
        # last: its presence marks the pair finished
        writers["features"].finish({**meta, "has_source_probs": has_probs})
    finally:
        for writer in writers.values():
            writer.discard()
