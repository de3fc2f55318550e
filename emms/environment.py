"""What machine computed a result: CPU, instruction set, kernels, BLAS and threads.

Training rounds differently on another instruction set (oneDNN/MKL/ATen pick kernels per
CPU), so every report and metrics file records where it was made. Nothing here names a
path of the machine: library versions and kernel names only.
"""

from __future__ import annotations

import os
import platform

__all__ = ["machine_info", "ISA_SWITCHES"]

#: The switches that make this CPU behave like an older one (README, "Reproducibility").
ISA_SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "amx", "sse4", "fma")))
    except OSError:
        pass
    return []


def machine_info() -> dict:
    """A JSON-ready description of the machine and numerical stack of this process."""
    import numpy as np
    import threadpoolctl
    import torch

    # sorted: threadpoolctl lists the libraries in the order they were loaded, which
    # changes with the import order of a run (numpy's or scipy's OpenBLAS first)
    blas = sorted(
        f"{pool['internal_api']} {pool.get('version') or ''} ({pool.get('architecture') or '-'},"
        f" {pool['num_threads']} threads)".replace("  ", " ")
        for pool in threadpoolctl.threadpool_info()
        if pool["user_api"] == "blas"
    )
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "isa_flags": " ".join(_cpu_flags()),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "isa_switches": {name: os.environ.get(name) for name in ISA_SWITCHES},
        "torch_threads": torch.get_num_threads(),
        "blas": "; ".join(blas),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
