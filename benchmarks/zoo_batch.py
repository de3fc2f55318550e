"""A zoo at once: emms_zoo / logme_flabel_zoo against one call per model.

M models (features of different widths from the paper's generative model, as
benchmarks/solvers.py) against one target's F-labels; each ratio is measured in the same
run, medians of --runs repetitions. The batched results are checked equal to the
per-model ones.

    python benchmarks/zoo_batch.py            # N=10,000, D=512, L=1,024, K=3, M=6
"""

from __future__ import annotations

import argparse
import datetime
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


def median_time(function, runs):
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zoo_batch.md"))
    args = parser.parse_args(argv)

    features, labels = make_inputs(args.n, args.d, args.width, args.k)
    rng = np.random.default_rng(1)
    zoo = {}
    for m in range(args.models):
        width = args.d // 2 + (m * args.d) // (2 * max(args.models - 1, 1))
        noisy = features[:, :width] + (0.5 * m) * rng.standard_normal((args.n, width), np.float32)
        zoo[f"model{m}"] = noisy
    rows = {
        "EMMS, one call per model": median_time(
            lambda: {name: emms.emms(f, labels) for name, f in zoo.items()}, args.runs
        ),
        "EMMS, emms_zoo": median_time(lambda: emms.emms_zoo(zoo, labels), args.runs),
        "EMMS float32, one call per model": median_time(
            lambda: {name: emms.emms(f, labels, dtype="float32") for name, f in zoo.items()},
            args.runs,
        ),
        "EMMS float32, emms_zoo": median_time(
            lambda: emms.emms_zoo(zoo, labels, dtype="float32"), args.runs
        ),
        "LogME (F-label), one call per model": median_time(
            lambda: {name: emms.logme_flabel(f, labels) for name, f in zoo.items()}, args.runs
        ),
        "LogME (F-label), logme_flabel_zoo": median_time(
            lambda: emms.logme_flabel_zoo(zoo, labels), args.runs
        ),
    }
    pairs = [
        ("EMMS", "EMMS, one call per model", "EMMS, emms_zoo"),
        ("EMMS float32", "EMMS float32, one call per model", "EMMS float32, emms_zoo"),
        ("LogME (F-label)", "LogME (F-label), one call per model",
         "LogME (F-label), logme_flabel_zoo"),
    ]  # fmt: skip
    lines = [
        f"M={args.models} models (D from {args.d // 2} to {args.d}), N={args.n}, L={args.width}, "
        f"K={args.k}, float32 inputs; median of {args.runs} runs; {platform.machine()}, "
        f"{os.cpu_count()} cores, NumPy {np.__version__}, shared with other jobs, run under "
        f"nice; {datetime.date.today().isoformat()}.",
        "",
        "| what | median s | per model s |",
        "| --- | ---: | ---: |",
    ]
    for name, (seconds, _) in rows.items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / args.models:.2f} |")
    lines.append("")
    for label, single, batched in pairs:
        one, many = rows[single][1], rows[batched][1]
        if isinstance(next(iter(one.values())), float):
            worst = max(abs(one[m] - many[m]) / abs(one[m]) for m in one)
        else:
            worst = max(abs(one[m].objective - many[m].objective) / one[m].objective for m in one)
        lines.append(
            f"- {label}: per-model calls / batched = {rows[single][0] / rows[batched][0]:.2f}x; "
            f"largest relative difference of the scores {worst:.1e}"
        )
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
