"""The DVC pipeline end to end on tests/data/params-tiny.yaml, in a scratch copy: the data
pin, every stage, papermill, a no-op second run, narrow reruns, and that every stage's
imports are listed as its deps in dvc.yaml."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "params-tiny.yaml"
TINY_TEXTQA = ROOT / "tests" / "data" / "params-tiny-textqa.yaml"


def _env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def _run(args, cwd, **extra):
    done = subprocess.run(args, cwd=cwd, env=_env(**extra), capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _stage_deps(work) -> dict[str, list[str]]:
    """Every generated stage (``name@task``) and its deps, as DVC resolves dvc.yaml."""
    code = (
        "import json; from dvc.repo import Repo; r = Repo('.');"
        "print(json.dumps({s.addressing: [str(d.def_path) for d in s.deps]"
        " for s in r.index.stages if s.cmd}))"
    )
    return json.loads(_run([sys.executable, "-c", code], work).strip().splitlines()[-1])


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def _build(tmp_path_factory, tiny):
    work = tmp_path_factory.mktemp("pipeline") / "project"
    work.mkdir()
    for name in ("dvc.yaml", "data.dvc", "notebooks", "emms"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    shutil.copytree(ROOT / "data" / "reference", work / "data" / "reference")
    (work / "benchmarks" / "results").mkdir(parents=True)
    for measured in (ROOT / "benchmarks" / "results").glob("isa_envelope-*.json"):
        shutil.copy(measured, work / "benchmarks" / "results")
    shutil.copy(tiny, work / "params.yaml")
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "init", "--no-scm", "-q"], work)
    _run([*dvc, "config", "core.analytics", "false"], work)
    imports = work.parent / "imports.jsonl"
    _run([sys.executable, "-m", "emms", "materialize-data"], work)
    _run([*dvc, "repro"], work, EMMS_RECORD_IMPORTS=str(imports))
    return work, imports


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny pipeline, run once; its stage import log."""
    return _build(tmp_path_factory, TINY)


@pytest.fixture(scope="module")
def built_textqa(tmp_path_factory):
    """The tiny text-QA pipeline, run once; its stage import log."""
    return _build(tmp_path_factory, TINY_TEXTQA)


@pytest.mark.slow
def test_tiny_pipeline_writes_every_report_file(built):
    work, _ = built
    reports = work / "reports"
    for path in (
        "recognition.ipynb",
        "recognition.html",
        "metrics/recognition.json",
        "figures/recognition/weighted_tau.png",
        "figures/recognition/weighted_tau.svg",
        "tables/recognition/weighted_tau.md",
        "tables/recognition/headline.csv",
        "timings/recognition.json",
    ):
        assert (reports / path).is_file(), path
    metrics = json.loads((reports / "metrics" / "recognition.json").read_text())
    assert set(metrics) >= {"digits10", "shapes3"}
    assert -1.0 <= metrics["digits10"]["emms"]["weighted_tau"] <= 1.0
    executed = json.loads((reports / "recognition.ipynb").read_text())
    errors = [
        o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
    ]
    assert not errors
    timings = json.loads((reports / "timings" / "recognition.json").read_text())
    assert set(timings) == {"data", "zoo", "features", "flabels", "truth", "report"}


@pytest.mark.slow
def test_tiny_pipeline_report_reads_cleanly(built):
    """No stderr, every figure embedded, no path of this machine, no truncated cell."""
    from emms.reports.check import report_problems

    work, _ = built
    assert report_problems(work / "reports", "recognition") == []


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["built", "built_textqa"])
def test_every_stage_lists_the_code_it_imports(pipeline, request):
    work, imports = request.getfixturevalue(pipeline)
    deps = _stage_deps(work)
    records = [json.loads(line) for line in imports.read_text().splitlines()]
    assert {r["stage"] for r in records} == set(deps)
    for record in records:
        stage = record["stage"]
        missing = [f for f in record["files"] if not _covered(f, deps[stage])]
        assert not missing, f"{stage} imports {missing} but dvc.yaml does not list them"


@pytest.mark.slow
def test_every_file_a_stage_writes_is_a_declared_output(built):
    # an undeclared output is not pushed to the DVC remote: a fresh clone would lack it
    work, _ = built
    code = (
        "import json; from dvc.repo import Repo; r = Repo('.');"
        "print(json.dumps([str(o.def_path) for s in r.index.stages for o in s.outs]))"
    )
    outs = json.loads(_run([sys.executable, "-c", code], work).strip().splitlines()[-1])
    written = [
        str(p.relative_to(work))
        for folder in ("data", "models", "cache")
        for p in (work / folder).rglob("*")
        if p.is_file() and p.name != ".gitignore" and "reference" not in p.parts
    ]
    undeclared = [f for f in written if not _covered(f, outs)]
    assert written and not undeclared, undeclared


@pytest.mark.slow
def test_outputs_are_pure_and_reruns_are_narrow(built):
    work, _ = built
    dvc = [sys.executable, "-m", "dvc"]
    # nothing in a cached output depends on the clock: a second repro reruns nothing
    again = _run([*dvc, "repro"], work)
    assert "Running stage" not in again
    # editing report code leaves zoo / features / truth untouched
    with open(work / "emms" / "reports" / "plotting.py", "a") as stream:
        stream.write("\n# an edit to the report code\n")
    status = json.loads(_run([*dvc, "status", "--json"], work).split("\n", 1)[0] or "{}")
    # (and the summary, which is drawn by the same report code from every task's metrics)
    assert set(status) == {"report@recognition", "summary"}, status
    # changing one param reruns only what depends on it
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["recognition"]["flabels"]["template"] = "the handwritten {name}"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    log = _run([*dvc, "repro"], work)
    ran = {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage")}
    assert ran == {"flabels@recognition", "report@recognition", "summary"}, log


@pytest.mark.slow
def test_corrupt_raw_data_stops_every_reader(built, tmp_path):
    work, _ = built
    raw = work / "data" / "raw" / "digits" / "targets.npy"
    good = raw.read_bytes()
    try:
        raw.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit of one label
        failed = subprocess.run(
            [sys.executable, "-m", "emms", "data", "--task", "recognition"],
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert failed.returncode == 2
        assert "not the pinned" in failed.stderr and "Traceback" not in failed.stderr
        failed = subprocess.run(
            [sys.executable, "-m", "emms", "materialize-data"],
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert failed.returncode == 2 and "not the pinned" in failed.stderr
    finally:
        raw.write_bytes(good)


@pytest.mark.slow
def test_a_failing_report_under_dvc_keeps_the_previous_one(built):
    work, _ = built
    notebook = work / "notebooks" / "recognition.ipynb"
    good = notebook.read_text()
    reports = work / "reports"
    before = {
        p: p.read_bytes() for p in reports.rglob("*") if p.is_file() and "timings" not in p.parts
    }
    try:
        cells = json.loads(good)
        cells["cells"].insert(
            3,
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": "raise RuntimeError('broken cell')",
            },
        )
        notebook.write_text(json.dumps(cells))
        failed = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert failed.returncode != 0 and "broken cell" in failed.stdout + failed.stderr
        after = {
            p: p.read_bytes()
            for p in reports.rglob("*")
            if p.is_file() and "timings" not in p.parts
        }
        assert after == before
    finally:
        notebook.write_text(good)


@pytest.mark.slow
def test_features_on_a_dask_cluster_are_the_same_bytes(built):
    """EMMS_DASK=local:2: every (model, target) pair runs as a Dask task in a worker
    process and writes its own cache files; they equal the in-process ones, byte for byte."""
    work, _ = built
    cache = work / "cache" / "recognition" / "features"
    before = {p: p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}
    for path in before:
        path.unlink()
    try:
        _run(
            [sys.executable, "-m", "emms", "features", "--task", "recognition"],
            work,
            EMMS_DASK="local:2",
        )
        after = {p: p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}
        assert list(after) == list(before)
        assert after == before
    finally:
        for path, data in before.items():
            path.write_bytes(data)


@pytest.mark.slow
def test_report_scoring_on_a_dask_cluster_equals_in_process(built, tmp_path, monkeypatch):
    """The report's (target, model) scoring jobs as Dask tasks on a 2-worker LocalCluster:
    the same scores and EMMS weights, row for row, as in this process, and each job's own
    file written under the output folder."""
    from emms.params import load_params
    from emms.reports.scoring import pair_path, score_pairs

    work, _ = built
    block = load_params(work / "params.yaml").task("recognition")
    targets, models = list(block.data.targets), list(block.models)
    monkeypatch.delenv("EMMS_DASK", raising=False)
    here = score_pairs("recognition", targets, models, tmp_path / "here", work, progress=False)
    monkeypatch.setenv("EMMS_DASK", "local:2")
    there = score_pairs("recognition", targets, models, tmp_path / "dask", work, progress=False)
    for frame_here, frame_there in zip(here[:2], there[:2], strict=True):
        assert len(frame_here) > 0
        columns = [c for c in frame_here.columns if c != "seconds"]
        assert frame_here[columns].equals(frame_there[columns])  # the same BLAS threads
    assert here[0].groupby("dataset").model.nunique().to_dict() == {t: len(models) for t in targets}
    assert all(pair_path(tmp_path / "dask", t, m).is_file() for t in targets for m in models)


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [("local:0", "local:N with N >= 1"), ("local:two", "local:N"), ("myhost", "tcp://host:8786")],
)
def test_a_bad_dask_scheduler_is_named(scheduler, message):
    from emms.stages.features import SchedulerError, dask_client

    with pytest.raises(SchedulerError, match=message), dask_client(scheduler):
        pass


def test_tiny_textqa_pipeline_reports_f1_truth_and_its_reliability(built_textqa):
    work, _ = built_textqa
    reports = work / "reports"
    for path in (
        "textqa.ipynb",
        "textqa.html",
        "metrics/textqa.json",
        "figures/textqa/truth.png",
        "figures/textqa/weighted_tau.png",
        "tables/textqa/truth_all_metrics.csv",
        "tables/textqa/truth_split_seed_tau.csv",
        "tables/textqa/headline.csv",
    ):
        assert (reports / path).is_file(), path
    truth = (work / "cache" / "textqa" / "truth.csv").read_text().splitlines()
    assert truth[0] == "dataset,model,seed,f1,exact_match"
    assert len(truth) == 1 + 2 * 3 * 3  # targets x models x seeds
    for line in truth[1:]:
        f1, em = (float(v) for v in line.split(",")[3:])
        assert 0.0 <= em <= f1 <= 100.0  # a question's EM of 1 implies its F1 of 1
    metrics = json.loads((reports / "metrics" / "textqa.json").read_text())
    assert set(metrics) >= {"short", "unanswerable", "_truth_split_seed_reliability"}
    assert -1.0 <= metrics["short"]["emms"]["weighted_tau"] <= 1.0
    executed = json.loads((reports / "textqa.ipynb").read_text())
    errors = [
        o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
    ]
    assert not errors
    timings = json.loads((reports / "timings" / "textqa.json").read_text())
    assert set(timings) == {"data", "zoo", "features", "flabels", "truth", "report"}


@pytest.mark.slow
def test_summary_puts_every_experiment_beside_the_paper(built):
    """reports/summary.html: the paper's five headline rows, this run's numbers for the
    tasks the params run (read from their metrics JSON), and a clean report."""
    import pandas as pd

    from emms.reports.check import report_problems

    work, _ = built
    reports = work / "reports"
    assert report_problems(reports, "summary") == []
    head = pd.read_csv(reports / "tables" / "summary" / "headline.csv")
    assert len(head) == 5 and head["experiment"].str.startswith("recognition (§4.1)").any()
    metrics = json.loads((reports / "metrics" / "recognition.json").read_text())
    row = head[head.experiment.str.startswith("recognition")].iloc[0]
    gain = metrics["headline"]["gain in mean weighted tau over LogME (F-label), %"]
    if gain is None:  # LogME (F-label)'s mean tau <= 0 on the tiny zoo: no percentage
        assert np.isnan(row["embedded: gain, %"])
    else:
        assert row["embedded: gain, %"] == pytest.approx(gain)
    assert (
        head[~head.experiment.str.startswith("recognition")]["embedded targets"] == "not built yet"
    ).all()
    tau = pd.read_csv(reports / "tables" / "summary" / "weighted_tau.csv")
    assert set(tau.target) == {"digits10", "shapes3"}
    emms = tau[(tau.target == "digits10") & (tau.method == "emms")]["weighted_tau"].item()
    assert emms == pytest.approx(metrics["digits10"]["emms"]["weighted_tau"])
    paired = pd.read_csv(reports / "tables" / "summary" / "paired.csv")
    # the tiny zoo (3 models) is under MIN_MODELS_FOR_SPREAD: no paired interval anywhere
    pairs = ("emms - logme_flabel", "emms_evidence - logme_flabel", "emms_evidence - emms")
    assert len(paired) == sum(key in metrics.get("paired", {}) for key in pairs)
    assert {"comparison", "wins", "mean", "low", "high"} <= set(paired.columns)
