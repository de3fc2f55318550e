"""Shared checks of the paper-scale readers: every failure names the dataset, the path
tried, the problem, the expected layout and where the data comes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from .types import DatasetLayoutError

PICKLE_WARNING = (
    "Pickles can run arbitrary code when loaded, so they are read only when you pass "
    "allow_pickle=True for files you trust (the official archive)."
)


def fail(dataset: str, path: Path | str, problem: str) -> NoReturn:
    """Raise :class:`DatasetLayoutError` with the registry's layout and source."""
    from .registry import PAPER_DATASETS  # lazy: the registry imports the readers

    spec = PAPER_DATASETS.get(dataset)
    layout = f"\nExpected layout under the root folder:\n{spec.layout}" if spec else ""
    source = f"\nThe data comes from: {spec.source}." if spec else ""
    raise DatasetLayoutError(f"{dataset}: {problem} (path tried: {path}).{layout}{source}")


def need_dir(dataset: str, path: Path) -> Path:
    if not path.is_dir():
        fail(dataset, path, "folder not found")
    if not any(path.iterdir()):
        fail(dataset, path, "folder is empty")
    return path


def need_file(dataset: str, path: Path) -> Path:
    if not path.is_file():
        fail(dataset, path, "file not found")
    return path


def need_split(dataset: str, split: str, allowed) -> None:
    if split not in allowed:
        raise DatasetLayoutError(
            f"{dataset}: unknown split {split!r}; this reader reads {sorted(allowed)}."
        )


def read_json(dataset: str, path: Path) -> Any:
    need_file(dataset, path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        fail(dataset, path, f"not valid JSON ({error})")


def key(dataset: str, path: Path, mapping: Any, name: str, where: str = "") -> Any:
    """``mapping[name]`` or a layout error naming the missing key."""
    if not isinstance(mapping, dict) or name not in mapping:
        fail(dataset, path, f"JSON key {name!r} missing{' in ' + where if where else ''}")
    return mapping[name]


def read_lines(dataset: str, path: Path) -> list[str]:
    """Non-empty stripped lines of a text file (UTF-8, Latin-1 as a fallback)."""
    need_file(dataset, path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def nonempty(dataset: str, path: Path, split: str, n: int) -> None:
    if n == 0:
        fail(dataset, path, f"split {split!r} has no samples")
