"""Referring-expression features of a paper zoo (EMMS §4.3), streamed to the cache,
resumable.

A referring model scores candidate locations of the image against the expression and its
box head reads the best one's features. One vector per (image, expression) must keep
that: the feature is the **score-weighted mean of the candidates' features**, the weights
the softmax over candidates of their match with the expression (a soft version of "the
box head reads the best-matching candidate"; the embedded referring experiment's head
takes the same score-weighted view of its image tokens). Per model family of the zoo
(``params/paper/referring.yaml``, ours: the paper's is not public):

* OWL-ViT / OWLv2 (``owlvit``, ``owlv2``): candidates are the image patches; features the
  patch embeddings the box and class heads read (``image_embeds``); scores the class
  logits of the patches for the expression as the one text query;
* Grounding DINO (``grounding-dino``): candidates are the decoder's object queries;
  features the decoder's last hidden states (what ``bbox_embed`` reads); a query's score
  its largest logit over the expression's tokens (the confidence Grounding DINO's
  post-processing ranks boxes by). The expression is lower-cased and ends with ``.``, as
  its processor prepares captions. Its image processor keeps each image's aspect ratio
  and pads a batch to its largest image, and the Swin backbone does not mask the padding
  (a padded image's features moved by up to 1.6 in the tiny test model), so a batch holds
  images of one size only: a feature does not depend on the rows beside it (tested);
* CLIP (``clip``, no box head): candidates are the vision tower's patch tokens through
  the final LayerNorm and the visual projection, L2-normalised (the dense use of CLIP,
  e.g. MaskCLIP, Zhou et al., ECCV 2022); scores their cosine with the expression's text
  embedding times the learnt logit scale. This rule is ours.

Inputs: the model folder's image processor (``preprocessor_config.json``) and tokenizer,
loaded separately; OWL models read their query padded to the text tower's length, as
their processor does. One row per (referred object, expression) of the training split.

Streaming and resume are those of :mod:`emms.paper.extract`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import RunConfig
from .extract import _autocast, _BlockWriter, _check_range
from .vqa_extract import checked_model_type, image_text_recipe, text_length

__all__ = [
    "REFERRING_FEATURE_RULE",
    "REFERRING_KINDS",
    "model_kind",
    "referring_recipe",
    "candidates",
    "weighted_mean",
    "encode_batch",
    "batches",
    "extract_referring_pair",
]

#: Bumped when the definition of the referring features changes (part of every recipe).
REFERRING_FEATURE_RULE = "softmax(expression match)-weighted mean of candidate features v1"

#: model_type -> what the candidates are
REFERRING_KINDS = {
    "owlvit": "patches",
    "owlv2": "patches",
    "grounding-dino": "queries",
    "clip": "patches",
}


def model_kind(entry, cfg: RunConfig) -> str:
    """The folder's ``config.json`` model type, checked to have a referring rule."""
    return checked_model_type(
        entry, cfg, REFERRING_KINDS, "referring", "emms/paper/referring_extract.py"
    )


def referring_recipe(entry, kind: str, processor, tokenizer, cfg: RunConfig) -> str:
    """The fingerprint of everything that defines a model's referring features."""
    return image_text_recipe(entry, REFERRING_FEATURE_RULE, kind, processor, tokenizer, cfg)


def candidates(network, model_type: str, images: dict, text: dict, *, with_boxes: bool = False):
    """``(features (B, C, D), scores (B, C))`` of the candidate locations of a batch; with
    ``with_boxes`` also each candidate's box from the model's own box head, ``(B, C, 4)``
    normalised ``(cx, cy, w, h)`` in the model's image frame (OWL: its ``pred_boxes`` of
    every patch; Grounding DINO: of every query), or None for CLIP, which has no box head
    (:mod:`emms.paper.referring_finetune` adds one)."""
    import torch
    import torch.nn.functional as F

    if model_type in ("owlvit", "owlv2"):
        out = network(**text, pixel_values=images["pixel_values"])
        batch, height, width, dim = out.image_embeds.shape
        found = out.image_embeds.reshape(batch, height * width, dim), out.logits[..., 0]
        return (*found, out.pred_boxes) if with_boxes else found
    if model_type == "grounding-dino":
        out = network(**text, **images)
        found = out.last_hidden_state, out.logits.max(-1).values
        return (*found, out.pred_boxes) if with_boxes else found
    vision = network.vision_model(pixel_values=images["pixel_values"]).last_hidden_state
    patches = network.visual_projection(network.vision_model.post_layernorm(vision[:, 1:]))
    patches = F.normalize(patches, dim=-1)
    query = network.get_text_features(**text)
    query = F.normalize(getattr(query, "pooler_output", query), dim=-1)
    scores = network.logit_scale.exp() * torch.einsum("bcd,bd->bc", patches, query)
    return (patches, scores, None) if with_boxes else (patches, scores)


def weighted_mean(features, scores):
    """(B, D): the softmax(scores)-weighted mean of the candidates' features."""
    import torch

    weights = torch.softmax(scores.float(), dim=1)
    return torch.einsum("bc,bcd->bd", weights, features.float())


def _texts(model_type: str, expressions: list[str]) -> list[str]:
    if model_type != "grounding-dino":
        return expressions
    # Grounding DINO's processor: lower case, the caption ends with a period
    return [
        e.lower().strip() if e.strip().endswith(".") else e.lower().strip() + "."
        for e in expressions
    ]


def encode_batch(model_type: str, processor, tokenizer, record, chosen, length: int, device):
    """``(images, text)``: the model inputs of the rows ``chosen`` of a
    :class:`ReferringSplit` on ``device`` (OWL models read their query padded to the text
    tower's length, as their processor does)."""
    accepted = {"input_ids", "attention_mask"} | (
        {"token_type_ids"} if model_type == "grounding-dino" else set()
    )
    images = processor(images=[record.load_image(i) for i in chosen], return_tensors="pt")
    text = tokenizer(
        _texts(model_type, [record.expressions[i] for i in chosen]),
        padding="max_length" if model_type in ("owlvit", "owlv2") else "longest",
        truncation=True,
        max_length=length,
        return_tensors="pt",
    )
    return (
        {k: v.to(device) for k, v in images.items()},
        {k: v.to(device) for k, v in text.items() if k in accepted},
    )


def batches(record, indices: np.ndarray, size: int, *, one_image_size: bool):
    """Lists of at most ``size`` consecutive row indices; with ``one_image_size`` a batch
    also holds images of one (width, height) only (Grounding DINO: see the module)."""
    batch: list[int] = []
    for i in (int(i) for i in indices):
        if batch and (
            len(batch) == size
            or (
                one_image_size
                and tuple(record.image_sizes[i]) != tuple(record.image_sizes[batch[0]])
            )
        ):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def extract_referring_pair(
    network,
    model_type: str,
    processor,
    tokenizer,
    record,
    indices: np.ndarray,
    path,
    meta: dict[str, Any],
    cfg: RunConfig,
    device,
    *,
    desc: str = "",
) -> None:
    """Referring features of one (model, dataset), streamed and cached at ``path``;
    nothing is left behind if it fails (the partial file is removed)."""
    import torch
    from tqdm.auto import tqdm

    length = text_length(network, tokenizer, cfg.max_length)
    writer = _BlockWriter(path, len(indices), np.float32)
    writer.discard()  # never trust a leftover of an interrupted run
    try:
        with torch.inference_mode():
            one_size = model_type == "grounding-dino"
            for chosen in tqdm(
                list(batches(record, indices, cfg.batch_size, one_image_size=one_size)),
                desc=desc,
                disable=not cfg.progress,
                unit="batch",
            ):
                images, text = encode_batch(
                    model_type, processor, tokenizer, record, chosen, length, device
                )
                with _autocast(device, cfg.precision):
                    features, scores = candidates(network, model_type, images, text)
                block = weighted_mean(features, scores).cpu().numpy()
                _check_range(block, desc, device, cfg.precision)
                writer.write(block)
        writer.finish({**meta, "candidates": REFERRING_KINDS[model_type]})
    finally:
        writer.discard()
