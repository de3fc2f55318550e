"""Readers of SQuAD 1.1 and 2.0 (EMMS §4.5), the official JSON files.

Layout: ``squad/{train,dev}-v1.1.json`` and ``squad/{train,dev}-v2.0.json``, schema
``{"version": ..., "data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}], "is_impossible",
"plausible_answers"}]}]}]}`` (the last two in 2.0 only).

Every ``answer_start`` is checked to point at its answer text in the context
(``context[start:start + len(text)] == text``); a misaligned span stops the reader, or is
dropped with ``on_misaligned="drop"``. A 2.0 question with ``is_impossible`` has no gold
span; its ``plausible_answers`` are kept separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import fail, key, need_dir, need_split, nonempty, read_json
from .types import AnswerSpan, TextQASplit

__all__ = ["read_squad11", "read_squad20"]


def _spans(name, path, qa, field, context, on_misaligned):
    spans = []
    for answer in qa.get(field, []):
        text = key(name, path, answer, "text", f"question {qa.get('id')}")
        start = key(name, path, answer, "answer_start", f"question {qa.get('id')}")
        if not isinstance(start, int) or context[start : start + len(text)] != text:
            if on_misaligned == "drop":
                continue
            fail(
                name,
                path,
                f"question {qa.get('id')}: answer_start {start} does not point "
                f"at {text!r} in its context",
            )
        spans.append(AnswerSpan(text, start))
    return tuple(spans)


def _read_squad(name, version, root, split, on_misaligned):
    need_split(name, split, ("train", "dev"))
    if on_misaligned not in ("error", "drop"):
        raise ValueError("on_misaligned must be 'error' or 'drop'.")
    base = need_dir(name, Path(root) / "squad")
    path = base / f"{split}-v{version}.json"
    data = read_json(name, path)
    columns = {
        c: []
        for c in ("ids", "titles", "contexts", "questions", "answers", "impossible", "plausible")
    }
    for a, article in enumerate(key(name, path, data, "data")):
        title = key(name, path, article, "title", f"data[{a}]")
        for p, paragraph in enumerate(key(name, path, article, "paragraphs", f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = key(name, path, paragraph, "context", where)
            for qa in key(name, path, paragraph, "qas", where):
                impossible = bool(qa.get("is_impossible", False))
                if version == "1.1" and "is_impossible" in qa:
                    fail(name, path, "is_impossible found: this is a SQuAD 2.0 file")
                answers = _spans(name, path, qa, "answers", context, on_misaligned)
                if not impossible and not answers:
                    if "answers" not in qa:
                        fail(name, path, f"JSON key 'answers' missing in question {qa.get('id')}")
                    if on_misaligned == "drop":
                        continue
                    fail(name, path, f"answerable question {qa.get('id')} has no answer")
                columns["ids"].append(key(name, path, qa, "id", where))
                columns["questions"].append(key(name, path, qa, "question", where))
                columns["titles"].append(title)
                columns["contexts"].append(context)
                columns["answers"].append(() if impossible else answers)
                columns["impossible"].append(impossible)
                columns["plausible"].append(
                    _spans(name, path, qa, "plausible_answers", context, on_misaligned)
                )
    nonempty(name, path, split, len(columns["ids"]))
    return TextQASplit(
        name,
        split,
        tuple(columns["ids"]),
        tuple(columns["titles"]),
        tuple(columns["contexts"]),
        tuple(columns["questions"]),
        tuple(columns["answers"]),
        np.asarray(columns["impossible"], dtype=bool),
        tuple(columns["plausible"]) if version == "2.0" else (),
    )


def read_squad11(root, split: str = "train", *, on_misaligned: str = "error"):
    """SQuAD 1.1 (every question answerable)."""
    return _read_squad("squad1.1", "1.1", root, split, on_misaligned)


def read_squad20(root, split: str = "train", *, on_misaligned: str = "error"):
    """SQuAD 2.0 (answerable and unanswerable questions)."""
    return _read_squad("squad2.0", "2.0", root, split, on_misaligned)
