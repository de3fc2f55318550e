"""The embedded text-QA data: generated from Python's bundled docs, deterministic, pinned,
split by topic, every answer a span of its short context; bad raw input stops the data
stage with the item named and nothing written."""

import hashlib
import json
import re
import sys

import pytest

from emms.datasets import pydoc_qa
from emms.datasets.squad import SquadError, parse_squad
from emms.paths import TaskPaths
from emms.tasks import get_task

SAME_PYTHON = ".".join(map(str, sys.version_info[:3])) == pydoc_qa.PYTHON_VERSION
needs_pinned_python = pytest.mark.skipif(
    not SAME_PYTHON, reason=f"the pins are of Python {pydoc_qa.PYTHON_VERSION}'s pydoc_data"
)


@pytest.fixture(scope="module")
def files():
    return pydoc_qa.generate()


@needs_pinned_python
def test_generation_is_deterministic_and_matches_the_pins(files):
    assert files == pydoc_qa.generate()
    assert set(files) == set(pydoc_qa.RAW_FILES)
    for name, data in files.items():
        assert hashlib.sha256(data).hexdigest() == pydoc_qa.RAW_SHA256[name], name


def test_another_pythons_docs_are_refused_saying_why(monkeypatch):
    monkeypatch.setattr(pydoc_qa, "TOPICS_SHA256", "0" * 64)
    with pytest.raises(pydoc_qa.RawDataError, match=r"Python 3\.11\.7.*patch releases"):
        pydoc_qa.generate()


@needs_pinned_python
def test_topics_are_split_80_20_and_test_topics_are_unseen(files):
    source = {a["title"] for a in json.loads(files["source.json"])["data"]}
    for target in pydoc_qa.TARGETS:
        train = {ex.title for ex in parse_squad(files[f"{target}_train.json"])}
        test = {ex.title for ex in parse_squad(files[f"{target}_test.json"])}
        assert train and test and not train & test
        assert not source & test and train <= source
    train_topics, test_topics = pydoc_qa.split_topics(pydoc_qa.topic_texts())
    assert len(test_topics) == 16 and len(train_topics) == 63


@needs_pinned_python
def test_answers_are_spans_of_short_contexts_with_their_cloze_window(files):
    for name, spec in pydoc_qa.TARGETS.items():
        for split in ("train", "test"):
            examples = parse_squad(files[f"{name}_{split}.json"])  # checks every offset
            assert len(examples) > 250
            for ex in examples:
                if ex.is_impossible:
                    continue  # test_unanswerable_questions_cannot_be_matched
                ((text, start),) = ex.answers
                assert ex.context[start : start + len(text)] == text
                assert spec.min_words <= len(text.split()) <= spec.max_words
                assert len(ex.context.split()) <= pydoc_qa.MAX_CONTEXT_WORDS
                left, right = (part.strip() for part in ex.question.split(pydoc_qa.BLANK))
                assert len(left.split()) <= pydoc_qa.WINDOW >= len(right.split())
                # the question is the context around the answer, the answer blanked out
                pattern = (
                    re.escape(left) + r"\s*\S*?" + re.escape(text) + r"\S*?\s*" + re.escape(right)
                )
                assert re.search(pattern, ex.context), (ex.id, ex.question, text)


def test_unanswerable_questions_cannot_be_matched(files):
    """SQuAD 2.0 target: about a third of the questions are moved to a paragraph where
    no word pair of their cloze window occurs; the other targets have none."""
    for name, spec in pydoc_qa.TARGETS.items():
        for split in ("train", "test"):
            examples = parse_squad(files[f"{name}_{split}.json"])
            null = [ex for ex in examples if ex.is_impossible]
            assert len(null) / len(examples) == pytest.approx(spec.null_fraction, abs=0.03)
            for ex in null:
                assert ex.answers == ()
                window = ex.question.replace(pydoc_qa.BLANK, " ")
                assert not pydoc_qa._pairs(window) & pydoc_qa._pairs(ex.context), ex.id


def test_contexts_keep_prose_only():
    prose = "Some prose here that is long enough to be a context of words, really."
    text = f"Title\n*****\n\n{prose}\n\n   code = 1\n   more()\n"
    assert pydoc_qa.contexts(text) == [
        "Some prose here that is long enough to be a context of words, really."
    ]


def _bad_raw(tmp_path, files, name, data, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    for other, content in files.items():
        (raw / other).write_bytes(data if other == name else content)
    pins = {n: hashlib.sha256((raw / n).read_bytes()).hexdigest() for n in files}
    monkeypatch.setattr(pydoc_qa, "RAW_SHA256", pins)  # the bad bytes pass the pin
    return raw


def _first_question(files, name):
    doc = json.loads(files[name])
    return doc, doc["data"][0]["paragraphs"][0]


@needs_pinned_python
@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda p: p["qas"][0]["answers"][0].update(answer_start=0, text="zzz"),
            "is not in the paragraph",
        ),
        (
            lambda p: p["qas"][0]["answers"][0].update(answer_start=len(p["context"]) - 1),
            "runs past the end",
        ),
        (lambda p: p.update(context=""), "the paragraph \\(context\\) is empty"),
        (None, "not UTF-8"),
    ],
)
def test_bad_raw_data_stops_the_data_stage_naming_the_item_and_writes_nothing(
    files, tmp_path, monkeypatch, corrupt, message
):
    name = "short_train.json"
    doc, paragraph = _first_question(files, name)
    if corrupt is None:
        data = files[name].replace(b"the", "th\xe9".encode("latin-1"), 1)
    else:
        corrupt(paragraph)
        data = json.dumps(doc).encode()
    raw = _bad_raw(tmp_path, files, name, data, monkeypatch)
    task = get_task("textqa")
    paths = TaskPaths("textqa", tmp_path / "project")

    class Block:
        class data:
            seed, targets, n_train, n_test = 0, ["short"], 8, 8

    with pytest.raises(SquadError, match=message) as error:
        task.build_data(Block, paths, raw)
    assert name in str(error.value)
    if corrupt is not None:
        title = doc["data"][0]["title"]
        assert repr(title) in str(error.value)
    assert not (tmp_path / "project").exists()  # nothing cached


@needs_pinned_python
def test_a_changed_raw_file_is_not_the_pinned_one(files, tmp_path):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    pydoc_qa.load_raw(tmp_path)
    (tmp_path / "unanswerable_test.json").write_bytes(files["unanswerable_test.json"] + b" ")
    with pytest.raises(
        pydoc_qa.RawDataError, match="unanswerable_test.json is not the pinned.*3.11.7"
    ):
        pydoc_qa.load_raw(tmp_path)
