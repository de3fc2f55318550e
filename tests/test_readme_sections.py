"""The README's generated sections equal what the code, reports/ and benchmarks/results/
produce now (`make readme` rewrites them), so no table in it can drift from its source."""

from pathlib import Path

import pytest

from emms.reports.readme_sections import SECTIONS, render_readme

ROOT = Path(__file__).resolve().parents[1]


def test_every_generated_section_of_the_readme_is_current():
    text = (ROOT / "README.md").read_text()
    for name in SECTIONS:
        assert f"<!-- BEGIN generated: {name} -->" in text, name
    fresh = render_readme(text, ROOT)
    stale = [name for name in SECTIONS if _section(fresh, name) != _section(text, name)]
    assert not stale, f"README sections {stale} are stale: run `make readme`"


def _section(text: str, name: str) -> str:
    begin = f"<!-- BEGIN generated: {name} -->"
    return text[text.index(begin) : text.index(f"<!-- END generated: {name} -->")]


def test_render_replaces_only_marked_blocks_and_refuses_unknown_markers():
    text = "a\n<!-- BEGIN generated: x -->\nold\n<!-- END generated: x -->\nb\n"
    out = render_readme(text, ROOT, {"x": lambda root: "new\n"})
    assert out == "a\n<!-- BEGIN generated: x -->\nnew\n<!-- END generated: x -->\nb\n"
    with pytest.raises(KeyError, match="marker 'x' has no generator"):
        render_readme(text, ROOT, {})
