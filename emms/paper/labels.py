"""F-labels of the paper-scale run: every training label as text (:func:`label_texts`),
embedded by the paper's text encoders, cached per (dataset, encoder) with a sidecar.

The encoders are the classes of :mod:`emms.models.flabels`, built from a local folder:
``encoder_dirs[name]`` of the run config, else ``<weights>/<name>`` (the layout
:func:`emms.models.flabels.load_encoder` expects under ``$EMMS_WEIGHTS``). Encoders of the
embedded benchmark (``minilm``, ...) come from :func:`load_encoder` itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emms.cache import fingerprint, save_array
from emms.models.flabels import (
    ENCODERS,
    EncoderUnavailable,
    OpenCLIPTextEncoder,
    TextEncoder,
    TransformerTextEncoder,
    embed_texts,
    load_encoder,
)
from emms.tasks.base import label_text
from emms.tasks.textqa import NO_ANSWER

from .config import RunConfig
from .extract import is_finished
from .text_extract import TOKENIZER_FILES

__all__ = ["encoder_folder", "check_encoder", "build_encoder", "label_texts", "write_flabels"]

_OPEN_CLIP = {"clip-vit-g-14": "ViT-g-14"}
_CLIP_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")


def encoder_folder(name: str, cfg: RunConfig) -> Path:
    return cfg.encoder_dirs.get(name, cfg.weights / name)


def _hub_id(name: str) -> str:
    return {"bert-large-uncased": "google-bert/bert-large-uncased",
            "gpt2-medium": "openai-community/gpt2-medium",
            "clip-vit-g-14": "laion/CLIP-ViT-g-14-laion2B-s12B-b42K"}.get(name, name)  # fmt: skip


def check_encoder(name: str, cfg: RunConfig) -> Path | None:
    """The encoder's local folder, checked to hold weights (pre-flight)."""
    if name not in _OPEN_CLIP and name not in ("bert-large-uncased", "gpt2-medium"):
        if name in cfg.encoder_dirs:
            folder = cfg.encoder_dirs[name]
        else:
            return None  # an embedded-benchmark encoder, bundled with the environment
    else:
        folder = encoder_folder(name, cfg)
    # a transformers folder needs its tokenizer too: without one, transformers builds an
    # empty vocabulary instead of failing, and every label would embed the same
    needed = [_CLIP_FILES] if name in _OPEN_CLIP else [("config.json",), TOKENIZER_FILES]
    for files in needed:
        if not folder.is_dir() or not any((folder / f).is_file() for f in files):
            raise EncoderUnavailable(
                f"F-label encoder {name!r}: no {' or '.join(files)} in {folder}. On a "
                f"machine with network run `hf download {_hub_id(name)} --local-dir "
                f"{folder}` and copy the folder here (or set run.encoder_dirs in the config)."
            )
    return folder


def build_encoder(name: str, cfg: RunConfig, device="cpu") -> TextEncoder:
    """The encoder ``name`` from its local folder, on ``device`` (float32 there: see
    :class:`emms.models.flabels.TextEncoder`)."""
    folder = check_encoder(name, cfg)
    description = ENCODERS[name][0]
    if folder is None:
        encoder = load_encoder(name)
    elif name in _OPEN_CLIP:
        checkpoint = next(folder / f for f in _CLIP_FILES if (folder / f).is_file())
        encoder = OpenCLIPTextEncoder(name, _OPEN_CLIP[name], checkpoint, description=description)
    else:
        encoder = TransformerTextEncoder(name, folder, description=description)
    return encoder.to(device)


def encoder_recipe(name: str, cfg: RunConfig) -> str:
    """Fingerprint of the encoder: its name, template and (for a folder) its config."""
    folder = check_encoder(name, cfg)
    config = None
    if folder is not None and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
    return fingerprint({"encoder": name, "template": cfg.template, "config": config})


def label_texts(record, indices: np.ndarray, cfg: RunConfig) -> list[str]:
    """One text per sampled training item, as the embedded experiments write them
    (:func:`emms.tasks.base.label_text`): recognition, ``template`` with the class name;
    text QA, ``Q: question A: answer`` with the first gold answer, or ``no answer`` for
    SQuAD 2.0's unanswerable questions (the embedded text-QA target's label); captioning,
    the image's first reference caption (the caption its pair's features read,
    :mod:`emms.paper.caption_extract`); VQA, ``Q: question A: answer`` (the embedded
    experiments' answer label, paper §3.1); referring, the box as text in the paper's
    format (:func:`emms.tasks.base.box_text`: normalised to [0, 1], fixed precision)."""
    if cfg.label_format == "caption":
        return [label_text("caption", record.captions[i][0]) for i in indices]
    if cfg.label_format == "box":
        return [
            label_text(
                "box",
                record.boxes[i],
                width=float(record.image_sizes[i][0]),
                height=float(record.image_sizes[i][1]),
            )
            for i in indices
        ]
    if cfg.label_format == "answer":
        return [
            label_text("answer", record.answers[i], question=record.questions[i]) for i in indices
        ]
    if cfg.label_format == "span":
        return [
            label_text(
                "span",
                record.answers[i][0].text if record.answers[i] else NO_ANSWER,
                question=record.questions[i],
            )
            for i in indices
        ]
    names = list(record.class_names)
    return [
        label_text("class", record.class_ids[i], template=cfg.template, class_names=names)
        for i in indices
    ]


def write_flabels(
    dataset: str,
    record,
    indices: np.ndarray,
    cfg: RunConfig,
    computed: list,
    reused: list,
    device="cpu",
) -> None:
    """Embed the labels of ``dataset`` with every encoder not cached yet, on ``device``
    (recorded in the sidecar; a cache made on another device is reused as it is)."""
    texts = None
    for name in cfg.encoders:
        path = cfg.flabels_path(dataset, name)
        expect = {
            "task": cfg.task,
            "dataset": dataset,
            "split": record.split,
            "encoder": name,
            "template": cfg.template,
            "recipe": encoder_recipe(name, cfg),
            "sample": fingerprint(indices.tolist()),
        }
        if is_finished(path, expect):
            reused.append(("flabels", dataset, name))
            continue
        texts = texts if texts is not None else label_texts(record, indices, cfg)
        encoder = build_encoder(name, cfg, device)
        array = embed_texts(encoder, texts, progress=cfg.progress)
        save_array(
            path,
            array.astype(np.float32),
            **expect,
            device=str(device),
            description=encoder.description,
        )
        del encoder  # the next encoder's weights take its place on the device
        computed.append(("flabels", dataset, name))
