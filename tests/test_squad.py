"""The SQuAD reader and metric: hand-computed scores, and bad input named item by item."""

import json

import pytest

from emms.datasets.squad import (
    QAExample,
    SquadError,
    exact_match,
    f1,
    max_over_gold,
    normalize_answer,
    parse_squad,
    squad_json,
    squad_scores,
)


def _doc(context="Python is fun to read.", answers=None, impossible=False, title="T", qid="q1"):
    answers = [{"text": "fun", "answer_start": 10}] if answers is None else answers
    qa = {"id": qid, "question": "What is Python?", "answers": answers}
    if impossible:
        qa["is_impossible"] = True
    return {
        "version": "v2.0",
        "data": [{"title": title, "paragraphs": [{"context": context, "qas": [qa]}]}],
    }


def _bytes(doc):
    return json.dumps(doc).encode()


def test_normalisation_lowercases_strips_punctuation_articles_and_spaces():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("the theory of them") == "theory of them"  # whole words only
    assert normalize_answer("  __init__()  ") == "init"


def test_f1_is_over_token_bags_and_em_after_normalisation():
    assert f1("the cat sat", "cat sat on mat") == pytest.approx(2 / 3)  # P 1, R 1/2
    # bags, not sets: common = min(2, 1) + min(1, 2) = 2, P = R = 2/3
    assert f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1("red", "blue") == 0.0
    assert f1("", "") == 1.0 and f1("", "cat") == 0.0 and f1("the", "") == 1.0
    assert exact_match("The Cat.", "cat") == 1.0 and exact_match("cats", "cat") == 0.0
    assert max_over_gold(f1, "blue", ["red", "light blue"]) == pytest.approx(2 / 3)
    assert max_over_gold(exact_match, "", []) == 1.0  # unanswerable: "" is right
    assert max_over_gold(exact_match, "cat", []) == 0.0


def test_dataset_scores_are_percent_means_and_handle_unanswerable():
    examples = [
        QAExample("a", "T", "the cat sat on the mat", "q", (("cat sat on mat", 4),)),
        QAExample("b", "T", "blue sky", "q", (("blue", 0),)),
        QAExample("c", "T", "blue sky", "q", (), True),
    ]
    scores = squad_scores(examples, {"a": "the cat sat", "b": "Blue!", "c": ""})
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1 + 1) / 3)
    # a missing prediction is the empty answer: wrong for "a" and "b", right for "c"
    assert squad_scores(examples, {}) == {
        "exact_match": pytest.approx(100 / 3),
        "f1": pytest.approx(100 / 3),
    }
    # gold answers that normalise to "" are dropped, as the official script does
    only_article = [QAExample("d", "T", "the end", "q", (("the", 0),))]
    assert squad_scores(only_article, {"d": ""})["exact_match"] == 100.0


def test_reader_round_trips_and_checks_offsets():
    examples = parse_squad(_bytes(_doc()))
    assert examples == [
        QAExample("q1", "T", "Python is fun to read.", "What is Python?", (("fun", 10),))
    ]
    assert parse_squad(squad_json(examples, "v")) == examples
    assert squad_json(examples, "v") == squad_json(examples, "v")  # deterministic bytes


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _doc(answers=[{"text": "snake", "answer_start": 0}]),
            r"'T'.*'q1'.*answer 'snake' is not in the paragraph",
        ),
        (
            _doc(answers=[{"text": "read.!", "answer_start": 17}]),
            r"'T'.*'q1'.*runs past the end of the paragraph \(22",
        ),
        (
            _doc(context="   ", title="Empty"),
            r"article 'Empty', paragraph 0: the paragraph \(context\) is empty",
        ),
        (_doc(impossible=True), r"'q1'.*is_impossible is true but the question has answers"),
        (_doc(answers=[]), r"'q1'.*needs at least one answer"),
        (_doc(answers=[{"text": "fun"}]), r"'q1'.*answer_start"),
    ],
)
def test_bad_items_are_named(doc, message):
    with pytest.raises(SquadError, match=message):
        parse_squad(_bytes(doc), source="bad.json")


def test_bytes_that_are_not_utf8_are_refused():
    data = _bytes(_doc(context="Python is fun to read.")).replace(
        b"Python", "Pyth\xf6n".encode("latin-1")
    )
    with pytest.raises(SquadError, match=r"bad\.json: not UTF-8 text \(byte \d+"):
        parse_squad(data, source="bad.json")


def test_duplicate_ids_and_unanswerable_questions():
    doc = _doc(answers=[], impossible=True)
    assert parse_squad(_bytes(doc))[0].is_impossible
    doc["data"][0]["paragraphs"][0]["qas"] *= 2
    with pytest.raises(SquadError, match="used twice"):
        parse_squad(_bytes(doc))
