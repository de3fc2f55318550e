"""README sections generated from the code and the committed outputs, never typed.

Each function takes the project root and returns the markdown of one section; with the
per-task sections built from ``reports/`` (:mod:`emms.reports.readme`), ``python -m emms
readme`` writes them between ``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated:
NAME -->`` markers, and tests/test_readme.py fails when the README differs.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["SECTIONS", "params_section", "selectors_section", "isa_section", "speed_section"]


def params_section(root: Path) -> str:
    """Every key of params.yaml with its type, limits, default and meaning (the schema)."""
    from emms.params import params_table

    return params_table()


def selectors_section(root: Path) -> str:
    """The registry: every selector, what it needs, which label formats, the reference."""
    from emms.selectors.registry import SELECTORS

    lines = [
        "| key | selector | input | label formats | reference |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, spec in SELECTORS.items():
        lines.append(
            f"| `{name}` | {spec.label} | {spec.needs.replace('+', ' + ')} | "
            f"{', '.join(spec.label_formats)} | {spec.reference} |"
        )
    return "\n".join(lines) + "\n"


def isa_section(root: Path) -> str:
    """What simulated instruction sets did to each task's truth (benchmarks/isa_envelope.py,
    one measurement per task: ``benchmarks/results/isa_envelope-TASK.json``)."""
    paths = sorted((root / "benchmarks" / "results").glob("isa_envelope-*.json"))
    records = [json.loads(path.read_text()) for path in paths]
    lines = [
        "Measured by `python benchmarks/isa_envelope.py --task TASK`, zoo and truth retrained "
        "from scratch per setting, on the machine each row names (its native kernels in "
        "brackets); changes in each task's truth metric:",
        "",
        "| task | measured | machine | seeds | setting | largest \\|change\\| of a model's "
        "mean truth | in the dataset's mean seed stds | models moved more than 2 seed stds |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for record in records:
        rows, machine = record["rows"], record["machine"]
        where = f"{machine['cpu']}, {machine['cpu_count']} CPUs ({machine['torch_cpu_capability']})"
        for setting in sorted({row["setting"] for row in rows}):
            mine = [row for row in rows if row["setting"] == setting]
            change = max(abs(row["change"]) for row in mine)
            ratio = max(row["|change| / seed std"] for row in mine)
            moved = sum(row["|change| / seed std"] > 2 for row in mine)
            lines.append(
                f"| {record['task']} | {record['date']} | {where} | {len(record['seeds'])} "
                f"| {setting} | {change:.4f} | {ratio:.1f} | {moved} of {len(mine)} |"
            )
    return "\n".join(lines) + "\n"


def speed_section(root: Path) -> str:
    """The speed summary (benchmarks/results/speed.md) and, verbatim, the tables
    ``benchmarks/solvers.py`` and ``benchmarks/scaling.py`` wrote."""
    results = root / "benchmarks" / "results"
    return (
        (results / "speed.md").read_text().rstrip("\n")
        + "\n\n#### `benchmarks/results/solvers.md`\n\n"
        + (results / "solvers.md").read_text().rstrip("\n")
        + "\n\n#### `benchmarks/results/scaling.md`\n\n"
        + (results / "scaling.md").read_text()
    )


SECTIONS = {
    "speed": speed_section,
    "params": params_section,
    "selectors": selectors_section,
    "isa-envelope": isa_section,
}

