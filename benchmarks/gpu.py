"""EMMS on a GPU (torch backend) against the torch floor and the NumPy CPU path.

All GPU measurements in one run (the device is lent for minutes): at N=100,000, D=2,048,
L=1,024, K=3 (float32 inputs from the paper's generative model, as benchmarks/solvers.py):

  torch floor      X^T [X, Z] on the card, inputs already on it (float32 and float64)
  upload           host -> device copy of X and Z (float32), which emms pays per call
  emms torch       emms(..., backend="torch", device="cuda", dtype=...), NumPy inputs in
                   host memory (so upload, input checks on the host, and the float64
                   D x D algebra on the host are included)
  emms numpy       the CPU path on this machine's CPU, same inputs
and, for benchmarks/scaling.py, exact/paper/released and the floor on the GPU over N at
D=512, L=256, K=3. Medians of --runs runs after a warm-up call; agreement with the CPU
path is |f_gpu - f_cpu| / f_cpu. Writes OUT/gpu.md and OUT/gpu.json.

    python benchmarks/gpu.py --out "$OUT"             # the device run
    python benchmarks/gpu.py --n 2000 --d 64 --width 32 --device cpu --out /tmp/g  # a check
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


def timed(function, runs, sync):
    function()  # warm-up (kernels, allocator)
    sync()
    times, value = [], None
    for _ in range(runs):
        start = time.perf_counter()
        value = function()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu-runs", type=int, default=1)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sweep", default="1000,3000,10000,30000,100000")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (older Pythons)
    info = {
        "date": now.isoformat(timespec="minutes"),
        "card": card,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "shape": [args.n, args.d, args.width, args.k],
    }
    print(info, flush=True)
    t0 = time.perf_counter()
    features, labels = make_inputs(args.n, args.d, args.width, args.k)
    print(f"inputs generated in {time.perf_counter() - t0:.1f} s", flush=True)
    flat = labels.reshape(args.n, -1)

    rows = {}
    start = time.perf_counter()
    x32 = torch.as_tensor(features, device=device)
    z32 = torch.as_tensor(flat, device=device)
    sync()
    rows["upload X, Z (float32)"] = (time.perf_counter() - start, None)
    torch.backends.cuda.matmul.allow_tf32 = False
    cat32 = torch.cat([x32, z32], dim=1)
    rows["torch floor X^T [X, Z] float32"] = timed(lambda a=x32, b=cat32: a.T @ b, args.runs, sync)
    del cat32
    x64, cat64 = x32.double(), torch.cat([x32, z32], dim=1).double()
    rows["torch floor X^T [X, Z] float64"] = timed(lambda a=x64, b=cat64: a.T @ b, args.runs, sync)
    del x64, cat64, x32, z32
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    for dtype in ("float32", "float64"):
        rows[f"emms exact torch {dtype}"] = timed(
            lambda dtype=dtype: emms.emms(
                features, labels, backend="torch", device=args.device, dtype=dtype
            ),
            args.runs,
            sync,
        )
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    for solver in ("paper", "released"):
        rows[f"emms {solver} torch float64"] = timed(
            lambda solver=solver: emms.emms(
                features, labels, solver=solver, backend="torch", device=args.device, tol=1e-9
            ),
            1,
            sync,
        )
    cat_host = np.concatenate([features, flat], axis=1)
    rows["numpy floor X^T [X, Z] float32"] = timed(
        lambda a=features, b=cat_host: a.T @ b, args.cpu_runs, lambda: None
    )
    features64, cat_host64 = features.astype(np.float64), cat_host.astype(np.float64)
    rows["numpy floor X^T [X, Z] float64"] = timed(
        lambda a=features64, b=cat_host64: a.T @ b, args.cpu_runs, lambda: None
    )
    del features64, cat_host64, cat_host
    for dtype in ("float32", "float64"):
        rows[f"emms exact numpy {dtype}"] = timed(
            lambda dtype=dtype: emms.emms(features, labels, dtype=dtype),
            args.cpu_runs,
            lambda: None,
        )

    reference = rows["emms exact numpy float64"][1].objective
    table = []
    for name, (seconds, value) in rows.items():
        agreement = ""
        if isinstance(value, emms.EMMSResult):
            agreement = f"{abs(value.objective - reference) / reference:.1e}"
            detail = f"objective {value.objective:.9g}, weights {np.round(value.weights, 4)}"
        else:
            detail = ""
        table.append((name, seconds, agreement, detail))

    # the scaling sweep (D=512, L=256, K=3) for benchmarks/scaling.py
    sweep = []
    for n in [int(v) for v in args.sweep.split(",") if v]:
        f, z = make_inputs(n, 512, 256, 3, seed=1)
        xd = torch.as_tensor(f, device=device)
        catd = torch.cat([xd, torch.as_tensor(z.reshape(n, -1), device=device)], dim=1)
        entry = {"n": n, "floor float32": timed(lambda xd=xd, catd=catd: xd.T @ catd, 3, sync)[0]}
        del xd, catd
        for label, kwargs in (
            ("exact float32", {"dtype": "float32"}),
            ("exact float64", {}),
            ("paper float64", {"solver": "paper", "tol": 1e-9}),
            ("released float64", {"solver": "released"}),
        ):
            entry[label] = timed(
                lambda f=f, z=z, kwargs=kwargs: emms.emms(
                    f, z, backend="torch", device=args.device, **kwargs
                ),
                3,
                sync,
            )[0]
        sweep.append(entry)
        print(entry, flush=True)

    lines = [
        f"GPU run: {card}, torch {info['torch']} (CUDA {info['cuda']}), NumPy {info['numpy']}, "
        f"Python {info['python']}, {info['cpu_count']} CPU cores; {info['date']} UTC.",
        f"Shape N={args.n}, D={args.d}, L={args.width}, K={args.k}, float32 inputs in host "
        f"memory; GPU rows: median of {args.runs} after a warm-up; CPU rows: "
        f"{args.cpu_runs} run(s) after a warm-up. Agreement: relative difference of the "
        "objective from the NumPy float64 path.",
        "",
        "| what | seconds | rel. diff. vs numpy float64 | result |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [f"| {n} | {s:.4f} | {a} | {d} |" for n, s, a, d in table]
    floor32 = rows["torch floor X^T [X, Z] float32"][0]
    floor64 = rows["torch floor X^T [X, Z] float64"][0]
    lines += [
        "",
        f"- emms exact torch float32 / torch floor float32: "
        f"{rows['emms exact torch float32'][0] / floor32:.1f}x",
        f"- emms exact torch float64 / torch floor float64: "
        f"{rows['emms exact torch float64'][0] / floor64:.1f}x",
        f"- emms exact numpy float64 / emms exact torch float64: "
        f"{rows['emms exact numpy float64'][0] / rows['emms exact torch float64'][0]:.1f}x",
        f"- emms exact numpy float32 / emms exact torch float32: "
        f"{rows['emms exact numpy float32'][0] / rows['emms exact torch float32'][0]:.1f}x",
        f"- peak GPU memory allocated by emms exact: {peak / 2**30:.2f} GiB",
        "",
        "Sweep (D=512, L=256, K=3, GPU, seconds, median of 3):",
        "",
        "| N | floor float32 | exact float32 | exact float64 | paper float64 | released float64 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in sweep:
        lines.append(
            f"| {e['n']} | {e['floor float32']:.4f} | {e['exact float32']:.4f} | "
            f"{e['exact float64']:.4f} | {e['paper float64']:.4f} | {e['released float64']:.4f} |"
        )
    report = "\n".join(lines)
    print(report)
    (args.out / "gpu.md").write_text(report + "\n")
    (args.out / "gpu.json").write_text(
        json.dumps(
            {
                "info": info,
                "rows": {n: [s, a] for n, s, a, _ in table},
                "peak_gpu_bytes": peak,
                "sweep": sweep,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
