"""What a reviewer should never meet in a rendered report, checked on its HTML.

:func:`html_problems` parses an HTML report (nbconvert's export of an executed notebook)
with the standard library's :mod:`html.parser` and lists, in words:

* output written to stderr (a warning or a traceback the report did not collect);
* figures that are not embedded: every ``<img>`` must carry its data (a ``data:image/``
  URI), and there must be at least as many as the figures saved for the report; a figure
  printed as its repr (``<Figure size ...>``, a list of ``PosixPath``) counts as missing;
* paths of the machine that built it (``/work/``, ``/tmp/``, ``/home/``, ``.venv``, ...),
  searched in the text and attributes, embedded image data left out;
* cells truncated by pandas (a table cell that is, or ends with, ``...``).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["MACHINE_PATHS", "html_problems", "report_problems"]

#: fragments that betray a path of the building machine
MACHINE_PATHS = ("/work/", "/tmp/", "/home/", "/root/", ".venv", "site-packages", "/Users/")

_STDERR_MARKERS = ("application/vnd.jupyter.stderr", "output_stderr")
_FIGURE_REPRS = re.compile(r"<Figure size|PosixPath\(|<matplotlib\.|FacetGrid object at")


class _ReportParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.stderr = 0
        self.cells: list[str] = []
        self.texts: list[str] = []
        self.attributes: list[str] = []
        self._cell_depth = 0
        self._cell_text: list[str] = []
        self._skip = 0  # inside <script> or <style>

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        for name, value in attrs.items():
            if value and not (name == "src" and value.startswith("data:")):
                self.attributes.append(value)
            if value and any(marker in value for marker in _STDERR_MARKERS):
                self.stderr += 1
        if tag in ("td", "th"):
            self._cell_depth += 1
            self._cell_text = []

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag in ("td", "th") and self._cell_depth:
            self._cell_depth -= 1
            self.cells.append("".join(self._cell_text).strip())

    def handle_data(self, data):
        if self._skip:
            return
        self.texts.append(data)
        if self._cell_depth:
            self._cell_text.append(data)


def html_problems(html: str, n_figures: int = 0) -> list[str]:
    """Problems a reviewer would see in the HTML report ``html`` (empty: none).

    Args:
        html: the HTML text.
        n_figures: how many figures the report saved; at least this many images must be
            embedded.
    """
    parser = _ReportParser()
    parser.feed(html)
    parser.close()
    problems = []
    if parser.stderr:
        problems.append(f"{parser.stderr} output(s) written to stderr")
    empty = [src[:40] for src in parser.images if not src.startswith("data:image/")]
    if empty:
        problems.append(f"{len(empty)} image(s) without embedded data: {empty[:3]}")
    embedded = len(parser.images) - len(empty)
    if embedded < n_figures:
        problems.append(f"{embedded} embedded image(s) for {n_figures} saved figure(s)")
    text = "".join(parser.texts)
    reprs = sorted(set(_FIGURE_REPRS.findall(text)))
    if reprs:
        problems.append(f"figure(s) printed as text instead of shown: {reprs}")
    visible = text + "\n".join(parser.attributes)
    for marker in MACHINE_PATHS:
        at = visible.find(marker)
        if at >= 0:
            context = visible[max(0, at - 40) : at + 40].replace("\n", " ")
            problems.append(f"a path of the building machine ({marker!r}): ...{context}...")
    truncated = [cell for cell in parser.cells if cell.endswith("...") or cell == "…"]
    if truncated:
        problems.append(f"{len(truncated)} truncated table cell(s), e.g. {truncated[:2]}")
    return problems


def report_problems(reports_dir: str | Path, task: str) -> list[str]:
    """:func:`html_problems` of ``reports_dir/TASK.html``, expecting every PNG saved in
    ``reports_dir/figures/TASK/`` to be shown."""
    reports_dir = Path(reports_dir)
    html = (reports_dir / f"{task}.html").read_text(encoding="utf-8")
    n_figures = len(list((reports_dir / "figures" / task).glob("*.png")))
    return html_problems(html, n_figures)
