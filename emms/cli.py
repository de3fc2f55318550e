"""``python -m emms STAGE``: the pipeline steps that ``dvc.yaml`` runs.

materialize-data   data/raw from scikit-learn, checked against data.dvc
data               data/processed: the source task and the targets
zoo                models/: pre-train the zoo
features           cache/features, cache/source_probs
flabels            cache/flabels
truth              cache/truth/finetune.csv: fine-tuning ground truth
notebook NAME      reports/NAME.ipynb and .html (papermill)
compare-metrics    fresh vs committed metrics (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _committed_json(path: str) -> dict:
    shown = subprocess.run(
        ["git", "show", f"HEAD:{path}"], capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        raise SystemExit(f"no committed {path} to compare with: {shown.stderr.strip()}")
    return json.loads(shown.stdout)


def main(argv=None) -> int:
    from . import pipeline
    from .datasets.digits import RawDataError
    from .models.flabels import EncoderUnavailable
    from .models.zoo import CheckpointError, ZooError

    parser = argparse.ArgumentParser(prog="python -m emms", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("materialize-data")
    commands.add_parser("data")
    commands.add_parser("zoo")
    commands.add_parser("features")
    commands.add_parser("flabels")
    commands.add_parser("truth")
    notebook = commands.add_parser("notebook")
    notebook.add_argument("name")
    compare = commands.add_parser("compare-metrics")
    compare.add_argument("path", help="metrics JSON, compared with its committed version")
    compare.add_argument("--tolerance", type=float, default=None)
    args = parser.parse_args(argv)

    try:
        if args.command == "materialize-data":
            print(pipeline.materialize_data())
            return 0
        params = pipeline.load_params(args.params)
        if args.command == "data":
            pipeline.run_data(params)
        elif args.command == "zoo":
            pipeline.run_zoo(params)
        elif args.command == "features":
            pipeline.run_features(params)
        elif args.command == "flabels":
            pipeline.run_flabels(params)
        elif args.command == "truth":
            pipeline.run_truth(params)
        elif args.command == "notebook":
            pipeline.run_notebook(args.name, params)
        elif args.command == "compare-metrics":
            tolerance = args.tolerance
            if tolerance is None:
                tolerance = params["evaluation"]["ci_tolerance"]
            with open(args.path) as stream:
                fresh = json.load(stream)
            committed = _committed_json(args.path)
            problems = pipeline.compare_metrics(fresh, committed, tolerance)
            print(f"largest change: {pipeline.max_metric_change(fresh, committed):.6f}")
            if problems:
                print(
                    f"{len(problems)} metric(s) differ beyond {tolerance}:", *problems, sep="\n  "
                )
                return 1
            print(f"{args.path}: every metric within {tolerance} of the committed value")
    except (
        pipeline.ParamsError,
        pipeline.CacheError,
        RawDataError,
        CheckpointError,
        ZooError,
        EncoderUnavailable,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
