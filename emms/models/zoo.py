"""The embedded vision zoo: small timm backbones pre-trained inside the pipeline.

README, "Embedded benchmark". No pre-trained vision weights exist offline, so every zoo model starts
from random initialisation and is pre-trained here on the SOURCE task of
:mod:`emms.datasets.digits` (10-way digit classification of the SOURCE pool). Transfer quality
varies across the zoo on purpose: the recipes differ in family (seven timm families),
width, depth, pre-training epochs, learning rate and augmentation.

A zoo entry is a :class:`Recipe`. ``arch`` names a timm family; the model is built from
that family's timm class with a small geometry derived from ``width``, ``depth`` and the
image size, and ``kwargs`` are passed on to the timm class (they override the derived
defaults). ``arch="timm:<model_name>"`` builds any registered timm model with
``timm.create_model(<model_name>, in_chans=1, num_classes=..., **kwargs)`` instead.

Each model keeps its SOURCE classification head: :func:`source_probabilities` gives the
softmax over the source classes, the input of LEEP and NCE.

Checkpoints: ``<name>.safetensors`` (weights) plus a JSON sidecar ``<name>.json`` (the
recipe and the number of source classes), both written atomically. Loading never
unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emms.cache import atomic_write_bytes, atomic_write_text
from emms.datasets.digits import IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD, SourceDataset

__all__ = [
    "FAMILIES",
    "CHECKPOINT_FORMAT",
    "Recipe",
    "ZooError",
    "CheckpointError",
    "recipe_from_dict",
    "recipes_from_config",
    "build_model",
    "pretrain",
    "augment_batch",
    "train_classifier",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_paths",
    "source_probabilities",
    "predict_logits",
]

CHECKPOINT_FORMAT = 1
_BACKGROUND = (0.0 - PIXEL_MEAN) / PIXEL_STD  # a blank pixel after standardisation


class ZooError(ValueError):
    """A bad zoo recipe (unknown family, model name or field); the message says the fix."""


class CheckpointError(FileNotFoundError):
    """A checkpoint is missing or unreadable; the message names the file and the fix."""


# --------------------------------------------------------------------------- recipes


@dataclass
class Recipe:
    """How one zoo model is built and pre-trained.

    Attributes:
        name: unique id, also the checkpoint file stem.
        arch: a key of :data:`FAMILIES` or ``"timm:<model_name>"``.
        width: base channel count / embedding size (family-specific meaning).
        depth: blocks per stage (CNNs) or transformer/mixer blocks.
        epochs: pre-training epochs over the SOURCE pool.
        lr: peak AdamW learning rate (cosine decay to 0).
        augment: random affine augmentation (rotation, scale, shift) during pre-training.
        seed: seeds the initialisation, the data order and the augmentation.
        batch_size: pre-training batch size.
        weight_decay: AdamW weight decay.
        image_size: side S of the (N, 1, S, S) input; ``None`` (the default) takes it
            from the source images in :func:`pretrain`, and the checkpoint records it.
        kwargs: extra keyword arguments for the timm class (override derived defaults).
    """

    name: str
    arch: str
    width: int
    epochs: int
    lr: float
    augment: bool
    seed: int
    depth: int = 1
    batch_size: int = 64
    weight_decay: float = 0.05
    image_size: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RECIPE_FIELDS = {f.name for f in dataclasses.fields(Recipe)}
_REQUIRED_FIELDS = {
    f.name
    for f in dataclasses.fields(Recipe)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
}


def recipe_from_dict(entry: Mapping[str, Any], name: str | None = None) -> Recipe:
    """One :class:`Recipe` from a plain dict (e.g. a ``params.yaml`` entry).

    ``name`` fills in the recipe name when the dict is keyed by it. Unknown fields, missing
    fields and unknown architectures raise :class:`ZooError`.
    """
    if not isinstance(entry, Mapping):
        raise ZooError(f"A zoo entry must be a mapping of recipe fields, got {entry!r}.")
    data = dict(entry)
    if name is not None:
        data.setdefault("name", name)
    label = data.get("name", "<unnamed>")
    unknown = sorted(set(data) - _RECIPE_FIELDS)
    if unknown:
        raise ZooError(
            f"Zoo entry {label!r} has unknown field(s) {unknown}; valid fields: "
            f"{sorted(_RECIPE_FIELDS)}."
        )
    missing = sorted(_REQUIRED_FIELDS - set(data))
    if missing:
        raise ZooError(f"Zoo entry {label!r} is missing field(s) {missing}.")
    data["kwargs"] = dict(data.get("kwargs") or {})
    recipe = Recipe(**data)
    _check_arch(recipe)
    for attr in ("width", "epochs", "depth", "batch_size", "image_size", "seed"):
        value = getattr(recipe, attr)
        if attr == "image_size" and value is None:
            continue
        smallest = 0 if attr in ("epochs", "seed") else 1  # epochs=0: an untrained model
        if not isinstance(value, int) or isinstance(value, bool) or value < smallest:
            raise ZooError(
                f"Zoo entry {label!r}: {attr}={value!r} must be an integer >= {smallest}."
            )
    if not isinstance(recipe.augment, bool):
        raise ZooError(f"Zoo entry {label!r}: augment={recipe.augment!r} must be true or false.")
    for attr, smallest in (("lr", None), ("weight_decay", 0.0)):
        value = getattr(recipe, attr)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not (value > 0 if smallest is None else value >= smallest)
        ):
            raise ZooError(
                f"Zoo entry {label!r}: {attr}={value!r} must be a number "
                f"{'> 0' if smallest is None else '>= 0'} (in YAML write 0.003 or 3.0e-3: "
                "PyYAML reads 3e-3 as a string)."
            )
    if not isinstance(recipe.name, str) or not recipe.name or any(c in recipe.name for c in "/\\"):
        raise ZooError(
            f"Zoo entry name {recipe.name!r} must be a non-empty string without slashes "
            "(it is the checkpoint's file name)."
        )
    return recipe


def recipes_from_config(config: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> list[Recipe]:
    """Recipes from a list of dicts, or from a dict ``{name: fields}``; names must be unique."""
    if isinstance(config, Mapping):
        recipes = [recipe_from_dict(fields, name=name) for name, fields in config.items()]
    else:
        recipes = [
            entry if isinstance(entry, Recipe) else recipe_from_dict(entry) for entry in config
        ]
    names = [r.name for r in recipes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ZooError(f"Zoo recipe names must be unique; repeated: {duplicates}.")
    if not recipes:
        raise ZooError("The zoo is empty; give at least one recipe.")
    return recipes


# --------------------------------------------------------------------------- families


def _resnet(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models.resnet import BasicBlock, ResNet

    args = dict(
        block=BasicBlock,
        layers=(depth,) * 4,
        num_classes=num_classes,
        in_chans=1,
        channels=(width, 2 * width, 4 * width, 8 * width),
        stem_width=width,
    )
    return ResNet(**{**args, **kwargs})


def _convnext(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models.convnext import ConvNeXt

    args = dict(
        in_chans=1,
        num_classes=num_classes,
        depths=(depth,) * 4,
        dims=(width, 2 * width, 4 * width, 8 * width),
        # 4 stages, 3 stride-2 downsamplings: a patch stem of S/16 ends at 2x2.
        patch_size=max(1, image_size // 16),
    )
    return ConvNeXt(**{**args, **kwargs})


def _vit(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    args = dict(
        img_size=image_size,
        patch_size=max(1, image_size // 4),  # a 4x4 grid of patches
        in_chans=1,
        num_classes=num_classes,
        embed_dim=width,
        depth=depth,
        num_heads=max(1, width // 32),
        mlp_ratio=2.0,
    )
    return VisionTransformer(**{**args, **kwargs})


def _mixer(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models.mlp_mixer import MlpMixer

    args = dict(
        num_classes=num_classes,
        img_size=image_size,
        in_chans=1,
        patch_size=max(1, image_size // 4),
        num_blocks=depth,
        embed_dim=width,
    )
    return MlpMixer(**{**args, **kwargs})


def _regnet(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models.regnet import RegNet, RegNetCfg

    if width % 8:
        raise ZooError(f"regnet width must be a multiple of 8, got {width}.")
    # Linear width slope 1.7 * w0 with multiplier 2 quantises to exactly four stages of
    # widths w, 2w, 4w, 8w (one block each per unit of depth).
    cfg_args = dict(
        depth=4 * depth,
        w0=width,
        wa=1.7 * width / depth,
        wm=2.0,
        group_size=8,
        stem_width=max(8, width // 2),
    )
    cfg_args.update(kwargs.pop("cfg", {}))
    return RegNet(RegNetCfg(**cfg_args), in_chans=1, num_classes=num_classes, **kwargs)


# Block strings in timm's EfficientNet-builder notation (ds = depthwise-separable,
# ir = inverted residual, r repeats, k kernel, s stride, e expansion, c channels,
# se squeeze-excite ratio, nre = ReLU instead of the default activation).
_MOBILENETV3_ARCH = (
    ("ds_r1_k3_s2_e1_c16_se0.25_nre",),
    ("ir_r1_k3_s2_e4_c24_nre",),
    ("ir_r1_k5_s2_e4_c40_se0.25",),
    ("ir_r1_k3_s2_e4_c64_se0.25",),
    ("cn_r1_k1_s1_c128",),
)
_EFFICIENTNET_ARCH = (
    ("ds_r1_k3_s1_e1_c16_se0.25",),
    ("ir_r1_k3_s2_e6_c24_se0.25",),
    ("ir_r1_k5_s2_e6_c40_se0.25",),
    ("ir_r1_k3_s2_e6_c80_se0.25",),
    ("ir_r1_k3_s2_e6_c112_se0.25",),
)


def _block_args(arch: tuple[tuple[str, ...], ...], depth: int):
    from timm.models._efficientnet_builder import decode_arch_def

    return decode_arch_def([list(stage) for stage in arch], depth_multiplier=float(depth))


def _mobilenetv3(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models._efficientnet_builder import round_channels
    from timm.models.mobilenetv3 import MobileNetV3

    args = dict(
        block_args=_block_args(_MOBILENETV3_ARCH, depth),
        num_classes=num_classes,
        in_chans=1,
        stem_size=16,
        num_features=128,
        round_chs_fn=partial(round_channels, multiplier=width / 16),
        act_layer=nn.Hardswish,
    )
    return MobileNetV3(**{**args, **kwargs})


def _efficientnet(width: int, depth: int, image_size: int, num_classes: int, **kwargs) -> nn.Module:
    from timm.models._efficientnet_builder import round_channels
    from timm.models.efficientnet import EfficientNet

    args = dict(
        block_args=_block_args(_EFFICIENTNET_ARCH, depth),
        num_classes=num_classes,
        in_chans=1,
        stem_size=16,
        num_features=128,
        round_chs_fn=partial(round_channels, multiplier=width / 16),
        act_layer=nn.SiLU,
    )
    return EfficientNet(**{**args, **kwargs})


FAMILIES: dict[str, Callable[..., nn.Module]] = {
    "resnet": _resnet,
    "convnext": _convnext,
    "vit": _vit,
    "mixer": _mixer,
    "regnet": _regnet,
    "mobilenetv3": _mobilenetv3,
    "efficientnet": _efficientnet,
}


def _check_arch(recipe: Recipe) -> None:
    if recipe.arch.startswith("timm:"):
        import timm

        model_name = recipe.arch[len("timm:") :]
        if not timm.is_model(model_name):
            raise ZooError(
                f"Zoo entry {recipe.name!r}: {model_name!r} is not a timm model name; see "
                "`timm.list_models()`."
            )
    elif recipe.arch not in FAMILIES:
        raise ZooError(
            f"Zoo entry {recipe.name!r}: unknown architecture {recipe.arch!r}; use one of "
            f"{sorted(FAMILIES)} or 'timm:<model_name>'."
        )


def build_model(
    recipe: Recipe | Mapping[str, Any], num_classes: int, image_size: int | None = None
) -> nn.Module:
    """A randomly initialised timm model for ``recipe`` with a ``num_classes``-way head.

    The input side S is ``recipe.image_size``, else ``image_size``, else
    :data:`emms.datasets.digits.IMAGE_SIZE`; it is kept on the model as ``model.emms_image_size``.
    Initialisation uses the global torch RNG: seed it (``torch.manual_seed``) first for a
    reproducible model; :func:`pretrain` does so with ``recipe.seed``.
    """
    if not isinstance(recipe, Recipe):
        recipe = recipe_from_dict(recipe)
    _check_arch(recipe)
    size = int(recipe.image_size or image_size or IMAGE_SIZE)
    model = _build(recipe, num_classes, size)
    model.emms_image_size = size
    return model


def _build(recipe: Recipe, num_classes: int, size: int) -> nn.Module:
    kwargs = dict(recipe.kwargs)
    if recipe.arch.startswith("timm:"):
        import timm

        return timm.create_model(
            recipe.arch[len("timm:") :],
            pretrained=False,
            in_chans=1,
            num_classes=num_classes,
            **kwargs,
        )
    try:
        return FAMILIES[recipe.arch](recipe.width, recipe.depth, size, num_classes, **kwargs)
    except TypeError as exc:
        raise ZooError(f"Zoo entry {recipe.name!r}: bad kwargs {kwargs} ({exc}).") from exc


# --------------------------------------------------------------------------- training


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random affine jitter per image: rotation +-12 deg, scale 0.9..1.1, shift +-1/8 side.

    Blank pixels enter from outside the frame. Deterministic given the generator state.
    """
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator, dtype=x.dtype) * 2 - 1
    angle = u[:, 0] * math.radians(12.0)
    scale = 1.0 + 0.1 * u[:, 1]
    shift = 0.25 * u[:, 2:]  # affine_grid coordinates span [-1, 1]: 0.25 = 1/8 of the side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - _BACKGROUND, grid, mode="bilinear", align_corners=False)
    return out + _BACKGROUND


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    generator: torch.Generator,
    augment: bool,
    progress_desc: str | None,
    head_lr: float | None = None,
    min_steps: int = 0,
) -> None:
    """AdamW with cosine decay to 0; data order (and augmentation) from ``generator``.

    ``head_lr`` (if given) is the learning rate of the classifier's parameters, ``lr``
    that of the rest. Training runs ``epochs`` epochs, or more whole epochs when that
    gives fewer than ``min_steps`` optimizer steps.
    """
    from tqdm.auto import tqdm

    n = len(images)
    batch_size = min(batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    if epochs > 0 and min_steps > 0:
        epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    total = max(1, epochs * steps_per_epoch)
    if head_lr is None:
        groups = [{"params": list(model.parameters()), "lr": lr}]
    else:
        head_ids = {id(p) for p in model.get_classifier().parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr": lr},
            {"params": [p for p in model.parameters() if id(p) in head_ids], "lr": head_lr},
        ]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )
    model.train()
    bar = tqdm(
        total=total, desc=progress_desc, disable=progress_desc is None, leave=False, unit="step"
    )
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on a single sample
                continue
            x = images[idx]
            if augment:
                x = augment_batch(x, generator)
            loss = F.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()


def pretrain(
    recipe: Recipe | Mapping[str, Any], source: SourceDataset, progress: bool = True
) -> nn.Module:
    """Build ``recipe``'s model and pre-train it on the SOURCE task; returns it in eval mode.

    Deterministic for a given recipe (seed) and thread count; the caller's global torch RNG
    is left untouched. Shows a tqdm bar per model unless ``progress`` is False.
    """
    if not isinstance(recipe, Recipe):
        recipe = recipe_from_dict(recipe)
    images = torch.as_tensor(np.ascontiguousarray(source.images), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(source.labels), dtype=torch.long)
    if images.ndim != 4 or images.shape[-1] != images.shape[-2] or len(images) < 2:
        raise ZooError(
            f"The source images must have shape (N, 1, S, S) with N >= 2, got "
            f"{tuple(images.shape)}; build them with emms.datasets.digits.load_source."
        )
    size = images.shape[-1]
    if recipe.image_size is not None and recipe.image_size != size:
        raise ZooError(
            f"Zoo entry {recipe.name!r} sets image_size={recipe.image_size} but the source "
            f"images are {size}x{size}; drop image_size from the recipe or load the source "
            f"with image_size={recipe.image_size}."
        )
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(recipe.seed)
        model = build_model(recipe, source.num_classes, image_size=size)
        generator = torch.Generator().manual_seed(recipe.seed)
        train_classifier(
            model,
            images,
            labels,
            epochs=recipe.epochs,
            lr=recipe.lr,
            batch_size=recipe.batch_size,
            weight_decay=recipe.weight_decay,
            generator=generator,
            augment=recipe.augment,
            progress_desc=f"pretrain {recipe.name}" if progress else None,
        )
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, images, batch_size: int = 256) -> np.ndarray:
    """Logits of ``model`` (eval mode, no grad), float32 (N, C)."""
    was_training = model.training
    model.eval()
    x = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32)
    try:
        out = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


def source_probabilities(model: nn.Module, images, batch_size: int = 256) -> np.ndarray:
    """Softmax over the model's SOURCE classes: float32 (N, C_src), rows sum to 1.

    The input of LEEP and NCE. ``model`` must still carry its pre-training head (as
    returned by :func:`pretrain` or :func:`load_checkpoint`).
    """
    logits = torch.from_numpy(predict_logits(model, images, batch_size)).double()
    return torch.softmax(logits, dim=1).numpy().astype(np.float32)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, sidecar)``: ``<stem>.safetensors`` and ``<stem>.json``."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _num_classes(model: nn.Module) -> int:
    return int(model.num_classes)  # every timm classifier has it


def save_checkpoint(
    model: nn.Module,
    recipe: Recipe | Mapping[str, Any],
    path: str | os.PathLike,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``model``'s weights (safetensors) and a JSON sidecar with the recipe.

    Args:
        path: ``zoo/<name>`` or ``zoo/<name>.safetensors``; the sidecar is
            ``zoo/<name>.json``.
        extra: optional JSON-serialisable facts to keep in the sidecar (e.g. timings).

    Returns:
        The two written paths. Both are written to temporary files and renamed.
    """
    from safetensors.torch import save

    if not isinstance(recipe, Recipe):
        recipe = recipe_from_dict(recipe)
    size = recipe.image_size or getattr(model, "emms_image_size", None)
    if size is None:
        raise ZooError(
            f"Cannot tell the input size of {recipe.name!r}: set image_size in the recipe or "
            "build the model with emms.models.zoo.build_model / pretrain."
        )
    recipe = dataclasses.replace(recipe, image_size=int(size))
    weights, sidecar = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "recipe": recipe.to_dict(),
        "num_classes": _num_classes(model),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
    }
    if extra:
        meta["extra"] = dict(extra)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(weights, save(state, metadata={"emms": text}))
    atomic_write_text(sidecar, text)
    return weights, sidecar


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, Recipe]:
    """Rebuild a model saved by :func:`save_checkpoint`; returns ``(model, recipe)``.

    The model is in eval mode and still carries its SOURCE head. Only safetensors and
    JSON are read: nothing is unpickled.
    """
    from safetensors.torch import load_file

    weights, sidecar = checkpoint_paths(path)
    fix = "run `dvc repro zoo` (or `python -m emms zoo`) to pre-train the zoo"
    for file in (weights, sidecar):
        if not file.is_file():
            raise CheckpointError(f"Zoo checkpoint file {file} is missing; {fix}.")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        recipe = recipe_from_dict(meta["recipe"])
        num_classes = int(meta["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"Zoo checkpoint sidecar {sidecar} is unreadable ({exc}); delete it and {fix}."
        ) from exc
    try:
        state = load_file(weights)
    except Exception as exc:
        raise CheckpointError(
            f"Zoo checkpoint {weights} is corrupt or truncated ({exc}); delete it and {fix}."
        ) from exc
    model = build_model(recipe, num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"Zoo checkpoint {weights} does not match its recipe {recipe.name!r} ({exc}); {fix}."
        ) from exc
    model.eval()
    return model, recipe
