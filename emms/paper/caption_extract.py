"""Captioning features of the paper's encoder/decoder pairs (EMMS §4.2), streamed to the
cache, resumable.

What is scored is a *pair* (``params/paper/captioning.yaml``, ``pairs:``): a transformers
``VisionEncoderDecoderModel`` whose decoder generates the caption with cross-attention to
the vision encoder's tokens. The truth is the published BLEU-4 of the nine pairs
(``data/reference/finetune_captioning_bleu4.csv``); a pair's weights are a
``save_pretrained`` folder ``<weights>/<pair>`` with the decoder's tokenizer and the
encoder's image processor (:func:`build_pair` makes one from the encoder's and the
decoder's folders).

The rule is the public release's (``forward_feature_caption.py`` of
OpenGVLab/Multitask-Model-Selector): the pair reads the image and, teacher-forced, the
caption; a pair's feature vector for an image is the **mean over the caption's positions
of the decoder's final hidden states**. In detail, for one (image, caption):

* ``pixel_values``: the pair folder's image processor (the release: the encoder's
  ``AutoFeatureExtractor``);
* ``labels``: the decoder tokenizer's ids of the caption (special tokens included), the
  decoder input is ``labels`` shifted right behind ``config.decoder_start_token_id``,
  which is what ``VisionEncoderDecoderModel`` does when given ``labels``;
* features: ``decoder_hidden_states[-1]`` averaged over the caption's positions, those
  whose label is one of its tokens (:func:`decoder_inputs`).

Deviations from the release, stated:

* padding: the release averages over every position of the padded batch, and shifting
  a padded label matrix keeps a shorter caption's last token as an input, so a caption's
  feature depends on the longest caption beside it; here the mean is over its own L
  positions only, the same for any batch (tested);
* the hidden state: the release hooks the *input* of the last decoder layer's output
  LayerNorm (the residual stream just before the normalisation, BERT / RoBERTa / BART
  decoders); here the layer's output (``output_hidden_states``), which every decoder
  returns, pre- or post-LN;
* rows: the release's row list (its ``all.txt``) is not public; here one row per training
  image with its first reference caption, the caption its F-label embeds too
  (:func:`emms.paper.labels.label_texts`).

Note that the features see the caption they are regressed on: that is the release's
design (the decoder's representation of the target text, conditioned on the image).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emms.cache import fingerprint
from emms.models.paper_zoo import PaperZoo, fetch_command, model_folder
from emms.models.text_features import context_mean

from .config import PaperRunError, RunConfig
from .extract import _autocast, _BlockWriter, _check_range

__all__ = [
    "CAPTION_FEATURE_RULE",
    "load_image_processor",
    "check_pair_config",
    "caption_recipe",
    "decoder_inputs",
    "extract_caption_pair",
    "build_pair",
]

#: Bumped when the definition of the captioning features changes (part of every recipe).
CAPTION_FEATURE_RULE = "caption-position mean of the decoder's final hidden states v1"


def load_image_processor(entry, cfg: RunConfig):
    """The pair folder's image processor (``preprocessor_config.json``; no download)."""
    from transformers import AutoImageProcessor

    folder = model_folder(entry, cfg.weights)
    if not (folder / "preprocessor_config.json").is_file():
        raise PaperRunError(
            f"pair {entry.name!r}: no preprocessor_config.json in {folder}: the pair needs "
            "its encoder's image processor (save_pretrained it into the pair folder; "
            f"`{fetch_command(entry, cfg.weights)}` does)."
        )
    try:
        return AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise PaperRunError(
            f"pair {entry.name!r}: the image processor in {folder} cannot be read "
            f"({type(error).__name__}: {str(error).splitlines()[0]})."
        ) from error


def check_pair_config(entry, cfg: RunConfig) -> dict[str, Any]:
    """The pair's ``config.json``, checked to say how the decoder starts and pads."""
    folder = model_folder(entry, cfg.weights)
    config = json.loads((folder / "config.json").read_text())
    for key in ("decoder_start_token_id", "pad_token_id"):
        if config.get(key) is None:
            raise PaperRunError(
                f"pair {entry.name!r}: {folder}/config.json has no {key}; set it to the "
                "decoder tokenizer's id (BERT / RoBERTa: cls / pad; BART: bos / pad) as the "
                "pair was fine-tuned, e.g. with `python -m emms.paper pair`."
            )
    return config


def caption_recipe(entry, tokenizer, processor, cfg: RunConfig) -> str:
    """The fingerprint of everything that defines a pair's captioning features."""
    return fingerprint(
        {
            "entry": asdict(entry),
            "rule": CAPTION_FEATURE_RULE,
            "max_length": cfg.max_length,
            "tokenizer": {"class": type(tokenizer).__name__, "vocab_size": len(tokenizer)},
            "image_processor": processor.to_dict(),
            "precision": cfg.precision,
        }
    )


class _ImageCaptions:
    """(pixel_values (3, H, W), first reference caption) of the sampled images."""

    def __init__(self, record, indices, processor):
        self.record, self.indices, self.processor = record, indices, processor

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        index = int(self.indices[i])
        image = self.record.load_image(index)
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"][0]
        return pixels, self.record.captions[index][0]


def decoder_inputs(tokenizer, captions: list[str], start: int, max_length: int):
    """``(decoder_input_ids, decoder_attention_mask, label_mask)`` of a padded batch.

    The labels are the tokenised captions; the decoder input is the labels shifted right
    behind ``start``, as ``VisionEncoderDecoderModel`` builds it from labels. Position t
    reads label t-1 and predicts label t, so the positions of a caption are those whose
    *label* is one of its tokens (``label_mask``, the tokenizer's own mask): L positions
    for an L-token caption whatever the padding. (The shifted input mask also keeps the
    caption's last token as an input at position L; its label is padding, and causal
    attention keeps it out of the earlier positions.)"""
    import torch

    encoded = tokenizer(
        captions, padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    first = torch.full((len(captions), 1), start, dtype=ids.dtype)
    shifted_mask = torch.cat([torch.ones_like(first), mask[:, :-1]], 1)
    return torch.cat([first, ids[:, :-1]], 1), shifted_mask, mask.bool()


def extract_caption_pair(
    network,
    tokenizer,
    processor,
    record,
    indices: np.ndarray,
    path,
    meta: dict[str, Any],
    cfg: RunConfig,
    device,
    *,
    desc: str = "",
) -> None:
    """Caption-mean features of one (pair, dataset), streamed and cached at ``path``;
    nothing is left behind if it fails (the partial file is removed)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    start = int(network.config.decoder_start_token_id)
    loader = DataLoader(
        _ImageCaptions(record, indices, processor),
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
    )
    writer = _BlockWriter(path, len(indices), np.float32)
    writer.discard()  # never trust a leftover of an interrupted run
    try:
        with torch.inference_mode():
            for pixels, captions in tqdm(loader, desc=desc, disable=not cfg.progress, unit="batch"):
                ids, mask, labels = decoder_inputs(tokenizer, list(captions), start, cfg.max_length)
                with _autocast(device, cfg.precision):
                    out = network(
                        pixel_values=pixels.to(device),
                        decoder_input_ids=ids.to(device),
                        decoder_attention_mask=mask.to(device),
                        output_hidden_states=True,
                    )
                hidden = out.decoder_hidden_states[-1].float()
                block = context_mean(hidden, labels.to(device)).cpu().numpy()
                _check_range(block, desc, device, cfg.precision)
                writer.write(block)
        writer.finish(meta)
    finally:
        writer.discard()


def build_pair(zoo: PaperZoo, pair: str, weights: str | Path) -> Path:
    """``<weights>/<pair>``: the pair built from its encoder's and decoder's folders
    (``VisionEncoderDecoderModel.from_encoder_decoder_pretrained``; the decoder gets new,
    randomly initialised cross-attention), with the decoder's tokenizer, the encoder's
    image processor and the start / pad ids the features need. Such a pair is *not* the
    paper's: the release fine-tuned every pair on COCO captions before scoring it."""
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    from emms.models.paper_zoo import check_weights

    if pair not in zoo.pairs:
        raise PaperRunError(f"{pair!r} is not a pair of the zoo; choose from {sorted(zoo.pairs)}.")
    encoder = zoo.models[zoo.pairs[pair]["encoder"]]
    decoder = zoo.models[zoo.pairs[pair]["decoder"]]
    folders = [check_weights(member, weights) for member in (encoder, decoder)]
    try:
        tokenizer = AutoTokenizer.from_pretrained(folders[1], local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(folders[0], local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise PaperRunError(
            f"pair {pair!r}: the decoder's tokenizer ({folders[1]}) or the encoder's image "
            f"processor ({folders[0]}) cannot be read: {str(error).splitlines()[0]}"
        ) from error
    model = VisionEncoderDecoderModel.from_encoder_decoder_pretrained(
        str(folders[0]), str(folders[1]), local_files_only=True
    )
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if start is None or tokenizer.pad_token_id is None:
        raise PaperRunError(
            f"pair {pair!r}: the decoder's tokenizer has no cls/bos or no pad token to start "
            "and pad the captions."
        )
    model.config.decoder_start_token_id = start
    model.config.pad_token_id = tokenizer.pad_token_id
    out = Path(weights) / pair
    partial = out.with_name(f".{pair}.partial")  # a failed save leaves no half pair
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for part in (model, tokenizer, processor):
            part.save_pretrained(partial)
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out
