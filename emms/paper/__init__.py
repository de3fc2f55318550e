"""The paper-scale runner: ``python -m emms.paper run --task recognition ...``.

:mod:`emms.paper.config` (the run configuration), :mod:`emms.paper.extract` (image
features, streamed to the cache, resumable; the other tasks' rules in
:mod:`emms.paper.caption_extract`, :mod:`emms.paper.vqa_extract`,
:mod:`emms.paper.text_extract`, :mod:`emms.paper.referring_extract`),
:mod:`emms.paper.finetune` (the truth of the tasks without a published table, row by row:
:mod:`emms.paper.text_finetune` for text QA, :mod:`emms.paper.vqa_finetune` for VQA,
:mod:`emms.paper.referring_finetune` for referring),
:mod:`emms.paper.labels` (F-labels),
:mod:`emms.paper.score` (truth, scores, weighted tau), :mod:`emms.paper.report` and
:mod:`emms.paper.run` (the whole path). See docs/paper-scale.md.
"""

from .config import PaperRunError, RunConfig, load_run_config

__all__ = ["PaperRunError", "RunConfig", "load_run_config"]
