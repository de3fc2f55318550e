"""How far does another CPU move the ground truth? Simulated instruction sets, measured.

A reviewer's CPU has another instruction set, so oneDNN, MKL and ATen pick other kernels,
training rounds differently and fine-tuned accuracies move. This script retrains the zoo
and reruns the fine-tuning truth of a task from scratch, once per simulated instruction
set, in scratch copies of the project, and compares every model's truth with the native
run (the committed ``cache/TASK/truth.csv``):

    native     whatever this CPU offers (the committed run)
    avx2       ATEN_CPU_CAPABILITY=avx2    ONEDNN_MAX_CPU_ISA=AVX2   MKL_ENABLE_INSTRUCTIONS=AVX2
    default    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41  MKL_ENABLE_INSTRUCTIONS=SSE4_2

It writes ``benchmarks/results/isa_envelope-TASK.{json,md}``: per model the change of the
mean over seeds against the native run, next to the seed standard deviation. The largest
change, in the task's truth metric, is what ``evaluation.isa_allowance.TASK`` in
params.yaml must cover (tests/test_envelope.py checks that it does for every task).

    python benchmarks/isa_envelope.py [--task recognition] [--settings avx2 default]
    python benchmarks/isa_envelope.py --task textqa --summarise-only  # tables from the JSON

About 5 minutes per setting for recognition on 2 cores (zoo + truth stages); text QA
about 15 (zoo ~4 min, 48 fine-tunes).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emms.environment import machine_info  # noqa: E402

SETTINGS = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "default": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
}


def _truth_under(setting: str, task: str) -> pd.DataFrame:
    """Retrain zoo + truth of ``task`` in a scratch copy under one instruction set."""
    with tempfile.TemporaryDirectory(prefix=f"isa-{setting}-") as scratch:
        work = Path(scratch)
        for name in ("emms", "notebooks", "dvc.yaml", "params.yaml", "data.dvc"):
            source = ROOT / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
        env = dict(os.environ, **SETTINGS[setting], HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

        def run(*args):
            subprocess.run(args, cwd=work, env=env, check=True)

        run(sys.executable, "-m", "dvc", "init", "--no-scm", "-q")
        run(sys.executable, "-m", "emms", "materialize-data")
        run(sys.executable, "-m", "dvc", "repro", "-q", f"truth@{task}")
        kernel = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        table = pd.read_csv(work / "cache" / task / "truth.csv")
        table["setting"] = f"{setting} ({kernel})"
        return table


def result_path(task: str, suffix: str) -> Path:
    return ROOT / "benchmarks" / "results" / f"isa_envelope-{task}.{suffix}"


def summarise(native: pd.DataFrame, others: list[pd.DataFrame], metric: str) -> pd.DataFrame:
    """Per (setting, dataset, model): the change of the seed mean against native, and the
    native seed std."""
    base = native.groupby(["dataset", "model"])[metric].agg(["mean", "std"])
    rows = []
    for table in others:
        means = table.groupby(["dataset", "model"])[metric].mean()
        for (dataset, model), mean in means.items():
            rows.append(
                {
                    "setting": table["setting"].iloc[0],
                    "dataset": dataset,
                    "model": model,
                    "native mean": base.loc[(dataset, model), "mean"],
                    "mean": mean,
                    "change": mean - base.loc[(dataset, model), "mean"],
                    "native seed std": base.loc[(dataset, model), "std"],
                }
            )
    frame = pd.DataFrame(rows)
    # in units of the dataset's mean seed std (a model's own std can be 0 with 3 seeds)
    unit = frame.groupby(["setting", "dataset"])["native seed std"].transform("mean")
    frame["|change| / seed std"] = frame["change"].abs() / unit
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="recognition")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--summarise-only", action="store_true")
    args = parser.parse_args()
    if args.summarise_only:
        record = json.loads(result_path(args.task, "json").read_text())
        frame = pd.DataFrame(record["rows"]).drop(columns=["|change| / seed std"])
        unit = frame.groupby(["setting", "dataset"])["native seed std"].transform("mean")
        frame["|change| / seed std"] = frame["change"].abs() / unit
        _write(record, frame)
        return

    from emms.tasks import get_task

    metric = get_task(args.task).truth_metric
    others = [_truth_under(setting, args.task) for setting in args.settings]
    native = pd.read_csv(ROOT / "cache" / args.task / "truth.csv")  # the committed run
    frame = summarise(native, others, metric)
    result_path(args.task, "json").parent.mkdir(parents=True, exist_ok=True)
    record = {
        "task": args.task,
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
        "seeds": sorted(int(s) for s in native["seed"].unique()),
    }
    _write(record, frame)


def _write(record: dict, frame: pd.DataFrame) -> None:
    largest = float(frame["change"].abs().max())
    record["largest_change"] = round(largest, 6)
    record["largest_change_over_seed_std"] = round(float(frame["|change| / seed std"].max()), 3)
    record["rows"] = json.loads(frame.round(6).to_json(orient="records"))
    result_path(record["task"], "json").write_text(json.dumps(record, indent=2) + "\n")
    buffer = io.StringIO()
    buffer.write(
        f"Task {record['task']}; zoo and truth retrained from scratch per setting; "
        f"{record['date']}; {record['machine']['cpu']}, {record['machine']['cpu_count']} CPUs "
        f"(native kernels {record['machine']['torch_cpu_capability']}).\n\n"
        f"Largest |change| of a model's mean truth: {largest:.4f} "
        f"({record['largest_change_over_seed_std']:.1f} times the dataset's mean seed std).\n\n"
    )
    buffer.write(frame.round(4).to_markdown(index=False) + "\n")
    result_path(record["task"], "md").write_text(buffer.getvalue())
    print(buffer.getvalue())


if __name__ == "__main__":
    main()
