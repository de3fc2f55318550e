"""Time budget and signal-to-noise of the embedded image zoo (README, "Embedded benchmark").

Runs the whole image side of the embedded benchmark on 2 CPU threads: materialise the raw
digits, pre-train every model of params.yaml's recognition.zoo, extract features (and
source probabilities) on every target, and fine-tune every model on every target with 2
seeds. Prints the time of each stage and, per target, each model's accuracy mean/std over
the seeds, the spread of the means across the zoo (max - min, and their std) and the mean
seed std, with ratios.

The embedded ground truth is only meaningful when the zoo spread dwarfs the seed noise:
the script exits with status 1 when max-min < 3 x mean seed std on any target, or when the
whole run exceeds --budget seconds.

    .venv/bin/python benchmarks/zoo_budget.py [--seeds 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emms.datasets.digits import (  # noqa: E402
    IMAGE_SIZE,
    TARGETS,
    load_raw,
    load_source,
    load_target,
    materialize_raw,
)
from emms.models.features import extract_features  # noqa: E402
from emms.models.finetune import finetune  # noqa: E402
from emms.models.zoo import pretrain, recipes_from_config, source_probabilities  # noqa: E402
from emms.params import load_params  # noqa: E402

_PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml").task("recognition")
FINETUNE_RECIPE = _PARAMS.finetune.model_dump(exclude={"seeds"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=360.0, help="seconds allowed")
    parser.add_argument("--min-ratio", type=float, default=3.0)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--zoo", type=Path, help="JSON list of recipes (default: params.yaml)")
    parser.add_argument("--json", type=Path, help="write all numbers here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    zoo = json.loads(args.zoo.read_text()) if args.zoo else _PARAMS.zoo.models
    recipes = recipes_from_config(zoo)
    progress = not args.no_progress
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        materialize_raw(tmp)
        raw = load_raw(tmp)
    image_size = args.image_size
    source = load_source(raw, image_size=image_size)
    targets = {name: load_target(name, raw, seed=0, image_size=image_size) for name in TARGETS}
    timings["data"] = time.perf_counter() - t0

    models, pretrain_s = {}, {}
    for recipe in recipes:
        t0 = time.perf_counter()
        models[recipe.name] = pretrain(recipe, source, progress=progress)
        pretrain_s[recipe.name] = time.perf_counter() - t0
    timings["pretrain"] = sum(pretrain_s.values())

    t0 = time.perf_counter()
    dims = {}
    for name, model in models.items():
        for target in targets.values():
            feats = extract_features(model, target.train_images)
            probs = source_probabilities(model, target.train_images)
            assert feats.dtype == np.float32 and np.isfinite(feats).all()
            assert np.allclose(probs.sum(1), 1.0, atol=1e-4)
            dims[name] = feats.shape[1]
    timings["features"] = time.perf_counter() - t0

    acc: dict[str, dict[str, list[float]]] = {t: {} for t in targets}
    finetune_s: dict[str, float] = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        for tname, target in targets.items():
            acc[tname][name] = [
                finetune(model, target, seed=seed, **FINETUNE_RECIPE) for seed in args.seeds
            ]
        finetune_s[name] = time.perf_counter() - t0
        if progress:
            print(
                f"  fine-tuned {name} in {finetune_s[name]:.1f}s: "
                + ", ".join(f"{t}={np.mean(a[name]):.3f}" for t, a in acc.items()),
                file=sys.stderr,
                flush=True,
            )
    timings["finetune"] = sum(finetune_s.values())
    timings["total"] = time.perf_counter() - t_all

    print(f"\nimage size {image_size}, fine-tune recipe {FINETUNE_RECIPE}, seeds {args.seeds}")
    print("\nper model: pre-train s, fine-tune s (all targets x seeds), feature dim")
    for r in recipes:
        print(
            f"  {r.name:22s} {r.arch:13s} pretrain {pretrain_s[r.name]:6.1f}s  "
            f"finetune {finetune_s[r.name]:6.1f}s  D={dims[r.name]}"
        )
    print("\ntimings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))

    ok = timings["total"] <= args.budget
    summary = {}
    for tname, per_model in acc.items():
        means = np.array([np.mean(v) for v in per_model.values()])
        seed_stds = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in per_model.values()])
        spread = float(means.max() - means.min())
        std_means = float(means.std(ddof=1))
        noise = float(seed_stds.mean())
        ratio = spread / noise if noise > 0 else float("inf")
        ratio_std = std_means / noise if noise > 0 else float("inf")
        ok &= ratio >= args.min_ratio
        summary[tname] = dict(
            spread=spread,
            std_of_means=std_means,
            mean_seed_std=noise,
            ratio=ratio,
            ratio_std=ratio_std,
        )
        print(
            f"\n{tname} (n_train={len(targets[tname].train_labels)}, "
            f"n_test={len(targets[tname].test_labels)})"
        )
        for (name, values), m, s in zip(per_model.items(), means, seed_stds, strict=True):
            print(f"  {name:22s} {m:.4f} +- {s:.4f}   seeds {' '.join(f'{v:.4f}' for v in values)}")
        print(
            f"  spread max-min {spread:.4f}, std of means {std_means:.4f}, mean seed std "
            f"{noise:.4f} -> ratio {ratio:.1f} (std-of-means ratio {ratio_std:.1f})"
        )
    print(f"\n{'PASS' if ok else 'FAIL'}: total {timings['total']:.1f}s (budget {args.budget}s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                dict(
                    timings=timings,
                    pretrain_s=pretrain_s,
                    finetune_s=finetune_s,
                    accuracy=acc,
                    summary=summary,
                    finetune_recipe=FINETUNE_RECIPE,
                    zoo=zoo,
                    image_size=image_size,
                ),
                indent=2,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
