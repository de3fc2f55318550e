"""Wall-clock time of every registered selector that scores features.

Times each entry of :data:`emms.selectors.registry.SELECTORS` whose inputs are features + class
labels or features + F-labels (LEEP and NCE take a source head's outputs and are not
timed), on synthetic data of a configurable shape, and prints a Markdown table of the
median over ``--runs`` runs (default 3).

    python benchmarks/selectors_wallclock.py             # N=10000, D=2048, C=100, L=1024, K=3
    python benchmarks/selectors_wallclock.py --quick     # a small shape, seconds
    python benchmarks/selectors_wallclock.py --only emms logme_flabel --n 5000

Not part of the test suite (pytest collects ``tests/`` only).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from emms.selectors.registry import (  # noqa: E402
    FEATURES_LABEL_EMBEDDINGS,
    FEATURES_LABELS,
    SELECTORS,
)

QUICK = {"n": 1000, "d": 128, "classes": 10, "width": 64, "k": 3}
FULL = {"n": 10000, "d": 2048, "classes": 100, "width": 1024, "k": 3}


def synthetic(n, d, classes, width, k, seed=0):
    """float32 features of C overlapping Gaussian classes (centre distance ~5.7, noise std 2
    per dimension), balanced labels, and K F-labels of decreasing quality."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    centres = (rng.normal(size=(classes, d)) * (4.0 / np.sqrt(d))).astype(np.float32)
    features = centres[labels] + 2.0 * rng.normal(size=(n, d)).astype(np.float32)
    codes = rng.normal(size=(classes, width)).astype(np.float32)
    noise = np.geomspace(0.3, 3.0, k) if k > 1 else [1.0]  # K F-labels of unequal quality
    embeddings = np.stack(
        [codes[labels] + s * rng.normal(size=(n, width)).astype(np.float32) for s in noise],
        axis=2,
    )
    return features, labels, embeddings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"small shape {QUICK}")
    parser.add_argument("--n", type=int, help="samples N")
    parser.add_argument("--d", type=int, help="feature dimensions D")
    parser.add_argument("--classes", type=int, help="classes C")
    parser.add_argument("--width", type=int, help="F-label width L")
    parser.add_argument("--k", type=int, help="foundation models K")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per selector")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="time these selectors only")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="skip these")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        help="cap BLAS/OpenMP threads (threadpoolctl); on a shared machine 1 avoids the "
        "spin-waiting of threaded LAPACK",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads):
            return _run(parser, args)
    return _run(parser, args)


def _run(parser, args) -> int:

    shape = dict(QUICK if args.quick else FULL)
    for key in shape:
        if getattr(args, key) is not None:
            shape[key] = getattr(args, key)
    names = [
        name
        for name, spec in SELECTORS.items()
        if spec.needs in (FEATURES_LABELS, FEATURES_LABEL_EMBEDDINGS)
        and (args.only is None or name in args.only)
        and name not in args.skip
    ]
    unknown = set(args.only or []) | set(args.skip)
    unknown -= set(SELECTORS)
    if unknown:
        parser.error(f"unknown selector(s) {sorted(unknown)}; known: {sorted(SELECTORS)}")

    features, labels, embeddings = synthetic(**shape, seed=args.seed)
    machine = platform.processor() or platform.machine()
    print(
        f"N={shape['n']}, D={shape['d']}, C={shape['classes']}, L={shape['width']}, "
        f"K={shape['k']}; median of {args.runs} run(s); {machine}, {os.cpu_count()} CPU(s), "
        f"BLAS threads {args.threads or 'default'}, numpy {np.__version__}\n"
    )
    print("| selector | inputs | median (s) | runs (s) | score |")
    print("| --- | --- | ---: | --- | ---: |")
    for name in names:
        spec = SELECTORS[name]
        second = labels if spec.needs == FEATURES_LABELS else embeddings
        times, score = [], float("nan")
        for _ in range(args.runs):
            start = time.perf_counter()
            score = spec(features, second)
            times.append(time.perf_counter() - start)
        runs = ", ".join(f"{t:.3g}" for t in times)
        inputs = "features, labels" if spec.needs == FEATURES_LABELS else "features, F-labels"
        print(
            f"| {spec.label} | {inputs} | {statistics.median(times):.3g} | {runs} | {score:.4g} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
