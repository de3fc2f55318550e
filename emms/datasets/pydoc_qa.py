"""The text side of the embedded benchmark: extractive QA on Python's own documentation.

Real English prose ships inside every CPython: ``pydoc_data.topics.topics``, the 79
topics that ``help()`` shows (about 465 KB). Nothing here downloads anything. The data
flow is

    pydoc_data.topics --contexts--> short paragraphs of prose, by topic
    topics --split_topics--> SOURCE topics (80 %: pre-training text, training questions)
                           | TEST topics (20 %: test questions only, never seen before)
    contexts --questions--> SQuAD-format cloze questions, one target per answer length
    --materialize_raw--> data/raw/pydoc_qa/{source,TARGET_train,TARGET_test}.json

**Contexts.** Each topic is cut into paragraphs at blank lines; indented blocks (grammar,
code, tables) and heading underlines are dropped; the prose lines of a paragraph are
joined with single spaces, split into sentences and the sentences packed greedily into
contexts of at most :data:`MAX_CONTEXT_WORDS` words (at least :data:`MIN_CONTEXT_WORDS`).
Short contexts keep the task learnable at this scale (a prototype with 80-word contexts
and long questions left exact match at 6-13 %).

**Questions.** A cloze question: the :data:`WINDOW` words left and right of a blanked span
of the context, e.g. ``"statements are a convenient way to ____ debugging assertions into
a program:"`` with the answer ``"insert"``. The answer is the span's text from its first
to its last letter or digit, so ``context[answer_start:][:len(text)] == text``. Spans
start and end on content words (at least three letters, not a stop word). Each context
gets at most :data:`QUESTIONS_PER_CONTEXT` questions per target, drawn with a generator
seeded by :data:`GENERATOR_SEED` and the target's index: the bytes are the same on every
run.

Targets (:data:`TARGETS`):

``short``
    answers of 1-2 words (mostly a term of the documentation);
``unanswerable``
    the same kind of question, but 15 % of them unanswerable (SQuAD 2.0): the question
    is paired with another paragraph of its split that contains neither its answer nor any
    word pair of its cloze window, and has no answer. (With a third unanswerable, every
    model but MiniLM-L6 learned to answer "no answer" always: F1 27.0 for six of eight
    models, a truth of ties.)

(A ``long`` target of 3-6-word answers was tried first: with the fixed 60-step
fine-tuning, every model but one stayed within the seed noise of the others, so it could
not rank a zoo; unanswerable questions differ from ``short`` in a way a model must learn.)

**Pins.** The raw files are pinned by SHA-256 (:data:`RAW_SHA256`) and by the DVC folder
hash (:data:`RAW_DVC_MD5`, ``data.dvc``). They were generated from the ``pydoc_data`` of
**CPython 3.11.7** (:data:`PYTHON_VERSION`; :data:`TOPICS_SHA256` pins the topics
themselves). Other patch releases ship different documentation and therefore other bytes;
:func:`materialize_raw` refuses them with an error that says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emms.cache import atomic_write_bytes

from .squad import QAExample, SquadError, read_squad, squad_json

__all__ = [
    "PYTHON_VERSION",
    "RAW_FILES",
    "RAW_SHA256",
    "RAW_DVC_MD5",
    "TARGETS",
    "RawDataError",
    "TargetSpec",
    "topic_texts",
    "split_topics",
    "contexts",
    "questions",
    "unanswerable",
    "generate",
    "materialize_raw",
    "load_raw",
]

#: The CPython whose pydoc_data generated the pinned files.
PYTHON_VERSION = "3.11.7"
#: SHA-256 of ``json.dumps(pydoc_data.topics.topics, sort_keys=True)`` in that version.
TOPICS_SHA256 = "37b51a0283fe86090af40650ef680bba22b90f74777f29909eceb83e57cc7ff1"
MAX_CONTEXT_WORDS = 40
MIN_CONTEXT_WORDS = 12
WINDOW = 5
QUESTIONS_PER_CONTEXT = 2
GENERATOR_SEED = 0
SPLIT_SEED = 0
TEST_FRACTION = 0.2
VERSION = "pydoc_qa-1 (SQuAD 1.1 format)"
BLANK = "____"

_STOP = frozenset(
    "the a an and or but if then else of to in on at by for with from as is are was were "
    "be been being this that these those it its it's not no can may must will would should "
    "which who whom what when where why how than such also only any all each other some "
    "into out over under more most has have had does do did there their they them we you "
    "one two see same".split()
)


@dataclass(frozen=True)
class TargetSpec:
    name: str
    min_words: int
    max_words: int
    description: str
    null_fraction: float = 0.0


TARGETS: dict[str, TargetSpec] = {
    "short": TargetSpec(
        "short", 1, 2, "cloze questions on unseen Python-doc topics, answers of 1-2 words"
    ),
    "unanswerable": TargetSpec(
        "unanswerable",
        1,
        2,
        "cloze questions on unseen Python-doc topics, answers of 1-2 words, "
        "15 % unanswerable (SQuAD 2.0)",
        null_fraction=0.15,
    ),
}

RAW_FILES = ("source.json",) + tuple(
    f"{name}_{split}.json" for name in TARGETS for split in ("train", "test")
)
#: SHA-256 of every raw file, as :func:`materialize_raw` writes them (Python 3.11.7).
RAW_SHA256 = {
    "source.json": "25dff7141c001e1ab525274b7a4c17768d708101188fbe80d2645ea8d7330ce3",
    "short_train.json": "3435d5b83925bc3388b08435f80371533de7cc8f676de1901a9a1edb5e7a0db2",
    "short_test.json": "f0e59a0845f0b17d3603c9ad956a5ab66e89ae7e3fbc8aaae2a4d3f6fb5399bb",
    "unanswerable_train.json": "fee433470d538ec29ab4586b5aceabe7feb06bce898a74471013d205869c235c",
    "unanswerable_test.json": "4497f760046815e32867c44a27f0e426fe5820cd8b8a724100de701d192704c0",
}
#: The hash DVC gives the folder (``data.dvc``, out ``data/raw/pydoc_qa``).
RAW_DVC_MD5 = "dccd8dc9e61b76ea25697188914ceae4.dir"
_FIX = "run `python -m emms materialize-data` (or `dvc pull`) to recreate it"


class RawDataError(FileNotFoundError):
    """The raw pydoc_qa files are missing, not the pinned bytes, or from another Python."""


# --------------------------------------------------------------------------- generator


def topic_texts() -> dict[str, str]:
    """The bundled documentation topics of this Python, checked against the pin."""
    from pydoc_data.topics import topics

    digest = hashlib.sha256(json.dumps(topics, sort_keys=True).encode()).hexdigest()
    if digest != TOPICS_SHA256:
        running = ".".join(map(str, sys.version_info[:3]))
        raise RawDataError(
            f"pydoc_data.topics of Python {running} differs from the one of Python "
            f"{PYTHON_VERSION} that generated the pinned pydoc_qa files (the bundled "
            f"documentation changes between patch releases). Run under Python "
            f"{PYTHON_VERSION}, or use the pinned files (`dvc pull`)."
        )
    return dict(topics)


def split_topics(names, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """(source topics, test topics): a seeded 80/20 split of the sorted topic names."""
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    n_test = round(TEST_FRACTION * len(names))
    test = sorted(names[i] for i in order[:n_test])
    return sorted(set(names) - set(test)), test


_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z\"(])")


def _prose_paragraphs(text: str):
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if any(line[:1].isspace() for line in lines if line):
            continue  # grammar, code or a table
        lines = [line for line in lines if line and not re.fullmatch(r"[*=\-^~+]+", line)]
        words = " ".join(lines).split()
        if len(words) >= MIN_CONTEXT_WORDS:
            yield " ".join(words)


def contexts(text: str) -> list[str]:
    """The short prose contexts of one topic, in document order."""
    out = []
    for paragraph in _prose_paragraphs(text):
        current: list[str] = []
        for sentence in _SENTENCE.split(paragraph):
            words = sentence.split()
            if len(words) > MAX_CONTEXT_WORDS:
                if len(current) >= MIN_CONTEXT_WORDS:
                    out.append(" ".join(current))
                current = []
                continue  # one sentence too long for a context
            if len(current) + len(words) > MAX_CONTEXT_WORDS:
                if len(current) >= MIN_CONTEXT_WORDS:
                    out.append(" ".join(current))
                current = []
            current += words
        if len(current) >= MIN_CONTEXT_WORDS:
            out.append(" ".join(current))
    return out


def _core(word: str) -> tuple[int, int]:
    """(start, end) of a word's first to last letter or digit; (0, 0) if it has none."""
    letters = [i for i, c in enumerate(word) if c.isalnum()]
    return (letters[0], letters[-1] + 1) if letters else (0, 0)


def _content(word: str) -> bool:
    start, end = _core(word)
    core = word[start:end]
    return len(core) >= 3 and core.isalpha() and core.lower() not in _STOP


def questions(context: str, spec: TargetSpec, rng, *, title: str, prefix: str) -> list:
    """Up to :data:`QUESTIONS_PER_CONTEXT` cloze questions on ``context``."""
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", context)]
    candidates = [
        (i, n)
        for n in range(spec.min_words, spec.max_words + 1)
        for i in range(len(words) - n + 1)
        if _content(words[i][1])
        and _content(words[i + n - 1][1])
        and min(i, WINDOW) + min(len(words) - i - n, WINDOW) >= WINDOW
    ]
    if not candidates:
        return []
    chosen = rng.choice(
        len(candidates), size=min(QUESTIONS_PER_CONTEXT, len(candidates)), replace=False
    )
    out, used = [], set()
    for k in sorted(int(c) for c in chosen):
        i, n = candidates[k]
        if any(j in used for j in range(i, i + n)):
            continue  # overlapping spans would give away each other's answer
        used.update(range(i, i + n))
        start = words[i][0] + _core(words[i][1])[0]
        end = words[i + n - 1][0] + _core(words[i + n - 1][1])[1]
        left = " ".join(w for _, w in words[max(0, i - WINDOW) : i])
        right = " ".join(w for _, w in words[i + n : i + n + WINDOW])
        question = " ".join(part for part in (left, BLANK, right) if part)
        qid = f"{prefix}-{len(out)}"
        out.append(QAExample(qid, title, context, question, ((context[start:end], start),), False))
    return out


def _pairs(text: str) -> set[tuple[str, str]]:
    words = [w.lower() for w in re.findall(r"\w+", text)]
    return set(zip(words, words[1:], strict=False))


def unanswerable(examples: list, fraction: float, rng) -> list:
    """Make ``fraction`` of ``examples`` unanswerable (SQuAD 2.0): each chosen question is
    moved to another paragraph of the same list that contains neither its answer nor any
    word pair of its cloze window (so the window cannot be matched), without answers.
    A question for which no such paragraph is drawn in 20 tries stays answerable."""
    paragraphs = list(dict.fromkeys((ex.title, ex.context) for ex in examples))
    chosen = set(rng.choice(len(examples), size=round(fraction * len(examples)), replace=False))
    out = []
    for index, ex in enumerate(examples):
        if index in chosen:
            window = _pairs(ex.question.replace(BLANK, " "))
            answer = ex.answer_texts[0].lower()
            for k in rng.integers(len(paragraphs), size=20):
                title, context = paragraphs[int(k)]
                if (
                    context != ex.context
                    and answer not in context.lower()
                    and not (window & _pairs(context))
                ):
                    ex = QAExample(ex.id, title, context, ex.question, (), True)
                    break
        out.append(ex)
    return out


def generate() -> dict[str, bytes]:
    """Every raw file's bytes (:data:`RAW_FILES`), from this Python's pydoc_data."""
    texts = topic_texts()
    source_topics, test_topics = split_topics(texts)
    files = {}
    source = [
        QAExample(f"source-{t}-{c}", t, context, "-", (), True)
        for t in source_topics
        for c, context in enumerate(contexts(texts[t]))
    ]
    # the source file holds text only: paragraphs without questions
    files["source.json"] = _source_json(source)
    for index, spec in enumerate(TARGETS.values()):
        rng = np.random.default_rng([GENERATOR_SEED, index])
        for split, topics in (("train", source_topics), ("test", test_topics)):
            examples = [
                example
                for t in topics
                for c, context in enumerate(contexts(texts[t]))
                for example in questions(
                    context, spec, rng, title=t, prefix=f"{spec.name}-{split}-{t}-{c}"
                )
            ]
            if spec.null_fraction:
                examples = unanswerable(examples, spec.null_fraction, rng)
            files[f"{spec.name}_{split}.json"] = squad_json(examples, VERSION)
    return files


def _source_json(examples) -> bytes:
    data: dict[str, list] = {}
    for ex in examples:
        data.setdefault(ex.title, []).append({"context": ex.context, "qas": []})
    document = {
        "version": VERSION,
        "data": [{"title": t, "paragraphs": p} for t, p in data.items()],
    }
    return (json.dumps(document, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


# --------------------------------------------------------------------------- raw files


def materialize_raw(out_dir: str | os.PathLike) -> list[Path]:
    """Write :data:`RAW_FILES` into ``out_dir`` (each atomically) and return their paths."""
    out = Path(out_dir)
    paths = []
    for name, data in generate().items():
        atomic_write_bytes(out / name, data)
        paths.append(out / name)
    return paths


def load_raw(raw_dir: str | os.PathLike) -> dict[str, list[QAExample]]:
    """Every raw file, checked against :data:`RAW_SHA256`, read by :func:`read_squad`
    (whose :class:`SquadError` names the bad item). Returns ``{file stem: examples}``;
    ``"source"`` maps to its paragraphs as examples without answers."""
    raw_dir = Path(raw_dir)
    out = {}
    for name in RAW_FILES:
        path = raw_dir / name
        if not path.is_file():
            raise RawDataError(f"{path} is missing; {_FIX}.")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != RAW_SHA256[name]:
            raise RawDataError(
                f"{path} is not the pinned pydoc_qa file (SHA-256 {digest[:12]}..., expected "
                f"{RAW_SHA256[name][:12]}..., generated from Python {PYTHON_VERSION}'s "
                f"pydoc_data); {_FIX}."
            )
        out[name.removesuffix(".json")] = (
            read_source(path) if name == "source.json" else (read_squad(path))
        )
    return out


def read_source(path) -> list[QAExample]:
    """The paragraphs of a source file (SQuAD JSON without questions), as answerless
    examples (``id`` = title/index); an empty paragraph raises :class:`SquadError`."""
    path = Path(path)
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SquadError(f"{path}: not UTF-8 JSON ({error}).") from None
    out = []
    for article in document["data"]:
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph.get("context", "")
            if not context.strip():
                raise SquadError(f"{path}: article {article['title']!r}, paragraph {p}: empty.")
            out.append(QAExample(f"{article['title']}/{p}", article["title"], context, "-"))
    return out
