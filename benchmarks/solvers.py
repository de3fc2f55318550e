"""Wall-clock of the EMMS solvers against LogME (F-label) and a BLAS floor.

Every ratio is measured in the same run, on the same inputs, as a ratio of medians over
``--runs`` repetitions; nothing here is a timed test. Default shape (issue 2): N=10,000
samples, D=2,048 feature dimensions, L=1,024 label-embedding width, K=3 foundation
models, float32 inputs.

    python benchmarks/solvers.py            # the full shape, a few minutes on 2 cores
    python benchmarks/solvers.py --quick    # a small shape, seconds

Rows:
  exact              emms(solver="exact", dtype="float32"): float32 products, float64 Gram
                     and one refinement step (scores within ~1e-7 of float64)
  exact, float64     emms(solver="exact"), the default: float64 work on float32 inputs
  paper              emms(solver="paper") at --tol; its objective must match exact to 1e-6
  released           emms(solver="released"), the authors' single pass
  LogME (F-label)    emms.logme_flabel: one eigendecomposition, all L*K targets batched
  LogME, per target  the same maths one target at a time (the reference code's loop:
                     a projection U^T y and a fixed point per column)
  floor              one product X^T [X, Z] in the input dtype, the least any exact
                     method must compute; "floor, float64" the same product in float64
Agreement of float32 with float64 work is reported on these inputs and on ill-conditioned
ones (column scales 1e-3..1e3, ReLU offset, near-collinear column pairs, as
tests/test_scale.py) at the same shape.
Peak memory of exact is traced with tracemalloc (NumPy reports its buffers to it) and
compared with the bytes of its inputs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

import emms
from emms.selectors.logme import fixed_point, spectrum
from emms.selectors.preprocessing import standardize


def make_inputs(n, d, width, k, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 256), dtype=np.float32)
    features = latent @ rng.standard_normal((256, d), dtype=np.float32)
    features += rng.standard_normal((n, d), dtype=np.float32)
    signal = latent @ rng.standard_normal((256, width), dtype=np.float32)
    labels = np.empty((n, width, k), dtype=np.float32)
    for i, noise in enumerate(np.linspace(0.5, 2.0, k)):
        labels[:, :, i] = signal + noise * rng.standard_normal((n, width), dtype=np.float32)
    return features, labels


def ill_conditioned_inputs(n, d, width, k, seed=0):
    """Features like real CNN features (tests/test_scale.py's generator, at scale)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 64), dtype=np.float32)
    x = latent @ rng.standard_normal((64, d), dtype=np.float32)
    x += 0.05 * rng.standard_normal((n, d), dtype=np.float32)
    x[:, 1::4] = x[:, 0::4] + 1e-3 * rng.standard_normal((n, d // 4), dtype=np.float32)
    x = np.maximum(x, 0) + 0.5
    x *= (10.0 ** rng.uniform(-3, 3, d)).astype(np.float32)
    signal = latent @ rng.standard_normal((64, width), dtype=np.float32)
    labels = np.empty((n, width, k), dtype=np.float32)
    for i, noise in enumerate(np.linspace(0.1, 1.0, k)):
        labels[:, :, i] = signal + noise * rng.standard_normal((n, width), dtype=np.float32)
    return x, labels


def logme_per_target(features, label_embeddings):
    """LogME (F-label) run one target column at a time, as the reference code loops."""
    f = features.astype(np.float64)
    sigma, project = spectrum(f)
    blocks = [
        standardize(label_embeddings[:, :, k].astype(np.float64))
        for k in range(label_embeddings.shape[2])
    ]
    evidences = []
    for block in blocks:
        for column in block.T:
            y = column[:, None]
            evidences.append(fixed_point(sigma, project(y), (y * y).sum(axis=0), f.shape)[0])
    return float(np.mean(evidences))


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
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-9, help="paper solver tolerance")
    parser.add_argument("--quick", action="store_true", help="N=2000, D=256, L=128")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/solvers.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.d, args.width = 2000, 256, 128

    features, labels = make_inputs(args.n, args.d, args.width, args.k)
    input_bytes = features.nbytes + labels.nbytes
    concatenated = np.concatenate([features, labels.reshape(args.n, -1)], axis=1)

    rows = {}
    rows["floor: X^T [X, Z]"] = median_time(lambda: features.T @ concatenated, args.runs)
    features64, concatenated64 = features.astype(np.float64), concatenated.astype(np.float64)
    rows["floor, float64"] = median_time(lambda a=features64, b=concatenated64: a.T @ b, args.runs)
    del features64, concatenated64
    f32 = {"dtype": "float32"}
    rows["exact"] = median_time(lambda: emms.emms(features, labels, **f32), args.runs)
    rows["exact, float64 work (the default)"] = median_time(
        lambda: emms.emms(features, labels), args.runs
    )
    rows["paper"] = median_time(
        lambda: emms.emms(features, labels, solver="paper", tol=args.tol, max_iter=10_000, **f32),
        args.runs,
    )
    rows["released"] = median_time(
        lambda: emms.emms(features, labels, solver="released", **f32), args.runs
    )
    rows["LogME (F-label), batched"] = median_time(
        lambda: emms.logme_flabel(features, labels), args.runs
    )
    rows["LogME (F-label), per target"] = median_time(
        lambda: logme_per_target(features, labels), args.runs
    )

    tracemalloc.start()
    emms.emms(features, labels, **f32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    exact_time, exact = rows["exact"]
    exact64 = rows["exact, float64 work (the default)"][1]
    agreement = abs(exact.objective - exact64.objective) / exact64.objective
    ill_x, ill_z = ill_conditioned_inputs(args.n, args.d, args.width, args.k)
    ill32, ill64 = emms.emms(ill_x, ill_z, dtype="float32"), emms.emms(ill_x, ill_z)
    ill_agreement = abs(ill32.objective - ill64.objective) / ill64.objective
    del ill_x, ill_z
    paper = rows["paper"][1]
    released = rows["released"][1]
    relative_gap = abs(paper.objective - exact.objective) / exact.objective
    lines = [
        f"Shape N={args.n}, D={args.d}, L={args.width}, K={args.k}, float32 inputs; "
        f"median of {args.runs} runs.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}; "
        f"{datetime.date.today().isoformat()}; load average (1 min) at the end "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores.",
        "",
        "| method | median s | time / exact | result |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, (seconds, value) in rows.items():
        if isinstance(value, emms.EMMSResult):
            detail = (
                f"objective {value.objective:.6g}, weights {np.round(value.weights, 3)}, "
                f"{value.n_iter} iter"
            )
        elif isinstance(value, float):
            detail = f"score {value:.6g}"
        else:
            detail = ""
        lines.append(f"| {name} | {seconds:.3f} | {seconds / exact_time:.2f} | {detail} |")
    lines += [
        "",
        f"- paper vs exact: objective gap {relative_gap:.1e} (relative), "
        f"speed-up {rows['paper'][0] / exact_time:.1f}x",
        f"- released vs exact: objective {released.objective:.6g} vs {exact.objective:.6g} "
        f"({'no better' if released.objective >= exact.objective else 'BETTER'} than exact), "
        f"speed-up {rows['released'][0] / exact_time:.2f}x",
        "- LogME (F-label) / exact: "
        f"batched {rows['LogME (F-label), batched'][0] / exact_time:.1f}x, "
        f"per target {rows['LogME (F-label), per target'][0] / exact_time:.1f}x",
        f"- exact (float32) / floor (float32): {exact_time / rows['floor: X^T [X, Z]'][0]:.2f}x",
        "- exact, float64 work / floor, float64: "
        f"{rows['exact, float64 work (the default)'][0] / rows['floor, float64'][0]:.2f}x",
        f"- float32 vs float64 objective (relative): {agreement:.1e} on these inputs, "
        f"{ill_agreement:.1e} on ill-conditioned features of the same shape "
        f"(objective {ill64.objective:.6g}; weights float32 {np.round(ill32.weights, 4)}, "
        f"float64 {np.round(ill64.weights, 4)})",
        f"- peak traced memory of exact: {peak / 2**20:.0f} MiB = {peak / input_bytes:.2f}x "
        f"its inputs ({input_bytes / 2**20:.0f} MiB)",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
