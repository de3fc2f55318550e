"""The paper-scale runner: ``python -m emms.paper run --task recognition ...``.

:mod:`emms.paper.config` (the run configuration), :mod:`emms.paper.extract` (features,
streamed to the cache, resumable), :mod:`emms.paper.labels` (F-labels),
:mod:`emms.paper.score` (truth, scores, weighted tau), :mod:`emms.paper.report` and
:mod:`emms.paper.run` (the whole path). See docs/paper-scale.md.
"""

from .config import PaperRunError, RunConfig, load_run_config

__all__ = ["PaperRunError", "RunConfig", "load_run_config"]
