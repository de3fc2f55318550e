"""Visual-QA features of a paper zoo (EMMS §4.4), streamed to the cache, resumable.

A VQA model answers from a joint representation of the image and the question, so the
features of one (image, question) are the representation a VQA answer head reads. The
zoo (``params/paper/vqa.yaml``) is ours (the paper's is not public) and has two kinds of
image-text model; the rule follows each one's own VQA recipe:

* **fused** (one transformer reads both): the fused ``[CLS]``, which their VQA heads
  classify from.
  - ViLT (``model_type: vilt``): ``ViltModel(...).pooler_output``, the input of
    ``ViltForQuestionAnswering``'s classifier;
  - BLIP (``blip``, the ITM checkpoint): the question through the text encoder with
    cross-attention to the vision tokens, its first token (``question_embeds[:, 0]``,
    what the ITM head reads; BLIP's VQA model decodes its answer from the same fused
    states);
* **dual encoders** (CLIP ``clip``, SigLIP ``siglip``): no fusion inside the model; the
  usual linear VQA probe on them reads the concatenation of the L2-normalised image and
  question embeddings (``image_embeds``, ``text_embeds`` of the model's forward), so
  that is the feature (width twice the projection).

Inputs: the model folder's own image processor (``preprocessor_config.json``) and
tokenizer, loaded separately (so a folder needs both; the question is truncated to the
tokenizer's and the text tower's length). SigLIP reads its text as it was trained:
padded to the full length, without an attention mask. One row per training question, its image
decoded each time (an image repeats across its questions).

Streaming and resume are those of :mod:`emms.paper.extract`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emms.cache import fingerprint
from emms.models.paper_zoo import model_folder

from .config import PaperRunError, RunConfig
from .extract import _autocast, _BlockWriter, _check_range

__all__ = [
    "VQA_FEATURE_RULE",
    "VQA_KINDS",
    "checked_model_type",
    "model_kind",
    "load_inputs",
    "ImageTextModel",
    "load_image_text_model",
    "image_text_recipe",
    "vqa_recipe",
    "text_length",
    "encode_batch",
    "joint_features",
    "extract_vqa_pair",
]

#: Bumped when the definition of the VQA features changes (part of every recipe).
VQA_FEATURE_RULE = "fused [CLS] (ViLT, BLIP) or [image; question] embeddings (CLIP, SigLIP) v1"

#: model_type -> kind of joint representation
VQA_KINDS = {"vilt": "fused", "blip": "fused", "clip": "dual", "siglip": "dual"}


def checked_model_type(entry, cfg: RunConfig, rules, task: str, module: str) -> str:
    """The folder's ``config.json`` model type, checked to be one of ``rules``."""
    found = json.loads((model_folder(entry, cfg.weights) / "config.json").read_text())
    kind = found.get("model_type")
    if kind not in rules:
        raise PaperRunError(
            f"model {entry.name!r} is a {kind!r} model; {task} features are defined for "
            f"{sorted(rules)} ({module})."
        )
    return kind


def model_kind(entry, cfg: RunConfig) -> str:
    """The folder's ``config.json`` model type, checked to have a VQA rule."""
    return checked_model_type(entry, cfg, VQA_KINDS, "VQA", "emms/paper/vqa_extract.py")


def load_inputs(entry, cfg: RunConfig):
    """``(image_processor, tokenizer)`` from the model's folder (no download)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    from .text_extract import TOKENIZER_FILES

    folder = model_folder(entry, cfg.weights)
    if not (folder / "preprocessor_config.json").is_file():
        raise PaperRunError(
            f"model {entry.name!r}: no preprocessor_config.json in {folder}; the Hub "
            "snapshot of the model has it (copy the whole snapshot folder)."
        )
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise PaperRunError(
            f"model {entry.name!r}: no tokenizer in {folder} (none of "
            f"{', '.join(TOKENIZER_FILES)}); the Hub snapshot of the model has it."
        )
    try:
        return (
            AutoImageProcessor.from_pretrained(folder, local_files_only=True),
            AutoTokenizer.from_pretrained(folder, local_files_only=True),
        )
    except (OSError, ValueError, KeyError) as error:
        raise PaperRunError(
            f"model {entry.name!r}: the image processor or tokenizer in {folder} cannot be "
            f"read ({type(error).__name__}: {str(error).splitlines()[0]})."
        ) from error


@dataclass
class ImageTextModel:
    """An image-text zoo model ready to run: its rule's model type, input processors, the
    network on its device and the text length it takes."""

    model_type: str
    processor: Any
    tokenizer: Any
    network: Any
    length: int


def load_image_text_model(entry, cfg: RunConfig, device, kind=None) -> ImageTextModel:
    """Load ``entry`` for a task's rule: ``kind`` is the rule module's ``model_kind``
    (default VQA's), which checks the folder's model type has a rule."""
    from emms.models.paper_zoo import load_model

    model_type = (kind or model_kind)(entry, cfg)
    processor, tokenizer = load_inputs(entry, cfg)
    network = load_model(entry, cfg.weights).to(device)
    length = text_length(network, tokenizer, cfg.max_length)
    return ImageTextModel(model_type, processor, tokenizer, network, length)


def image_text_recipe(entry, rule: str, kind: str, processor, tokenizer, cfg: RunConfig) -> str:
    """The fingerprint of everything that defines an image-text model's features under
    ``rule`` (VQA here, referring in :mod:`emms.paper.referring_extract`)."""
    return fingerprint(
        {
            "entry": asdict(entry),
            "rule": rule,
            "kind": kind,
            "max_length": cfg.max_length,
            "image_processor": processor.to_dict(),
            "tokenizer": {"class": type(tokenizer).__name__, "vocab_size": len(tokenizer)},
            "precision": cfg.precision,
        }
    )


def vqa_recipe(entry, kind: str, processor, tokenizer, cfg: RunConfig) -> str:
    """The fingerprint of everything that defines a model's VQA features."""
    return image_text_recipe(entry, VQA_FEATURE_RULE, kind, processor, tokenizer, cfg)


def text_length(network, tokenizer, max_length: int) -> int:
    config = network.config
    text = getattr(config, "text_config", None) or config
    positions = getattr(text, "max_position_embeddings", None) or max_length
    return int(min(max_length, positions, tokenizer.model_max_length))


def encode_batch(model_type: str, processor, tokenizer, record, chosen, length: int, device):
    """``(images, text)``: the model inputs of the questions ``chosen`` (row indices of a
    :class:`VQASplit`) on ``device``, each image decoded from its file."""
    accepted = {
        "vilt": {"input_ids", "attention_mask", "token_type_ids"},
        # SigLIP was trained on text padded to its full length, read without a mask
        "siglip": {"input_ids"},
    }.get(model_type, {"input_ids", "attention_mask"})
    images = processor(images=[record.load_image(i) for i in chosen], return_tensors="pt")
    text = tokenizer(
        [record.questions[i] for i in chosen],
        padding="max_length" if model_type == "siglip" else "longest",
        truncation=True,
        max_length=length,
        return_tensors="pt",
    )
    return (
        {k: v.to(device) for k, v in images.items()},
        {k: v.to(device) for k, v in text.items() if k in accepted},
    )


def joint_features(network, model_type: str, images: dict, text: dict):
    """(B, D) joint representation of a batch (see the module docstring)."""
    import torch

    if model_type == "vilt":
        return network(**text, **images).pooler_output
    if model_type == "blip":
        vision = network.vision_model(pixel_values=images["pixel_values"]).last_hidden_state
        fused = network.text_encoder(
            input_ids=text["input_ids"],
            attention_mask=text["attention_mask"],
            encoder_hidden_states=vision,
            encoder_attention_mask=torch.ones(
                vision.shape[:2], dtype=torch.long, device=vision.device
            ),
        ).last_hidden_state
        return fused[:, 0]
    out = network(**text, pixel_values=images["pixel_values"])
    return torch.cat([out.image_embeds, out.text_embeds], 1)


def extract_vqa_pair(
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
    """Joint features of one (model, dataset), streamed and cached at ``path``; nothing is
    left behind if it fails (the partial file is removed)."""
    import torch
    from tqdm.auto import tqdm

    length = text_length(network, tokenizer, cfg.max_length)
    writer = _BlockWriter(path, len(indices), np.float32)
    writer.discard()  # never trust a leftover of an interrupted run
    try:
        with torch.inference_mode():
            for first in tqdm(
                range(0, len(indices), cfg.batch_size),
                desc=desc,
                disable=not cfg.progress,
                unit="batch",
            ):
                chosen = [int(i) for i in indices[first : first + cfg.batch_size]]
                images, text = encode_batch(
                    model_type, processor, tokenizer, record, chosen, length, device
                )
                with _autocast(device, cfg.precision):
                    block = joint_features(network, model_type, images, text)
                block = block.float().cpu().numpy()
                _check_range(block, desc, device, cfg.precision)
                writer.write(block)
        writer.finish({**meta, "kind": VQA_KINDS[model_type]})
    finally:
        writer.discard()
