"""Paper-scale text-QA features on CUDA (bfloat16 autocast) against float32 on the CPU.

Builds the fixture world of ``tests/test_paper_textqa.py`` (SQuAD 1.1/2.0 JSON, three tiny
random-init text encoders), runs the paper-scale runner once on each device and prints,
per model, ``max |cuda - cpu| / max |cpu|`` of the SQuAD 2.0 features.

    PYTHONPATH=. python benchmarks/textqa_cuda_agreement.py      # on a machine with CUDA
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import test_paper_textqa as fixture  # noqa: E402

from emms.cache import load_array  # noqa: E402
from emms.paper.run import run  # noqa: E402


class _Folders:
    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name))


def main() -> None:
    world = fixture.world.__wrapped__(_Folders())
    features = {}
    for device in ("cpu", "cuda"):
        cfg = fixture.config_for(world, Path(tempfile.mkdtemp()))
        cfg = replace(cfg, device=device, selectors=["emms", "logme_flabel"])
        run(cfg)
        features[device] = {m: load_array(cfg.features_path("squad2.0", m)) for m in fixture.MODELS}
    for model in fixture.MODELS:
        (cpu, cpu_meta), (gpu, gpu_meta) = features["cpu"][model], features["cuda"][model]
        relative = np.abs(cpu - gpu).max() / np.abs(cpu).max()
        print(f"{model}: {cpu_meta['device']} vs {gpu_meta['device']} (bfloat16 autocast): "
              f"max |cuda - cpu| / max |cpu| = {relative:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
