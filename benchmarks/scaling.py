"""Time against N (log-log) for EMMS exact (float64 and float32), paper, released and
LogME (F-label) on the CPU, with the floor X^T [X, Z]; GPU points from
benchmarks/results/gpu.json (benchmarks/gpu.py's sweep) where that file exists.

Default: N in 1k, 3k, 10k, 30k, 100k at D=512, L=256, K=3 (float32 inputs from the
paper's generative model, benchmarks/solvers.py), plus the N=10k paper shape
(D=2048, L=1024) from one run of each method; medians of --runs (1 at N >= --single-from).
Writes benchmarks/results/scaling.png, .svg and .md.

    python benchmarks/scaling.py                # < 10 minutes on 2 idle cores
    python benchmarks/scaling.py --ns 500,1000 --no-paper-shape --out-dir /tmp/s   # a check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from solvers import make_inputs  # noqa: E402

import emms  # noqa: E402

METHODS = {
    "floor X^T [X, Z] (float64)": None,
    "exact (float64)": {},
    "exact (float32)": {"dtype": "float32"},
    "paper": {"solver": "paper", "tol": 1e-9},
    "released": {"solver": "released"},
    "LogME (F-label)": "logme",
}


def median_time(function, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n, d, width, k, runs):
    features, labels = make_inputs(n, d, width, k, seed=1)
    x64 = features.astype(np.float64)
    cat64 = np.concatenate([x64, labels.reshape(n, -1).astype(np.float64)], axis=1)
    out = {}
    for name, kwargs in METHODS.items():
        if kwargs is None:
            out[name] = median_time(lambda: x64.T @ cat64, runs)
        elif kwargs == "logme":
            out[name] = median_time(lambda: emms.logme_flabel(features, labels), runs)
        else:
            out[name] = median_time(
                lambda kwargs=kwargs: emms.emms(features, labels, **kwargs), runs
            )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1000,3000,10000,30000,100000")
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--single-from", type=int, default=100_000)
    parser.add_argument("--no-paper-shape", action="store_true")
    parser.add_argument("--gpu-json", type=Path, default=Path("benchmarks/results/gpu.json"))
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [int(v) for v in args.ns.split(",") if v]
    table = {}
    for n in ns:
        table[n] = measure(n, args.d, args.width, args.k, 1 if n >= args.single_from else args.runs)
        print(n, {m: round(s, 3) for m, s in table[n].items()}, flush=True)
    paper_shape = None
    if not args.no_paper_shape:
        paper_shape = measure(10_000, 2048, 1024, 3, 1)
        print("paper shape", paper_shape, flush=True)
    gpu = json.loads(args.gpu_json.read_text()) if args.gpu_json.exists() else None

    fig, ax = plt.subplots(figsize=(7, 5))
    styles = {"floor X^T [X, Z] (float64)": ("k", "--")}
    for name in METHODS:
        color, line = styles.get(name, (None, "-"))
        ax.plot(ns, [table[n][name] for n in ns], marker="o", linestyle=line, color=color,
                label=f"CPU {name}")  # fmt: skip
    if gpu:
        sweep = gpu["sweep"]
        gpu_ns = [e["n"] for e in sweep]
        for key, line in (("floor float32", ":"), ("exact float64", "-."),
                          ("exact float32", "-."), ("paper float64", "-."),
                          ("released float64", "-.")):  # fmt: skip
            ax.plot(gpu_ns, [e[key] for e in sweep], marker="s", linestyle=line, alpha=0.7,
                    label=f"GPU {key} ({gpu['info']['card']})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (samples)")
    ax.set_ylabel("seconds")
    ax.set_title(f"EMMS time against N (D={args.d}, L={args.width}, K={args.k})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out_dir / "scaling.png", dpi=120)
    fig.savefig(args.out_dir / "scaling.svg")

    names = list(METHODS)
    lines = [
        f"CPU: {platform.machine()}, {os.cpu_count()} cores, NumPy {np.__version__}, load "
        f"average (1 min) at the end {os.getloadavg()[0]:.2f}; "
        f"{datetime.date.today().isoformat()}. D={args.d}, "
        f"L={args.width}, K={args.k}, float32 inputs; median of {args.runs} runs (1 at "
        f"N >= {args.single_from}). Seconds (ratio to the float64 floor in brackets).",
        "",
        "| N | " + " | ".join(names) + " |",
        "| ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for n in ns:
        floor = table[n][names[0]]
        cells = [f"{table[n][m]:.3f} ({table[n][m] / floor:.1f})" for m in names]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if paper_shape:
        floor = paper_shape[names[0]]
        cells = [f"{paper_shape[m]:.3f} ({paper_shape[m] / floor:.1f})" for m in names]
        lines += ["", "Paper shape N=10,000, D=2,048, L=1,024, K=3 (one run each):", "",
                  "| N | " + " | ".join(names) + " |",
                  "| ---: | " + " | ".join("---:" for _ in names) + " |",
                  "| 10000 | " + " | ".join(cells) + " |"]  # fmt: skip
    if gpu:
        lines += ["", f"GPU points: {gpu['info']['card']}, {gpu['info']['date']} "
                  "(benchmarks/results/gpu.md)."]  # fmt: skip
    report = "\n".join(lines)
    print(report)
    (args.out_dir / "scaling.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
