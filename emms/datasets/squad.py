"""SQuAD-format question answering data: reader, writer and the official metric.

The format is the one of SQuAD 1.1 and 2.0 (Rajpurkar et al., EMNLP 2016 and ACL 2018)::

    {"version": "...", "data": [{"title": T, "paragraphs": [{"context": C, "qas": [
        {"id": I, "question": Q, "answers": [{"text": A, "answer_start": S}, ...],
         "is_impossible": false}]}]}]}

:func:`read_squad` reads it (the embedded ``pydoc_qa`` files and the real SQuAD JSON at
paper scale alike) into flat :class:`QAExample` records and checks every item: the bytes
are UTF-8, every paragraph has text, every answer lies inside its paragraph and
``context[answer_start : answer_start + len(text)] == text``, an unanswerable question
(``is_impossible``, SQuAD 2.0) has no answers and an answerable one has at least one.
Any violation raises :class:`SquadError` naming the file, the article title and the
question id; nothing is returned, so nothing downstream is cached.

The metric (:func:`squad_scores`) follows the definitions of the official evaluation
script of SQuAD v2.0 (facts of the definition, re-implemented here):

* answers are normalised by :func:`normalize_answer`: lower case, punctuation removed
  (``string.punctuation``), the articles "a", "an", "the" removed as whole words,
  whitespace collapsed;
* exact match is 1 when the normalised strings are equal;
* F1 is the harmonic mean of precision and recall over the *bags* of normalised tokens
  (multiset intersection); if either side has no tokens, F1 is 1 when both are empty and
  0 otherwise;
* a prediction is scored against every gold answer and the maximum counts; an
  unanswerable question has the single gold answer "" (the prediction must be empty);
* the dataset scores are the means over questions, times 100.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SquadError",
    "QAExample",
    "read_squad",
    "parse_squad",
    "squad_json",
    "normalize_answer",
    "exact_match",
    "f1",
    "max_over_gold",
    "squad_scores",
]


class SquadError(ValueError):
    """A SQuAD file or item is malformed; the message names the file, title and id."""


@dataclass(frozen=True)
class QAExample:
    """One question of a SQuAD file, with its paragraph.

    ``answers`` are ``(text, answer_start)`` pairs (empty for an unanswerable question).
    """

    id: str
    title: str
    context: str
    question: str
    answers: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    is_impossible: bool = False

    @property
    def answer_texts(self) -> list[str]:
        return [text for text, _ in self.answers]


# --------------------------------------------------------------------------- reading


def read_squad(path: str | os.PathLike) -> list[QAExample]:
    """Every question of the SQuAD JSON file ``path``, checked (see the module doc)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SquadError(f"{path}: no such SQuAD file.") from None
    return parse_squad(data, source=str(path))


def parse_squad(data: bytes | str, source: str = "<bytes>") -> list[QAExample]:
    """Parse and check SQuAD JSON given as bytes (must be UTF-8) or text."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = data[error.start : error.start + 4]
            raise SquadError(
                f"{source}: not UTF-8 text (byte {error.start}: {bad!r}); SQuAD files are "
                "UTF-8 JSON. Re-encode the file."
            ) from None
    else:
        text = data
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SquadError(f"{source}: not valid JSON ({error}).") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SquadError(f"{source}: a SQuAD file is an object with a 'data' list.")
    examples: list[QAExample] = []
    seen: set[str] = set()
    for a, article in enumerate(document["data"]):
        title = str(article.get("title", f"article {a}"))
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            where = f"{source}: article {title!r}, paragraph {p}"
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise SquadError(f"{where}: the paragraph (context) is empty.")
            for qa in paragraph.get("qas", []):
                examples.append(_example(qa, title, context, where, seen))
    return examples


def _example(qa: Mapping, title: str, context: str, where: str, seen: set) -> QAExample:
    qid = str(qa.get("id", ""))
    item = f"{where}, question id {qid!r}"
    if not qid:
        raise SquadError(f"{where}: a question has no id.")
    if qid in seen:
        raise SquadError(f"{item}: the id is used twice.")
    seen.add(qid)
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SquadError(f"{item}: the question is empty.")
    impossible = bool(qa.get("is_impossible", False))
    answers = []
    for answer in qa.get("answers", []):
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not text or not isinstance(start, int) or start < 0:
            raise SquadError(
                f"{item}: an answer needs a non-empty 'text' and an 'answer_start' >= 0, "
                f"got {answer!r}."
            )
        end = start + len(text)
        if end > len(context):
            raise SquadError(
                f"{item}: the answer span [{start}, {end}) runs past the end of the "
                f"paragraph ({len(context)} characters)."
            )
        if context[start:end] != text:
            raise SquadError(
                f"{item}: the answer {text!r} is not in the paragraph at answer_start "
                f"{start} (found {context[start:end]!r})."
            )
        answers.append((text, start))
    if impossible and answers:
        raise SquadError(f"{item}: is_impossible is true but the question has answers.")
    if not impossible and not answers:
        raise SquadError(f"{item}: an answerable question needs at least one answer.")
    return QAExample(qid, title, context, question, tuple(answers), impossible)


# --------------------------------------------------------------------------- writing


def squad_json(examples: Iterable[QAExample], version: str) -> bytes:
    """SQuAD JSON of ``examples`` (grouped by title, then by context, in first-seen
    order), as deterministic UTF-8 bytes: sorted keys, no timestamps."""
    articles: dict[str, dict[str, list]] = {}
    for ex in examples:
        qa = {
            "id": ex.id,
            "question": ex.question,
            "answers": [{"text": t, "answer_start": s} for t, s in ex.answers],
            "is_impossible": ex.is_impossible,
        }
        articles.setdefault(ex.title, {}).setdefault(ex.context, []).append(qa)
    document = {
        "version": version,
        "data": [
            {
                "title": title,
                "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()],
            }
            for title, paragraphs in articles.items()
        ],
    }
    return (json.dumps(document, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


# --------------------------------------------------------------------------- the metric

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-bag F1 of two answers after :func:`normalize_answer`."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def max_over_gold(metric, prediction: str, golds: Sequence[str]) -> float:
    """The best score of ``prediction`` against any gold answer ("" if there is none:
    an unanswerable question, which only the empty prediction gets right)."""
    return max(metric(prediction, gold) for gold in (list(golds) or [""]))


def squad_scores(examples: Sequence[QAExample], predictions: Mapping[str, str]) -> dict:
    """``{"exact_match": EM, "f1": F1}`` in percent over ``examples``; a question without
    a prediction counts as answered with the empty string."""
    if not examples:
        raise SquadError("no questions to score.")
    em = f1_total = 0.0
    for ex in examples:
        prediction = predictions.get(ex.id, "")
        # as the official script: gold answers that normalise to "" are dropped
        golds = [] if ex.is_impossible else [t for t in ex.answer_texts if normalize_answer(t)]
        em += max_over_gold(exact_match, prediction, golds)
        f1_total += max_over_gold(f1, prediction, golds)
    n = len(examples)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1_total / n}
