"""The task abstraction: the five experiments declared, recognition and textqa built, the
seams the other three need (label formats, label -> text, truth columns) exercised now."""

import numpy as np
import pytest

from emms.paths import TaskPaths
from emms.selectors.registry import selectors_for
from emms.tasks import LABEL_FORMATS, TASKS, TargetData, TaskNotBuilt, get_task, label_text
from emms.tasks.base import SELECTOR_FORMAT, box_text


def test_five_tasks_each_with_its_own_label_format_and_metric():
    tasks = [get_task(name) for name in TASKS]
    assert [t.name for t in tasks] == list(TASKS)
    assert sorted(t.label_format for t in tasks) == sorted(LABEL_FORMATS)
    assert len({t.truth_metric for t in tasks}) == 5
    assert [t.name for t in tasks if t.built] == ["recognition", "textqa"]


@pytest.mark.parametrize("name", [n for n in TASKS if n not in ("recognition", "textqa")])
def test_unbuilt_tasks_say_so_from_every_hook(name, tmp_path):
    task = get_task(name)
    paths = TaskPaths(name, tmp_path)
    for call in (
        lambda: task.build_data(None, paths, tmp_path),
        lambda: task.load_target(paths, "x"),
        lambda: task.pretrain_zoo(None, paths),
        lambda: task.model_outputs(None, paths, "m", None),
        lambda: task.finetune(None, paths, "m", None, 0),
    ):
        with pytest.raises(TaskNotBuilt, match=f"{name} experiment is declared.*not built yet"):
            call()
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(KeyError, match="unknown task 'ocr'.*captioning"):
        get_task("ocr")


def test_every_label_format_has_selectors_that_score_it():
    for label_format in LABEL_FORMATS:
        names = {s.name for s in selectors_for(label_format=SELECTOR_FORMAT[label_format])}
        assert {"emms", "logme_flabel"} <= names, label_format


def test_label_text_for_each_format():
    assert label_text("class", 3, template="a {name}", class_names=["a", "b", "c", "d"]) == "a d"
    assert label_text("caption", " a seven left of a two ") == "a seven left of a two"
    assert label_text("answer", "two", question="how many sevens?") == (
        "Q: how many sevens? A: two"
    )
    assert label_text("span", "os.path", question="Which module joins paths?") == (
        "Q: Which module joins paths? A: os.path"
    )
    assert label_text("box", [8, 0, 16, 8], width=32, height=32) == ("[0.250, 0.000, 0.500, 0.250]")


@pytest.mark.parametrize(
    ("label_format", "label", "context", "message"),
    [
        ("caption", "  ", {}, "empty caption"),
        ("answer", "", {"question": "q?"}, "empty answer"),
        ("box", [10, 0, 5, 8], {"width": 32, "height": 32}, r"x1 < x2"),
        ("box", [0, 0, 40, 8], {"width": 32, "height": 32}, "not inside a 32x32"),
        ("audio", "x", {}, "unknown label format"),
    ],
)
def test_label_text_refuses_bad_labels(label_format, label, context, message):
    with pytest.raises(ValueError, match=message):
        label_text(label_format, label, **context)


def test_box_text_is_normalised_and_fixed_precision():
    text = box_text([1, 2, 3, 4], width=3, height=8)
    assert text == "[0.333, 0.250, 1.000, 0.500]"


def test_target_data_checks_its_splits_and_format():
    images = np.zeros((4, 1, 8, 8), np.float32)
    target = TargetData(
        "t",
        "recognition",
        "class",
        images,
        [0, 1, 0, 1],
        images,
        [1, 0, 1, 0],
        "d",
        class_names=["a", "b"],
    )
    assert target.num_classes == 2
    with pytest.raises(ValueError, match="4 train inputs but 3 labels"):
        TargetData("t", "recognition", "class", images, [0, 1, 0], images, [0] * 4, "d")
    with pytest.raises(ValueError, match="label_format 'pixels'"):
        TargetData("t", "recognition", "pixels", images, [0] * 4, images, [0] * 4, "d")
    captions = TargetData("c", "captioning", "caption", images, ["a"] * 4, images, ["b"] * 4, "d")
    with pytest.raises(TypeError, match="caption labels, not classes"):
        _ = captions.num_classes


def test_recognition_texts_follow_the_template(tmp_path):
    from emms.params import load_params

    task = get_task("recognition")
    block = load_params().task("recognition")
    images = np.zeros((3, 1, 8, 8), np.float32)
    target = TargetData(
        "t",
        "recognition",
        "class",
        images,
        np.array([2, 0, 1]),
        images,
        np.array([0, 1, 2]),
        "d",
        class_names=["zero", "one", "two"],
    )
    texts = task.label_texts(block, target)
    assert texts == [block.flabels.template.format(name=n) for n in ("two", "zero", "one")]
    assert task.truth_columns == ("dataset", "model", "seed", "test_accuracy")
