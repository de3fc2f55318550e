"""README.md's generated sections are what emms.reports.readme makes of reports/."""

from pathlib import Path

import pandas as pd
import pytest

from emms.reports.readme import readme_differences, render_sections, update_readme

ROOT = Path(__file__).resolve().parents[1]


def test_readme_generated_sections_match_the_committed_reports():
    stale = readme_differences(ROOT / "README.md", ROOT / "reports")
    assert stale == [], (
        f"README sections {stale} differ from reports/; run "
        "`python -c 'from emms.reports.readme import main; main()'`."
    )


def _fake_reports(tmp_path, tau="+0.848 ± 0.148"):
    tables = tmp_path / "reports" / "tables" / "toy"
    tables.mkdir(parents=True)
    pd.DataFrame(
        {"quantity": ["gain, %", "speed-up, x"], "paper": [9.0, 5.13], "run": [-15.5, 27.6]}
    ).to_csv(tables / "headline.csv", index=False)
    pd.DataFrame({"label": ["EMMS (exact)"], "digits10": [tau], "mean": ["+0.692"]}).to_csv(
        tables / "weighted_tau.csv", index=False
    )
    (tmp_path / "reports" / "timings").mkdir()
    (tmp_path / "reports" / "timings" / "toy.json").write_text('{"zoo": 120.0, "data": 2.6}')
    return tmp_path / "reports"


def _readme(tmp_path, names):
    body = "".join(
        f"<!-- BEGIN generated: {n} -->\nold\n<!-- END generated: {n} -->\n\n" for n in names
    )
    path = tmp_path / "README.md"
    path.write_text(f"# Title\n\nintro\n\n{body}outro\n")
    return path


def test_update_writes_every_section_from_the_tables_and_is_idempotent(tmp_path):
    reports = _fake_reports(tmp_path)
    readme = _readme(tmp_path, ["toy-results", "toy-tau", "toy-timings"])
    assert readme_differences(readme, reports) == ["toy-results", "toy-tau", "toy-timings"]
    assert update_readme(readme, reports) == ["toy-results", "toy-tau", "toy-timings"]
    text = readme.read_text()
    assert "old" not in text and text.startswith("# Title\n\nintro") and "outro" in text
    assert "+0.848 ± 0.148" in text and "27.60" in text and "| zoo " in text
    assert update_readme(readme, reports) == []
    assert readme.read_text() == text


def test_a_changed_table_makes_the_section_stale(tmp_path):
    reports = _fake_reports(tmp_path)
    readme = _readme(tmp_path, ["toy-tau"])
    update_readme(readme, reports)
    pd.DataFrame(
        {"label": ["EMMS (exact)"], "digits10": ["+0.500 ± 0.100"], "mean": ["+0.5"]}
    ).to_csv(reports / "tables" / "toy" / "weighted_tau.csv", index=False)
    assert readme_differences(readme, reports) == ["toy-tau"]


def test_a_marker_naming_no_section_is_refused(tmp_path):
    reports = _fake_reports(tmp_path)
    readme = _readme(tmp_path, ["toy-nonsense"])
    with pytest.raises(KeyError, match="toy-nonsense"):
        update_readme(readme, reports)


def test_sections_are_offered_for_every_task_with_tables():
    assert {"recognition-results", "recognition-tau", "recognition-timings"} <= set(
        render_sections(ROOT / "reports")
    )


def test_task_sections_take_the_project_root_like_the_readme_command():
    from emms.reports.readme import TASK_SECTIONS

    sections = render_sections(ROOT / "reports")
    for name, section in TASK_SECTIONS.items():
        assert section(ROOT) == sections[name]
