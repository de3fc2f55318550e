"""params.yaml: the pydantic schema and its one-line errors (each names key, value, fix)."""

from pathlib import Path

import pytest
import yaml

from emms.params import ParamsError, load_params, params_table

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "params-tiny.yaml"


def _write(tmp_path, edit=None, text=None):
    path = tmp_path / "params.yaml"
    if text is None:
        raw = yaml.safe_load(TINY.read_text())
        edit(raw)
        text = yaml.safe_dump(raw)
    path.write_text(text)
    return path


def test_the_project_and_the_tiny_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    block = params.task("recognition")
    assert len(block.models) >= 8 and len(block.data.targets) >= 3
    assert len(params.check_encoders()) >= 2
    assert len(block.zoo.recipes()) == len(block.models)
    load_params(TINY)


def _drop(*keys):
    def edit(raw):
        node = raw
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return edit


def _set(value, *keys):
    def edit(raw):
        node = raw
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop("recognition", "data", "image_size"), None),  # has a default: still valid
        (_drop("recognition", "data", "targets"), r"recognition\.data\.targets is required"),
        (_drop("recognition", "flabels", "template"), r"recognition\.flabels\.template is req"),
        (_drop("recognition", "finetune", "lr"), r"recognition\.finetune\.lr is required"),
        (_drop("evaluation"), r"evaluation is required"),
        (_set("fast", "recognition", "finetune", "lr"), r"finetune\.lr = 'fast': .*number"),
        (_set(-1.0, "recognition", "finetune", "lr"), r"finetune\.lr = -1\.0: .*greater than 0"),
        (_set(2, "recognition", "data", "image_size"), r"image_size = 2: .*greater than or eq"),
        (_set("digits10", "recognition", "data", "targets"), r"targets = 'digits10': .*a list"),
        (_set(["mnist"], "recognition", "data", "targets"), r"unknown dataset\(s\) \['mnist'\]"),
        (_set(0, "evaluation", "n_boot"), r"evaluation\.n_boot = 0"),
        (_set([0], "recognition", "finetune", "seeds"), r"seeds = \[0\]: .*at least 2"),
        (_set("a {label}", "recognition", "flabels", "template"), r"must contain '\{name\}'"),
        (_set(1, "recognition", "finetune", "lrr"), r"finetune\.lrr is not a known key"),
        (_set(["minilm", "minilm"], "encoders"), r"repeats an encoder"),
        (
            _set({"textqa": 5.0}, "evaluation", "isa_allowance"),
            r"isa_allowance has no value for task 'recognition'.*isa_envelope\.py --task recog",
        ),
        (_set(0.14, "evaluation", "isa_allowance"), r"isa_allowance = 0\.14: .*dictionary"),
        (_set({"recognition": -1}, "evaluation", "isa_allowance"), r"greater than or equal"),
        (_set({}, "tasks"), r"tasks = \{\}"),
        (
            _set(
                {"dataset": "x", "zoo": "z", "features": "f", "finetune": "f", "reader": "x"},
                "tasks",
                "vqa",
            ),
            r"tasks\.vqa is not a built task",
        ),
    ],
)
def test_bad_params_give_one_line_naming_the_key(tmp_path, edit, message):
    path = _write(tmp_path, edit)
    if message is None:
        load_params(path)
        return
    with pytest.raises(ParamsError, match=message) as error:
        load_params(path)
    assert "Traceback" not in str(error.value) and str(path) in str(error.value)


def test_names_are_checked_by_the_stages_that_use_them(tmp_path):
    params = load_params(_write(tmp_path, _set(["minilm", "word2vec"], "encoders")))
    with pytest.raises(ParamsError, match=r"unknown encoder\(s\) \['word2vec'\]"):
        params.check_encoders()
    edit = _set("alexnet", "recognition", "zoo", "models", 0, "arch")
    params = load_params(_write(tmp_path, edit))
    with pytest.raises(ParamsError, match="alexnet"):
        params.task("recognition").zoo.recipes()


def test_yaml_syntax_and_missing_files_are_one_line(tmp_path):
    with pytest.raises(ParamsError, match=r"not valid YAML at line 3, column 1: expected") as error:
        load_params(_write(tmp_path, text="tasks:\n  recognition: [unclosed\n"))
    assert "\n" not in str(error.value)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(_write(tmp_path, text="- just a list\n"))


def test_the_params_table_covers_every_key_of_the_project_file():
    table = params_table()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block in ("data", "zoo", "finetune", "features", "flabels"):
        for key in raw["recognition"][block]:
            assert f"`recognition.{block}.{key}`" in table, (block, key)
    for key in raw["evaluation"]:
        assert f"`evaluation.{key}`" in table


TINY_TEXTQA = ROOT / "tests" / "data" / "params-tiny-textqa.yaml"


def test_the_textqa_block_is_valid_and_sized_for_the_issue():
    params = load_params(ROOT / "params.yaml")
    block = params.task("textqa")
    recipes = block.zoo.recipes()
    assert len(recipes) >= 8 and len({r.kind for r in recipes}) >= 2
    assert any(r.kind == "bert" and r.span_steps == 0 for r in recipes)  # the random control
    assert len(block.data.targets) >= 2 and len(block.finetune.seeds) >= 3
    assert load_params(TINY_TEXTQA).task("textqa").models


def _textqa(raw_edit):
    def edit(raw):
        raw.clear()
        raw.update(yaml.safe_load(TINY_TEXTQA.read_text()))
        raw_edit(raw)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_textqa(_set([0, 1], "textqa", "finetune", "seeds")), r"seeds = \[0, 1\]: .*at least 3"),
        (
            _textqa(_set(["squad"], "textqa", "data", "targets")),
            r"unknown dataset\(s\) \['squad'\]",
        ),
        (_textqa(_set(0, "textqa", "data", "n_train")), r"textqa\.data\.n_train = 0"),
        (_textqa(_drop("tasks", "textqa", "reader")), r"tasks\.textqa\.reader is required"),
    ],
)
def test_bad_textqa_params_give_one_line(tmp_path, edit, message):
    with pytest.raises(ParamsError, match=message):
        load_params(_write(tmp_path, edit))


def test_a_bad_text_recipe_is_a_params_error(tmp_path):
    def edit(raw):
        raw["textqa"]["zoo"]["models"][0]["kind"] = "gpt"

    params = load_params(_write(tmp_path, _textqa(edit)))
    with pytest.raises(ParamsError, match=r"textqa\.zoo\.models: model '\w+': kind 'gpt'"):
        params.task("textqa").zoo.recipes()


def test_the_params_table_covers_the_textqa_keys():
    table = params_table()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for block in ("data", "zoo", "finetune", "features", "flabels"):
        for key in raw["textqa"][block]:
            assert f"`textqa.{block}.{key}`" in table, (block, key)
