"""Bad input around the selectors: the CLI, caches, data pins, reports. Each probe gets one
line (no traceback), exit status 2, a message naming the input and the fix, and leaves
nothing written."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from emms.cache import CacheError, fingerprint, load_array, save_array
from emms.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "params-tiny.yaml"


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder with the tiny params; the CLI runs in it."""
    shutil.copy(TINY, tmp_path / "params.yaml")
    shutil.copy(ROOT / "data.dvc", tmp_path / "data.dvc")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fails(capsys, argv, message, folder):
    before = _files(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert message in err, err
    assert _files(folder) == before  # nothing written
    return err


def _edit_params(folder, edit):
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    edit(raw)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["recognition"]["data"].pop("targets"), "recognition.data.targets is required"),
        (lambda p: p["recognition"]["flabels"].pop("template"), "flabels.template is required"),
        (lambda p: p["recognition"]["finetune"].pop("lr"), "finetune.lr is required"),
        (lambda p: p["recognition"]["finetune"].update(lr="abc"), "finetune.lr = 'abc'"),
        (lambda p: p["recognition"]["data"].update(image_size=2), "image_size = 2"),
        (lambda p: p["recognition"]["data"].update(targets="digits10"), "must be a list"),
        (lambda p: p["evaluation"].update(n_boot=-5), "evaluation.n_boot = -5"),
    ],
)
def test_cli_params_errors_are_one_line(capsys, project, edit, message):
    _edit_params(project, edit)
    _fails(capsys, ["data", "--task", "recognition"], message, project)


def test_cli_yaml_syntax_error_is_one_line(capsys, project):
    (project / "params.yaml").write_text("tasks: [unclosed\n")
    err = _fails(capsys, ["zoo", "--task", "recognition"], "not valid YAML at line", project)
    assert err.count("\n") == 1


def test_cli_unknown_task_and_unbuilt_task(capsys, project):
    _fails(capsys, ["data", "--task", "ocr"], "unknown task 'ocr'", project)
    _fails(capsys, ["report", "--task", "vqa"], "has no task 'vqa'", project)


def test_cli_missing_metrics_and_processed_data(capsys, project):
    _fails(capsys, ["compare-metrics", "missing.json"], "missing.json not found", project)
    _fails(capsys, ["compare-envelope", "missing.json"], "missing.json not found", project)
    err = _fails(capsys, ["features", "--task", "recognition"], "missing", project)
    assert "dvc repro data@recognition" in err


def test_cli_envelope_of_a_task_without_an_allowance(capsys, project):
    (project / "reports" / "metrics").mkdir(parents=True)
    (project / "reports" / "metrics" / "textqa.json").write_text("{}")
    err = _fails(capsys, ["compare-envelope", "reports/metrics/textqa.json"], "'textqa'", project)
    assert "isa_allowance" in err and "isa_envelope.py --task textqa" in err


def test_cli_corrupt_raw_data_stops_with_the_fix(capsys, project):
    from emms.datasets.digits import materialize_raw

    raw = project / "data" / "raw" / "digits"
    materialize_raw(raw)
    labels = raw / "targets.npy"
    data = bytearray(labels.read_bytes())
    data[-1] ^= 1
    labels.write_bytes(bytes(data))
    err = _fails(capsys, ["data", "--task", "recognition"], "not the pinned", project)
    assert "materialize-data" in err
    _fails(capsys, ["materialize-data"], "not the pinned", project)


def test_cli_repinned_data_dvc_is_refused(capsys, project):
    from emms.datasets.digits import materialize_raw

    materialize_raw(project / "data" / "raw" / "digits")
    pin = yaml.safe_load((project / "data.dvc").read_text())
    pin["outs"][0]["md5"] = "0" * 32 + ".dir"  # what `dvc repro` writes after a bad byte
    (project / "data.dvc").write_text(yaml.safe_dump(pin))
    _fails(capsys, ["materialize-data"], "git checkout data.dvc", project)


def test_cli_report_of_a_missing_notebook(capsys, project, monkeypatch):
    from emms.paths import TaskPaths
    from emms.reports.notebook import ReportError, run_notebook

    with pytest.raises(ReportError, match="no notebook notebooks/recognition.ipynb"):
        run_notebook(TaskPaths("recognition", Path(".")))
    assert not (project / "reports").exists()


# --- caches ---------------------------------------------------------------------------


def test_swapped_feature_files_are_caught_by_their_sidecars(tmp_path):
    recipe_a, recipe_b = fingerprint({"name": "a", "width": 8}), fingerprint({"name": "b"})
    meta = {"task": "recognition", "dataset": "digits10", "split": "train"}
    save_array(tmp_path / "a.npy", np.ones((4, 2), np.float32), model="a", recipe=recipe_a, **meta)
    save_array(tmp_path / "b.npy", np.zeros((4, 2), np.float32), model="b", recipe=recipe_b, **meta)
    for suffix in (".npy", ".json"):  # swap the files, sidecars travel with them
        (tmp_path / f"a{suffix}").rename(tmp_path / f"t{suffix}")
        (tmp_path / f"b{suffix}").rename(tmp_path / f"a{suffix}")
    with pytest.raises(CacheError, match="made for model='b', expected 'a'"):
        load_array(tmp_path / "a.npy", expect={**meta, "model": "a", "recipe": recipe_a})
    # same name, another recipe (the zoo entry was edited): refused too
    with pytest.raises(CacheError, match="made for recipe="):
        load_array(tmp_path / "t.npy", expect={**meta, "model": "a", "recipe": recipe_b})


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ("[1, 2, 3]", "not a cache sidecar"),
        ('{"dtype": "float32", "sha256": "x"}', "no shape"),
        ("{not json", "not valid JSON"),
    ],
)
def test_malformed_sidecars_are_cache_errors(tmp_path, sidecar, message):
    path = save_array(tmp_path / "x.npy", np.zeros(3, np.float32), dataset="d")
    path.with_suffix(".json").write_text(sidecar)
    with pytest.raises(CacheError, match=message):
        load_array(path)


def test_flabels_with_another_template_are_refused(tmp_path):
    from emms.paths import TaskPaths
    from emms.reports.experiment import load_flabels

    paths = TaskPaths("recognition", tmp_path)
    save_array(
        paths.flabels("digits10", "minilm"),
        np.zeros((5, 3), np.float32),
        task="recognition",
        dataset="digits10",
        split="train",
        encoder="minilm",
        template="a handwritten {name}",
    )
    with pytest.raises(CacheError, match="made for template='a handwritten"):
        load_flabels(paths, "digits10", ["minilm"], "the digit {name}")
    with pytest.raises(CacheError, match="missing"):
        load_flabels(paths, "digits10", ["shuffled-minilm"], "a handwritten {name}")
    assert load_flabels(paths, "digits10", ["minilm"], "a handwritten {name}").shape == (5, 3, 1)


def test_metrics_json_that_is_not_json(capsys, project):
    (project / "m.json").write_text("{")
    _fails(capsys, ["compare-metrics", "m.json"], "m.json is not valid JSON", project)


def test_a_failing_report_leaves_the_previous_one_intact(tmp_path):
    import nbformat

    from emms.paths import TaskPaths
    from emms.reports.notebook import ReportError, run_notebook

    paths = TaskPaths("recognition", tmp_path)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell('task = "x"\noutput_dir = "x"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        parameters,
        nbformat.v4.new_code_cell(
            "from pathlib import Path\n"
            "(Path(output_dir) / 'tables').mkdir(parents=True)\n"
            "(Path(output_dir) / 'tables' / 'truth.csv').write_text('new')"
        ),
        nbformat.v4.new_code_cell("raise ValueError('cell five broke')"),
    ]
    paths.notebook_source.parent.mkdir(parents=True)
    nbformat.write(notebook, paths.notebook_source)
    previous = {paths.html: "old html", paths.tables / "truth.csv": "old", paths.metrics: "{}"}
    for path, text in previous.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    before = _files(paths.reports)
    with pytest.raises(ReportError, match=r"ValueError: cell five broke.*unchanged"):
        run_notebook(paths)
    assert _files(paths.reports) == before
    assert all(path.read_text() == text for path, text in previous.items())
