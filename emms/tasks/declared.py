"""The three experiments declared but not built yet: their labels and truth metrics.

Each raises :class:`emms.tasks.base.TaskNotBuilt` from every hook until its issue lands;
what they declare (label format, metric, paper section) is what the shared stages,
F-label text and reports already rely on.
"""

from __future__ import annotations

from .base import UnbuiltTask

__all__ = ["Captioning", "VisualQA", "Referring"]

_SCENES = " (issue 11: digit scenes)"


class Captioning(UnbuiltTask):
    name = "captioning"
    label_format = "caption"
    truth_metric = "bleu4"
    truth_metric_label = "BLEU-4 after fine-tuning"
    paper_section = "§4.2"
    headline_task = "image_captioning"
    builds_in = _SCENES
    targets = {}


class VisualQA(UnbuiltTask):
    name = "vqa"
    label_format = "answer"
    truth_metric = "vqa_accuracy"
    truth_metric_label = "exact-match answer accuracy after fine-tuning"
    paper_section = "§4.3"
    headline_task = "visual_question_answering"
    builds_in = _SCENES
    targets = {}


class Referring(UnbuiltTask):
    name = "referring"
    label_format = "box"
    truth_metric = "acc_at_0.5"
    truth_metric_label = "Acc@0.5 IoU after fine-tuning"
    paper_section = "§4.5"
    headline_task = "referring_expression_comprehension"
    builds_in = _SCENES
    targets = {}
