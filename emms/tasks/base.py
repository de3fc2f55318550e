"""What an experiment is: a task declares its labels, its truth and its model hooks.

The paper's five experiments (§4) differ in four things only, and a :class:`Task` says
each of them; every stage, cache and report is shared:

* the **label format** (``class``, ``caption``, ``answer``, ``span``, ``box``) and how a
  label becomes text for the F-labels (:func:`label_text`, paper §3.1);
* how a zoo model is **fine-tuned** for the task and which **truth metric** it reports
  (accuracy, BLEU-4, VQA accuracy, F1/EM, Acc@0.5);
* how **features** are extracted (the representation the task head reads);
* which **data** it uses (one generic :class:`TargetData` per target).

A task that is declared but not built raises :class:`TaskNotBuilt` from every hook, with
the issue that builds it; its label format and metric are declared already, so the seams
the other experiments need are exercised by tests now.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "LABEL_FORMATS",
    "SELECTOR_FORMAT",
    "Task",
    "TargetData",
    "TaskNotBuilt",
    "label_text",
    "box_text",
]

#: The label formats of the five experiments.
LABEL_FORMATS = ("class", "caption", "answer", "span", "box")

#: Which selectors apply to a label format: the registry groups them as ``class`` (class
#: ids), ``text`` (anything embedded as text) and ``box`` (:mod:`emms.selectors.registry`).
SELECTOR_FORMAT = {
    "class": "class",
    "caption": "text",
    "answer": "text",
    "span": "text",
    "box": "box",
}


class TaskNotBuilt(NotImplementedError):
    """The task is declared (label format, metric) but its data and models are not built."""


@dataclass
class TargetData:
    """One target dataset of any task: inputs and labels of its two splits.

    Attributes:
        name: target id (e.g. ``digits10``).
        task: the task it belongs to.
        label_format: one of :data:`LABEL_FORMATS`.
        train_inputs, test_inputs: what the models read: float32 images (N, C, S, S), or
            a sequence of N records (e.g. question + context) for text tasks.
        train_labels, test_labels: N labels in ``label_format``: int class ids (N,),
            caption strings, (question, answer) pairs, answer spans, or boxes (N, 4).
        class_names: the class vocabulary (class labels only).
        description: one sentence for the report.
        context: per-sample facts a label needs to become text (e.g. image size for
            boxes, the question for answers); keys map to sequences of length N.
    """

    name: str
    task: str
    label_format: str
    train_inputs: Any
    train_labels: Any
    test_inputs: Any
    test_labels: Any
    description: str
    class_names: list[str] | None = None
    context: dict[str, Sequence[Any]] = field(default_factory=dict)

    def __post_init__(self):
        if self.label_format not in LABEL_FORMATS:
            raise ValueError(
                f"target {self.name!r}: label_format {self.label_format!r} is not one of "
                f"{LABEL_FORMATS}."
            )
        for split in ("train", "test"):
            n_inputs = len(getattr(self, f"{split}_inputs"))
            n_labels = len(getattr(self, f"{split}_labels"))
            if n_inputs != n_labels:
                raise ValueError(
                    f"target {self.name!r}: {n_inputs} {split} inputs but {n_labels} labels."
                )

    @property
    def num_classes(self) -> int:
        if self.class_names is None:
            raise TypeError(f"target {self.name!r} has {self.label_format} labels, not classes.")
        return len(self.class_names)


def box_text(box: Sequence[float], width: float, height: float, digits: int = 3) -> str:
    """A box [x1, y1, x2, y2] in pixels as the paper writes it for the text encoders:
    coordinates normalised to [0, 1] by the image size, fixed precision."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(
            f"box {list(box)} is not inside a {width:g}x{height:g} image with x1 < x2, y1 < y2."
        )
    values = (x1 / width, y1 / height, x2 / width, y2 / height)
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def label_text(label_format: str, label: Any, *, template: str = "{name}", **context) -> str:
    """One label as the text its F-labels embed (paper §3.1, "unified label embedding").

    * ``class``: ``template.format(name=context["class_names"][label])``;
    * ``caption``: the caption itself;
    * ``answer``: ``"Q: {question} A: {answer}"`` (label is the answer, context the
      question), as the paper embeds answers with their question;
    * ``span``: the same for extractive QA (label is the answer span's text);
    * ``box``: :func:`box_text` with ``context["width"]``, ``context["height"]``.
    """
    if label_format == "class":
        names = context["class_names"]
        return template.format(name=names[int(label)])
    if label_format == "caption":
        text = str(label).strip()
        if not text:
            raise ValueError("an empty caption cannot be embedded.")
        return text
    if label_format in ("answer", "span"):
        answer = str(label).strip()
        if not answer:
            raise ValueError(f"an empty {label_format} cannot be embedded.")
        question = str(context.get("question", "")).strip()
        return f"Q: {question} A: {answer}" if question else answer
    if label_format == "box":
        return box_text(label, context["width"], context["height"])
    raise ValueError(f"unknown label format {label_format!r}; valid: {LABEL_FORMATS}.")


class Task(ABC):
    """One experiment of the paper. Subclasses set the class attributes and the hooks.

    The hooks take the task's validated parameter block (``params.task(name)``) and its
    :class:`emms.paths.TaskPaths`; they never spell a path themselves.
    """

    name: ClassVar[str]
    label_format: ClassVar[str]
    truth_metric: ClassVar[str]  # the truth table's value column
    truth_metric_label: ClassVar[str]  # how reports name it
    paper_section: ClassVar[str]
    headline_task: ClassVar[str]  # row of data/reference/headline.csv
    #: how the headline table names the paper's column
    paper_scale: ClassVar[str] = "paper (11 datasets, ImageNet zoo)"
    #: the largest value of the truth metric (1 for accuracies, 100 for percentages)
    truth_scale: ClassVar[float] = 1.0
    has_source_probs: ClassVar[bool] = False
    built: ClassVar[bool] = True
    builds_in: ClassVar[str] = ""  # for an unbuilt task: which issue builds it
    #: target id -> one-line description (the targets this task can build)
    targets: ClassVar[dict[str, str]] = {}

    @property
    def truth_columns(self) -> tuple[str, ...]:
        """The columns of the truth table: one row per (dataset, model, seed); the fourth
        is :attr:`truth_metric`, any further ones are secondary metrics that
        :meth:`finetune` returns by name (a mapping) beside it."""
        return ("dataset", "model", "seed", self.truth_metric)

    def _not_built(self):
        raise TaskNotBuilt(
            f"The {self.name} experiment is declared (labels: {self.label_format}, truth: "
            f"{self.truth_metric_label}) but not built yet{self.builds_in}."
        )

    @abstractmethod
    def build_data(self, params, paths, raw) -> None:
        """``data`` stage: the raw folder ``raw`` -> ``paths.processed`` (source, targets)."""

    @abstractmethod
    def load_target(self, paths, target: str) -> TargetData:
        """One target from the ``data`` stage's output."""

    @abstractmethod
    def pretrain_zoo(self, params, paths, progress: bool = True) -> None:
        """``zoo`` stage: every model of the zoo -> ``paths.models``."""

    @abstractmethod
    def model_outputs(self, params, paths, model: str, target: TargetData) -> dict:
        """``features`` stage: ``{"features": (N, D), "source_probs": (N, Z) or absent}``
        on the target's training split."""

    @abstractmethod
    def finetune(self, params, paths, model: str, target: TargetData, seed: int):
        """``truth`` stage: fine-tune one model on one target; the truth metric (a float),
        or a mapping from every metric column of :attr:`truth_columns` to its value."""

    def _target_meta(self, paths, target: str) -> dict:
        """``meta.json`` of a processed target, or the stage that writes it."""
        import json

        from emms.cache import CacheError

        path = paths.processed_target(target) / "meta.json"
        if not path.is_file():
            raise CacheError(f"{path} is missing; run `dvc repro data@{self.name}`.")
        return json.loads(path.read_text())

    def truth_workers(self, params) -> int:
        """How many processes the ``truth`` stage may fine-tune in (default 1)."""
        return 1

    def flabel_template(self, params) -> str | None:
        """The label -> text template recorded with the F-labels (class labels only)."""
        return None

    def label_texts(self, params, target: TargetData) -> list[str]:
        """One text per training sample (what the F-label encoders embed)."""
        return [
            label_text(self.label_format, label, **self._text_context(params, target, i))
            for i, label in enumerate(target.train_labels)
        ]

    def _text_context(self, params, target: TargetData, index: int) -> dict:
        return {key: values[index] for key, values in target.context.items()}


class UnbuiltTask(Task):
    """A declared task whose hooks all raise :class:`TaskNotBuilt`."""

    built = False

    def build_data(self, params, paths, raw):
        self._not_built()

    def load_target(self, paths, target):
        self._not_built()

    def pretrain_zoo(self, params, paths, progress=True):
        self._not_built()

    def model_outputs(self, params, paths, model, target):
        self._not_built()

    def finetune(self, params, paths, model, target, seed):
        self._not_built()
