"""Record types of the paper-scale dataset readers (one record per split).

Every reader of :mod:`emms.datasets.paper` returns one of the five records below for one
split of one dataset. They hold references to images (paths, or loaders for datasets that
ship pixels inside array files such as CIFAR), never decoded pixels, so reading a split is
cheap; :meth:`load_image` decodes one image on demand and turns a file that does not decode
into an :class:`ImageDecodeError` naming it.

Shapes use N for the number of samples of the split and C for the number of classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DatasetLayoutError",
    "ImageDecodeError",
    "ImageSource",
    "open_image",
    "RecognitionSplit",
    "CaptioningSplit",
    "VQASplit",
    "AnswerSpan",
    "TextQASplit",
    "ReferringSplit",
]

#: A path to an image file, or a zero-argument callable returning a PIL image.
ImageSource = Path | Callable[[], Image.Image]


class DatasetLayoutError(ValueError):
    """A dataset folder is missing, incomplete or malformed.

    The message names the dataset, the path tried, what was wrong, the expected layout and
    where the data comes from.
    """


class ImageDecodeError(DatasetLayoutError):
    """An image file of a dataset is missing or does not decode."""


def open_image(source: ImageSource, dataset: str = "") -> Image.Image:
    """Decode one image to RGB.

    Raises:
        ImageDecodeError: the file is missing or is not an image PIL can decode.
    """
    if callable(source) and not isinstance(source, Path):
        return source().convert("RGB")
    path = Path(source)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
        raise ImageDecodeError(
            f"{dataset or 'dataset'}: image {path} could not be read ({error}). Re-extract "
            "the dataset's image archive."
        ) from error


def _check_len(record, name: str, values, n: int) -> None:
    if len(values) != n:
        raise ValueError(
            f"{record.dataset}/{record.split}: {name} has {len(values)} entries, expected {n}."
        )


class _ImageRecord:
    dataset: str
    images: tuple

    def __len__(self) -> int:
        return len(self.images)

    def load_image(self, index: int) -> Image.Image:
        """Decode image ``index`` (RGB PIL image); :class:`ImageDecodeError` if it fails."""
        return open_image(self.images[index], self.dataset)

    def undecodable(self, *, progress: bool = False) -> list[int]:
        """Indices of the images that are missing or do not decode (decodes every image
        once: a check to run before a long feature extraction)."""
        from tqdm.auto import tqdm

        bad = []
        for index in tqdm(range(len(self)), desc=f"check {self.dataset}", disable=not progress):
            try:
                self.load_image(index)
            except ImageDecodeError:
                bad.append(index)
        return bad


@dataclass(frozen=True, eq=False)
class RecognitionSplit(_ImageRecord):
    """Image classification.

    Attributes:
        dataset, split: registry name and split read.
        images: N image sources (paths, or loaders for in-memory pixels).
        class_ids: (N,) int64, values in [0, C).
        class_names: C class names, index = class id (the text turned into F-labels).
        multi_hot: (N, C) uint8 for multi-label datasets (Pascal VOC), else None; then
            ``class_ids`` is the single label derived from it (see the reader).
    """

    dataset: str
    split: str
    images: tuple[ImageSource, ...]
    class_ids: np.ndarray
    class_names: tuple[str, ...]
    multi_hot: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.images)
        _check_len(self, "class_ids", self.class_ids, n)
        if n and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.class_names)):
            raise ValueError(f"{self.dataset}/{self.split}: class id out of range.")
        if self.multi_hot is not None and self.multi_hot.shape != (n, len(self.class_names)):
            raise ValueError(f"{self.dataset}/{self.split}: multi_hot must be (N, C).")


@dataclass(frozen=True, eq=False)
class CaptioningSplit(_ImageRecord):
    """Image captioning: one entry per image.

    Attributes:
        images: N image paths.
        image_ids: N identifiers (file names).
        captions: N tuples of reference captions (raw text, at least one each).
    """

    dataset: str
    split: str
    images: tuple[Path, ...]
    image_ids: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        n = len(self.images)
        _check_len(self, "image_ids", self.image_ids, n)
        _check_len(self, "captions", self.captions, n)
        if any(len(c) == 0 for c in self.captions):
            raise ValueError(f"{self.dataset}/{self.split}: an image has no caption.")


@dataclass(frozen=True, eq=False)
class VQASplit(_ImageRecord):
    """Visual question answering: one entry per question.

    Attributes:
        images: N image paths (an image repeats across its questions).
        questions: N questions.
        answers: N answers as distributed (DAQUAR keeps multi-object answers like
            ``"chair, table"`` as one string).
        question_types: N type names where the dataset has them (COCO-QA: object, number,
            color, location; CLEVR: the program's last function), else None.
    """

    dataset: str
    split: str
    images: tuple[Path, ...]
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    question_types: tuple[str, ...] | None = None

    def __post_init__(self):
        n = len(self.images)
        _check_len(self, "questions", self.questions, n)
        _check_len(self, "answers", self.answers, n)
        if self.question_types is not None:
            _check_len(self, "question_types", self.question_types, n)


@dataclass(frozen=True)
class AnswerSpan:
    """A character span of a context: ``context[start:end] == text``."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True, eq=False)
class TextQASplit:
    """Extractive text QA (SQuAD): one entry per question.

    Attributes:
        ids: N question ids.
        titles: N article titles.
        contexts: N paragraphs (shared paragraphs repeat).
        questions: N questions.
        answers: N tuples of gold spans (empty for unanswerable questions).
        is_impossible: (N,) bool, True for SQuAD 2.0's unanswerable questions.
        plausible_answers: N tuples of SQuAD 2.0's plausible (wrong) spans, else empty.
    """

    dataset: str
    split: str
    ids: tuple[str, ...]
    titles: tuple[str, ...]
    contexts: tuple[str, ...]
    questions: tuple[str, ...]
    answers: tuple[tuple[AnswerSpan, ...], ...]
    is_impossible: np.ndarray
    plausible_answers: tuple[tuple[AnswerSpan, ...], ...] = field(default=())

    def __post_init__(self):
        n = len(self.ids)
        for name in ("titles", "contexts", "questions", "answers", "is_impossible"):
            _check_len(self, name, getattr(self, name), n)
        if self.plausible_answers:
            _check_len(self, "plausible_answers", self.plausible_answers, n)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class ReferringSplit(_ImageRecord):
    """Referring expression comprehension: one entry per (referred object, expression).

    Attributes:
        images: N image paths (COCO train2014).
        expressions: N referring expressions (``sentences[].sent``).
        boxes: (N, 4) float64 ``[x1, y1, x2, y2]`` in pixels of the original image,
            converted from COCO's ``[x, y, w, h]``.
        image_sizes: (N, 2) int64 ``(width, height)`` from instances.json, to normalise
            boxes.
        ref_ids, ann_ids, image_ids: (N,) int64 identifiers of the refs file and COCO.
        categories: N COCO category names of the referred objects.
    """

    dataset: str
    split: str
    images: tuple[Path, ...]
    expressions: tuple[str, ...]
    boxes: np.ndarray
    image_sizes: np.ndarray
    ref_ids: np.ndarray
    ann_ids: np.ndarray
    image_ids: np.ndarray
    categories: tuple[str, ...]

    def __post_init__(self):
        n = len(self.images)
        for name in (
            "expressions",
            "boxes",
            "image_sizes",
            "ref_ids",
            "ann_ids",
            "image_ids",
            "categories",
        ):
            _check_len(self, name, getattr(self, name), n)
        if n and (
            np.any(self.boxes[:, 2] < self.boxes[:, 0])
            or np.any(self.boxes[:, 3] < self.boxes[:, 1])
        ):
            raise ValueError(f"{self.dataset}/{self.split}: a box has x2 < x1 or y2 < y1.")
