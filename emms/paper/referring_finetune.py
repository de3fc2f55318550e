"""Ground truth of the paper-scale referring experiment: every zoo model fine-tuned to
pick the referred object's box, scored by Acc@0.5 (IoU >= 0.5) on the evaluation split.

The output is the truth table ``python -m emms.paper run --task referring --truth CSV``
reads: one row per (dataset, model, seed) with ``acc_at_0.5`` (a fraction, as in the
embedded experiment), cached row by row (:mod:`emms.paper.finetune`).

The model is the one the features describe (:mod:`emms.paper.referring_extract`): the
candidate locations of the image (OWL-ViT / OWLv2 patches, Grounding DINO queries, CLIP
patch tokens), each scored against the expression, each with a box. The box is the
model's own box head where it has one (OWL's and Grounding DINO's ``pred_boxes``); CLIP
has none, so a new one is added in OWL-ViT's form (Minderer et al., ECCV 2022): an MLP on
the candidate's feature plus a fixed bias, the inverse sigmoid of its patch's centre and
size, through a sigmoid. The prediction is the box of the best-scoring candidate; every
weight is trained.

Loss: DETR's set loss with a single target (Carion et al., ECCV 2020): the matched
candidate is the one of least cost ``-p_c + 5 L1 + 2 (1 - GIoU)`` (``p`` the softmax of
the scores over candidates, as the features weight them; Hungarian matching with one
target is this argmin), and the loss is the cross-entropy of the scores towards it plus
``5 L1 + 2 (1 - GIoU)`` of its box (DETR's weights), boxes as normalised ``(cx, cy, w,
h)`` in the model's image frame.

Recipe (``finetune:`` in ``params/paper/referring.yaml``). The EMMS paper states no
referring recipe and the zoo is ours, so the recipe is **ours**: AdamW at 1e-5 for the
model and 1e-4 for a new head, weight decay 1e-4 (DETR's; not on biases and norms),
linear warm-up over 10 % of the steps then linear decay, gradients clipped at norm 0.1
(DETR's), 5 epochs of batches of 16 expressions, seeds 0, 1, 2.

Image frames: the GT box is mapped into the frame the processor gives the model (OWL-ViT
and CLIP: resize, then centre crop; OWLv2: padded to a square at the bottom right, then
resized; Grounding DINO: its boxes are relative to the unpadded image), clipped to it;
predictions are mapped back to pixels of the original image and scored there against
the unclipped GT box (a box partly outside CLIP's centre crop cannot be matched exactly).
Grounding DINO trains on batches of one image size, as its features are extracted.

Evaluation split: ``eval_split`` per dataset (RefCOCO, RefCOCO+ and RefCOCOg ``val``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .config import PaperRunError, RunConfig
from .finetune import (
    adamw_warmup_linear,
    load_finetune_block,
    run_image_text_finetuning,
    seeded,
)

__all__ = [
    "ReferringRecipe",
    "load_recipe",
    "ImageFrame",
    "image_frame",
    "box_iou",
    "generalized_iou",
    "match_candidate",
    "CandidateBoxHead",
    "finetune_referring_model",
    "run_finetuning",
]


class ReferringRecipe(BaseModel):
    """The ``finetune:`` block of ``params/paper/referring.yaml`` (module docstring)."""

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-5, gt=0)
    head_lr: float = Field(1e-4, gt=0, description="a new box head (CLIP)")
    weight_decay: float = Field(1e-4, ge=0)
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of steps")
    max_grad_norm: float = Field(0.1, gt=0)
    epochs: PositiveInt = 5
    batch_size: PositiveInt = 16
    l1_weight: float = Field(5.0, ge=0)
    giou_weight: float = Field(2.0, ge=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    eval_split: dict[str, str] = Field(
        default_factory=lambda: {"refcoco": "val", "refcoco+": "val", "refcocog": "val"}
    )


def load_recipe(cfg: RunConfig) -> ReferringRecipe:
    """The config's ``finetune:`` block, checked (defaults: the module docstring)."""
    recipe = load_finetune_block(cfg, ReferringRecipe, "emms/paper/referring_finetune.py")
    missing = [d for d in cfg.datasets if d not in recipe.eval_split]
    if missing:
        raise PaperRunError(
            f"{cfg.config_path}: finetune.eval_split names no evaluation split for "
            f"{missing}; add e.g. `eval_split: {{{missing[0]}: val}}`."
        )
    return recipe


# --------------------------------------------------------------------------- boxes


class ImageFrame:
    """The map from pixels of one original image to the model's normalised frame:
    ``u = (x * scale_x - left) / width``, ``v = (y * scale_y - top) / height``."""

    def __init__(self, scale_x, scale_y, left, top, width, height):
        self.scale = np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float64)
        self.offset = np.array([left, top, left, top], dtype=np.float64)
        self.size = np.array([width, height, width, height], dtype=np.float64)

    def to_model(self, box_xyxy) -> np.ndarray:
        """Pixel ``[x1, y1, x2, y2]`` -> normalised ``(cx, cy, w, h)``, clipped to [0, 1]."""
        x1, y1, x2, y2 = np.clip(
            (np.asarray(box_xyxy, np.float64) * self.scale - self.offset) / self.size, 0, 1
        )
        return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])

    def to_pixels(self, box_cxcywh) -> np.ndarray:
        """Normalised ``(cx, cy, w, h)`` -> pixel ``[x1, y1, x2, y2]`` of the original."""
        cx, cy, w, h = np.asarray(box_cxcywh, np.float64)
        corners = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        return (corners * self.size + self.offset) / self.scale


def _pair(size: dict, key_h="height", key_w="width"):
    return int(size[key_h]), int(size[key_w])


def image_frame(model_type: str, processor: dict, width: int, height: int) -> ImageFrame:
    """The frame of an image of ``width`` x ``height`` pixels as the model sees it, from
    the image processor's settings (``processor.to_dict()``)."""
    if model_type == "grounding-dino":  # boxes relative to the unpadded image
        return ImageFrame(1.0, 1.0, 0.0, 0.0, width, height)
    if processor.get("do_pad") and model_type == "owlv2":  # square, padded bottom right
        side = max(width, height)
        return ImageFrame(1.0, 1.0, 0.0, 0.0, side, side)
    scale_x = scale_y = 1.0
    new_w, new_h = width, height
    size = processor.get("size") or {}
    if processor.get("do_resize", True) and size:
        if "height" in size:
            new_h, new_w = _pair(size)
            scale_x, scale_y = new_w / width, new_h / height
        else:  # shortest edge to size, the long one in proportion
            short = int(size["shortest_edge"])
            new_w, new_h = (
                (short, int(short * height / width))
                if width <= height
                else (int(short * width / height), short)
            )
            scale_x, scale_y = new_w / width, new_h / height
    left = top = 0.0
    if processor.get("do_center_crop") and processor.get("crop_size"):
        crop_h, crop_w = _pair(processor["crop_size"])
        top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2
        new_w, new_h = crop_w, crop_h
    return ImageFrame(scale_x, scale_y, left, top, new_w, new_h)


def _corners(boxes):
    """(..., 4) ``(cx, cy, w, h)`` -> (..., 4) ``(x1, y1, x2, y2)`` (torch)."""
    import torch

    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_iou(a, b) -> np.ndarray:
    """IoU of matching rows of two (N, 4) ``[x1, y1, x2, y2]`` arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def generalized_iou(a, b):
    """GIoU (Rezatofighi et al., CVPR 2019) of (..., 4) ``(cx, cy, w, h)`` torch boxes,
    broadcast: IoU minus the share of the enclosing box that neither covers."""
    import torch

    a, b = _corners(a), _corners(b)
    low, high = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    hull = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    hull = hull.clamp(min=0).prod(-1)
    eps = 1e-9
    return inter / (union + eps) - (hull - union) / (hull + eps)


def match_candidate(scores, boxes, target, recipe: ReferringRecipe):
    """(B,) index of each row's matched candidate: the least ``-p + l1_weight * L1 +
    giou_weight * (1 - GIoU)`` over candidates (``scores`` (B, C), ``boxes`` (B, C, 4),
    ``target`` (B, 4))."""
    import torch

    with torch.no_grad():
        p = torch.softmax(scores.float(), 1)
        l1 = (boxes.float() - target[:, None]).abs().sum(-1)
        giou = generalized_iou(boxes.float(), target[:, None].expand_as(boxes))
        cost = -p + recipe.l1_weight * l1 + recipe.giou_weight * (1 - giou)
        return cost.argmin(1)


def CandidateBoxHead(dim: int, grid: int):  # noqa: N802 (a module factory, named as a class)
    """OWL-ViT's box head for a model without one: ``sigmoid(MLP(feature) + bias)``, the
    bias the inverse sigmoid of each patch's centre and size on a ``grid`` x ``grid``
    layout (row-major, as the patch tokens come)."""
    import torch
    from torch import nn

    class _Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 4))
            ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
            centre = torch.stack([(xs.flatten() + 0.5) / grid, (ys.flatten() + 0.5) / grid], 1)
            size = torch.full_like(centre, 1.0 / grid)
            self.register_buffer("bias", torch.logit(torch.cat([centre, size], 1)))

        def forward(self, features):
            return torch.sigmoid(self.mlp(features) + self.bias)

    return _Head()


# --------------------------------------------------------------------------- training


def _training_batches(record, rows, size: int, generator, one_image_size: bool):
    """Shuffled batches of ``rows``; with ``one_image_size`` each holds one image size
    (shuffled, then grouped by size in a stable sort, chunked, the chunks shuffled)."""
    import torch

    order = [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
    if not one_image_size:
        return [order[i : i + size] for i in range(0, len(order), size)]
    groups: dict[tuple, list[int]] = {}
    for i in order:
        groups.setdefault(tuple(record.image_sizes[i]), []).append(i)
    chunks = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    return [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]


def finetune_referring_model(
    entry, cfg: RunConfig, recipe: ReferringRecipe, train, dev, *, seed: int, device
) -> dict[str, float]:
    """Fine-tune one zoo model on ``train`` (a :class:`ReferringSplit`) with ``seed`` and
    return ``{"acc_at_0.5": ...}`` on ``dev``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from .extract import _autocast
    from .referring_extract import batches, candidates, encode_batch, model_kind
    from .vqa_extract import load_image_text_model

    model = load_image_text_model(entry, cfg, device, model_kind)
    model_type, processor, tokenizer = model.model_type, model.processor, model.tokenizer
    network, length = model.network, model.length
    settings = processor.to_dict()
    one_size = model_type == "grounding-dino"

    def frame(record, i):
        width, height = (int(v) for v in record.image_sizes[i])
        return image_frame(model_type, settings, width, height)

    def forward(record, chosen, head):
        images, text = encode_batch(
            model_type, processor, tokenizer, record, chosen, length, device
        )
        with _autocast(device, cfg.precision):
            features, scores, boxes = candidates(network, model_type, images, text, with_boxes=True)
        if head is not None:
            boxes = head(features.float())
        return scores.float(), boxes.float()

    with seeded(seed, device):
        head = None
        if model_type == "clip":  # no box head of its own
            with torch.no_grad():
                images, text = encode_batch(
                    model_type, processor, tokenizer, train, [0], length, device
                )
                features, _ = candidates(network, model_type, images, text)
            grid = int(round(features.shape[1] ** 0.5))
            head = CandidateBoxHead(features.shape[2], grid).to(device)
        rows = list(range(len(train.expressions)))
        targets = torch.tensor(
            np.stack([frame(train, i).to_model(train.boxes[i]) for i in rows]), dtype=torch.float32
        )
        generator = torch.Generator().manual_seed(seed)
        plan = [
            _training_batches(train, rows, recipe.batch_size, generator, one_size)
            for _ in range(recipe.epochs)
        ]
        steps = sum(len(epoch) for epoch in plan)
        groups = [(list(network.parameters()), recipe.lr)]
        if head is not None:
            groups.append((list(head.parameters()), recipe.head_lr))
        optimizer, scheduler = adamw_warmup_linear(
            groups, weight_decay=recipe.weight_decay, warmup=recipe.warmup, steps=steps
        )
        trained = [p for group, _ in groups for p in group]
        if head is not None:
            head.train()
        network.train()
        progress = tqdm(total=steps, desc=f"{entry.name} {train.dataset} seed {seed}",
                        disable=not cfg.progress)  # fmt: skip
        for epoch in plan:
            for chosen in epoch:
                scores, boxes = forward(train, chosen, head)
                target = targets[chosen].to(device)
                matched = match_candidate(scores, boxes, target, recipe)
                box = boxes[torch.arange(len(chosen), device=boxes.device), matched]
                loss = (
                    F.cross_entropy(scores, matched)
                    + recipe.l1_weight * (box - target).abs().sum(-1).mean()
                    + recipe.giou_weight * (1 - generalized_iou(box, target)).mean()
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, recipe.max_grad_norm)
                optimizer.step()
                scheduler.step()
                progress.update()
        progress.close()

    network.eval()
    if head is not None:
        head.eval()
    predicted = np.zeros((len(dev.expressions), 4))
    with torch.inference_mode():
        every = np.arange(len(dev.expressions))
        for chosen in batches(dev, every, cfg.batch_size, one_image_size=one_size):
            scores, boxes = forward(dev, chosen, head)
            rows_here = torch.arange(len(chosen), device=boxes.device)
            best = boxes[rows_here, scores.argmax(1)].cpu().numpy()
            for row, box in zip(chosen, best, strict=True):
                predicted[row] = frame(dev, row).to_pixels(box)
    hits = box_iou(predicted, np.asarray(dev.boxes)) >= 0.5
    return {"acc_at_0.5": float(hits.mean())}


def run_finetuning(cfg: RunConfig, out: str | Path) -> pd.DataFrame:
    """Fine-tune every (dataset, model, seed) not cached yet; write the truth table
    ``out`` (CSV, the embedded referring truth table's columns) and return it."""
    from . import referring_extract

    return run_image_text_finetuning(
        cfg,
        out,
        load_recipe(cfg),
        model_kind=referring_extract.model_kind,
        # looked up at each call: a patched module attribute is the one that runs
        finetune_model=lambda *args, **kwargs: finetune_referring_model(*args, **kwargs),
    )
