"""Out-of-core EMMS: emms.emms_streaming over memory-mapped .npy files larger than RAM.

Writes features (N, D) and F-labels (N, L, K), float32, from the paper's generative model
(as benchmarks/solvers.py, one latent block at a time, never the whole array in memory),
then measures, each in its own subprocess (so that its peak RSS is its own):

  read-only pass   every row block of both files copied into memory once (the I/O floor)
  emms_streaming   the exact solver over the same files, same block size

and reports time, peak RSS (VmHWM) and the ratio of the two. The files are deleted
afterwards unless --keep. With N beyond the page cache the passes read from disk.

    python benchmarks/out_of_core.py --n 1000000    # ~20 GB of files
    python benchmarks/out_of_core.py --n 20000 --d 256 --width 128   # a check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_inputs(directory: Path, n, d, width, k, chunk=8192, seed=0):
    rng = np.random.default_rng(seed)
    to_features = rng.standard_normal((256, d), dtype=np.float32)
    to_signal = rng.standard_normal((256, width), dtype=np.float32)
    noise = np.linspace(0.5, 2.0, k, dtype=np.float32)
    x = np.lib.format.open_memmap(directory / "features.npy", "w+", np.float32, (n, d))
    z = np.lib.format.open_memmap(directory / "labels.npy", "w+", np.float32, (n, width, k))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        latent = rng.standard_normal((stop - start, 256), dtype=np.float32)
        x[start:stop] = latent @ to_features + rng.standard_normal((stop - start, d), np.float32)
        signal = latent @ to_signal
        for i in range(k):
            z[start:stop, :, i] = signal + noise[i] * rng.standard_normal(
                (stop - start, width), dtype=np.float32
            )
    x.flush()
    z.flush()
    del x, z


def phase(kind, directory, block_rows):
    import emms
    from emms.selectors.streaming import _release

    start = time.perf_counter()
    if kind == "read":
        x = np.load(directory / "features.npy", mmap_mode="r")
        z = np.load(directory / "labels.npy", mmap_mode="r")
        total = 0.0
        for row in range(0, x.shape[0], block_rows):
            stop = min(row + block_rows, x.shape[0])
            xb, zb = np.array(x[row:stop]), np.array(z[row:stop])
            total += float(xb[0, 0]) + float(zb[0, 0, 0])
            _release(x, row, stop)
            _release(z, row, stop)
        result = {"checksum": total}
    else:
        r = emms.emms_streaming(
            directory / "features.npy", directory / "labels.npy", block_rows=block_rows
        )
        result = {"objective": r.objective, "weights": r.weights.round(4).tolist()}
    result["seconds"] = time.perf_counter() - start
    # VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's over fork+exec)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    result["peak_rss_bytes"] = peak * 1024
    print(json.dumps(result))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--block-rows", type=int, default=4096)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/emms_out_of_core"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--phase", choices=["read", "score"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/out_of_core.md"))
    args = parser.parse_args(argv)
    if args.phase:
        return phase(args.phase, args.dir, args.block_rows)

    args.dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]  # other jobs on the machine, said in the results
    try:
        start = time.perf_counter()
        write_inputs(args.dir, args.n, args.d, args.width, args.k)
        written = time.perf_counter() - start
        size = sum(f.stat().st_size for f in args.dir.glob("*.npy"))
        print(f"wrote {size / 1e9:.1f} GB in {written:.0f} s", flush=True)
        results = {}
        for kind in ("read", "score", "read"):
            output = subprocess.run(
                [sys.executable, __file__, "--phase", kind, "--dir", str(args.dir),
                 "--block-rows", str(args.block_rows)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            results.setdefault(kind, []).append(json.loads(output.strip().splitlines()[-1]))
            print(kind, results[kind][-1], flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)

    read = min(results["read"], key=lambda r: r["seconds"])
    score = results["score"][0]
    lines = [
        f"N={args.n}, D={args.d}, L={args.width}, K={args.k}, float32 .npy files of "
        f"{size / 1e9:.1f} GB (written by a streaming generator in {written:.0f} s), block "
        f"rows {args.block_rows}; machine {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"load average (1 min) {load_before:.2f} before and {os.getloadavg()[0]:.2f} after; "
        f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='minutes')} UTC.",
        "",
        "| pass | seconds | peak RSS (MiB) | result |",
        "| --- | ---: | ---: | --- |",
    ]
    for kind, label in (("read", "read-only pass (I/O floor)"), ("score", "emms_streaming")):
        for r in results[kind]:
            detail = (
                f"objective {r['objective']:.9g}, weights {r['weights']}"
                if "objective" in r
                else ""
            )
            lines.append(
                f"| {label} | {r['seconds']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} | {detail} |"
            )
    lines += [
        "",
        f"- emms_streaming / fastest read-only pass: {score['seconds'] / read['seconds']:.1f}x",
        f"- peak RSS of emms_streaming: {score['peak_rss_bytes'] / 2**20:.0f} MiB for "
        f"{size / 2**20:.0f} MiB of input files",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
