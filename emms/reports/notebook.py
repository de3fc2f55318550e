"""Execute a report notebook with papermill and export it to HTML, atomically.

The notebook runs into a temporary folder; the report (notebook, HTML, figures, tables,
metrics) replaces the previous one only once every cell has run, so a failure leaves the
last good report intact and says which cell failed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from emms.cache import atomic_write_text

__all__ = ["ReportError", "export_html", "run_notebook"]


class ReportError(RuntimeError):
    """A report notebook failed; the previous report is left as it was."""


def _cell_failure(error) -> str:
    name = getattr(error, "ename", type(error).__name__)
    value = getattr(error, "evalue", str(error))
    cell = getattr(error, "exec_count", None)
    return f"{name}: {value}" + (f" (cell [{cell}])" if cell is not None else "")


def export_html(notebook) -> str:
    """The executed notebook as HTML, without papermill's injected-parameters cell (it
    only repeats the task name and the staging folder)."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter()
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={"injected-parameters"}), enabled=True
    )
    html, _ = exporter.from_notebook_node(notebook)
    return html


def run_notebook(paths) -> Path:
    """Execute ``paths.notebook_source`` into ``paths.notebook`` and ``paths.html``.

    The notebook receives ``task`` and ``output_dir`` (a staging folder) as papermill
    parameters and writes its figures, tables and metrics there through
    :class:`emms.reports.ReportWriter`; they are moved into ``reports/`` after the last
    cell succeeds.
    """
    import nbformat
    import papermill

    source = paths.notebook_source
    if not source.is_file():
        raise ReportError(f"no notebook {source} for task {paths.task!r}.")
    paths.reports.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{paths.task}.", dir=paths.reports))
    try:
        executed = staging / f"{paths.task}.ipynb"
        try:
            papermill.execute_notebook(
                str(source),
                str(executed),
                # relative to the kernel's cwd: no path of this machine in the notebook
                parameters={
                    "task": paths.task,
                    "output_dir": os.path.relpath(staging, paths.root),
                },
                kernel_name="python3",
                cwd=str(paths.root.resolve()),
                progress_bar=False,
                log_output=False,
            )
        except papermill.PapermillExecutionError as error:
            raise ReportError(
                f"{source} failed: {_cell_failure(error)}; the previous report in "
                f"{paths.reports} is unchanged. Run the notebook in Jupyter to debug."
            ) from None
        notebook = nbformat.read(executed, as_version=4)
        html = export_html(notebook)
        for kind, target in (("figures", paths.figures), ("tables", paths.tables)):
            if target.exists():
                shutil.rmtree(target)
            if (staging / kind).exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / kind, target)
        if (staging / "metrics.json").exists():
            paths.metrics.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / "metrics.json", paths.metrics)
        atomic_write_text(paths.html, html)
        os.replace(executed, paths.notebook)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths.notebook
