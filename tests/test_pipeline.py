"""The DVC pipeline: params validation, the data pin, metric comparison, and the whole
pipeline (papermill included) on tests/data/params-tiny.yaml in a scratch copy."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emms.pipeline import ParamsError, compare_metrics, dvc_dir_md5, label_texts, load_params

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "params-tiny.yaml"


def _write_params(tmp_path, edit):
    raw = yaml.safe_load(TINY.read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_project_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert len(params.models) >= 8 and len(params.targets) >= 3 and len(params.encoders) >= 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["data"]["targets"].append("mnist"), r"unknown dataset\(s\) \['mnist'\]"),
        (lambda p: p["flabels"]["encoders"].append("word2vec"), r"unknown encoder\(s\)"),
        (lambda p: p["zoo"]["models"][0].update(arch="alexnet"), "zoo.models"),
        (lambda p: p["zoo"]["models"].append(dict(p["zoo"]["models"][0])), "unique"),
        (lambda p: p.pop("finetune"), r"lacks the group\(s\) \['finetune'\]"),
    ],
)
def test_bad_params_name_the_problem(tmp_path, edit, message):
    with pytest.raises(ParamsError, match=message):
        load_params(_write_params(tmp_path, edit))


def test_label_texts_use_the_template():
    assert label_texts(["zero", "one"], [1, 0], "a handwritten {name}") == [
        "a handwritten one",
        "a handwritten zero",
    ]
    with pytest.raises(ParamsError, match="must contain"):
        label_texts(["zero"], [0], "a handwritten digit")


def test_compare_metrics_reports_drift_and_missing_entries():
    committed = {"d": {"emms": {"weighted_tau": 0.5, "pearson": 0.1}}}
    assert compare_metrics(committed, committed, 0.0) == []
    fresh = {"d": {"emms": {"weighted_tau": 0.53}}}
    problems = compare_metrics(fresh, committed, 0.02)
    assert any("weighted_tau" in p and "0.53" in p for p in problems)
    assert any("pearson: only in committed" in p for p in problems)
    assert compare_metrics(fresh, {"d": {"emms": {"weighted_tau": 0.52}}}, 0.02) == []


def test_raw_data_hash_matches_the_dvc_pin(tmp_path):
    from emms.datasets.digits import materialize_raw

    materialize_raw(tmp_path / "raw")
    pinned = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    assert dvc_dir_md5(tmp_path / "raw") == pinned
    (tmp_path / "raw" / "targets.npy").write_bytes(b"not the digits")
    assert dvc_dir_md5(tmp_path / "raw") != pinned


def _run(args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    for name in ("dvc.yaml", "data.dvc", "notebooks", "emms"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    shutil.copytree(ROOT / "data" / "reference", work / "data" / "reference")
    shutil.copy(TINY, work / "params.yaml")
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "init", "--no-scm", "-q"], work)
    _run([*dvc, "config", "core.analytics", "false"], work)

    # a corrupted raw file is caught against the pin in data.dvc
    (work / "data" / "raw").mkdir(parents=True)
    (work / "data" / "raw" / "images.npy").write_bytes(b"junk")
    (work / "data" / "raw" / "targets.npy").write_bytes(b"junk")
    failed = subprocess.run(
        [sys.executable, "-m", "emms", "materialize-data"], cwd=work, capture_output=True, text=True
    )
    assert failed.returncode != 0 and "the bytes differ" in failed.stderr
    shutil.rmtree(work / "data" / "raw")

    _run([sys.executable, "-m", "emms", "materialize-data"], work)
    _run([*dvc, "repro"], work)
    reports = work / "reports"
    for path in (
        "recognition.ipynb",
        "recognition.html",
        "metrics/recognition.json",
        "figures/recognition/weighted_tau.png",
        "figures/recognition/weighted_tau.svg",
        "tables/recognition/weighted_tau.md",
        "tables/recognition/headline.csv",
    ):
        assert (reports / path).is_file(), path
    metrics = json.loads((reports / "metrics" / "recognition.json").read_text())
    assert set(metrics) >= {"digits10", "shapes3"}
    tau = metrics["digits10"]["emms"]["weighted_tau"]
    assert -1.0 <= tau <= 1.0
    executed = json.loads((reports / "recognition.ipynb").read_text())
    errors = [
        o
        for c in executed["cells"]
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors

    # a second repro reruns nothing
    again = _run([*dvc, "repro"], work)
    assert "Running stage" not in again
    # changing one param reruns only what depends on it
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["flabels"]["template"] = "the handwritten {name}"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    status = json.loads(_run([*dvc, "status", "--json"], work).split("\n", 1)[0] or "{}")
    assert set(status) == {"flabels"}, status
    log = _run([*dvc, "repro"], work)
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")}
    assert ran == {"flabels", "recognition"}, log


def test_params_yaml_and_the_code_defaults_describe_the_same_experiment():
    # DEFAULT_ZOO / FINETUNE_RECIPE serve the benchmarks and API users; params.yaml drives
    # the pipeline: they must not drift apart.
    from emms.models.finetune import FINETUNE_RECIPE
    from emms.models.zoo import DEFAULT_ZOO, recipes_from_config

    params = load_params(ROOT / "params.yaml")
    assert recipes_from_config(params["zoo"]["models"]) == recipes_from_config(DEFAULT_ZOO)
    recipe = {k: v for k, v in params["finetune"].items() if k != "seeds"}
    assert recipe == {k: FINETUNE_RECIPE[k] for k in recipe}
