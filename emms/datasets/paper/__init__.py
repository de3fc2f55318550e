"""Paper-scale dataset readers: the 24 datasets of EMMS, from local files only.

``read_paper_dataset(name, root, split)`` returns one record per split (see
:mod:`emms.datasets.paper.types`); :data:`PAPER_DATASETS` says what each reader expects.
Nothing is downloaded. ``python -m emms.datasets.paper docs/paper-scale.md`` rewrites the
layout table of that file from the registry.
"""

from .registry import (
    PAPER_DATASETS,
    TASKS,
    DatasetSpec,
    read_paper_dataset,
    render_layout_table,
    write_layout_table,
)
from .types import (
    AnswerSpan,
    CaptioningSplit,
    DatasetLayoutError,
    ImageDecodeError,
    RecognitionSplit,
    ReferringSplit,
    TextQASplit,
    VQASplit,
    open_image,
)

__all__ = [
    "PAPER_DATASETS",
    "TASKS",
    "DatasetSpec",
    "read_paper_dataset",
    "render_layout_table",
    "write_layout_table",
    "AnswerSpan",
    "CaptioningSplit",
    "DatasetLayoutError",
    "ImageDecodeError",
    "RecognitionSplit",
    "ReferringSplit",
    "TextQASplit",
    "VQASplit",
    "open_image",
]
