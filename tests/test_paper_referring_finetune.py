"""Paper-scale referring ground truth (``python -m emms.paper finetune --task referring``).

On the RefCOCO fixture and the tiny random zoo of ``test_paper_referring`` (OWL-ViT,
OWLv2, Grounding DINO, CLIP): IoU and GIoU equal brute-force computations on a pixel
grid, each model's image frame puts a box where its own image processor puts the pixels,
the matched candidate is the brute-force least cost, fine-tuning writes the table ``run
--truth`` reads, is seeded and resumes, and bad configs are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from test_paper_pipeline import DEVICE
from test_paper_referring import MODELS, write_models, write_refcoco

from emms.paper import load_run_config
from emms.paper.__main__ import main
from emms.paper.config import PaperRunError
from emms.paper.referring_finetune import (
    ReferringRecipe,
    box_iou,
    generalized_iou,
    image_frame,
    load_recipe,
    match_candidate,
)
from emms.tasks import get_task

slow = pytest.mark.slow

RECIPE = {
    "lr": 1.0e-3,
    "head_lr": 1.0e-2,
    "epochs": 30,
    "batch_size": 4,
    "max_grad_norm": 1.0,
    "seeds": [0, 1],
    "eval_split": {"refcoco": "train"},  # the fixture's refs are all in train
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_referring_finetune")
    write_refcoco(root / "data")
    write_models(root / "weights")
    config = {
        "task": "referring",
        "models": [
            {
                "name": n,
                "source": "transformers",
                "identifier": f"tiny/{n}",
                "model_type": t,
                "auto_class": a,
            }
            for n, (t, a) in MODELS.items()
        ],  # fmt: skip
        "run": {
            "datasets": ["refcoco"],
            "batch_size": 4,
            "max_length": 16,
            "precision": "float32" if DEVICE == "cpu" else "bfloat16",
        },  # fmt: skip
        "finetune": RECIPE,
    }
    path = root / "referring.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"root": root, "config": path, "raw": config}


def config_for(world, **kwargs):
    return load_run_config(
        "referring",
        kwargs.pop("config", world["config"]),
        world["root"] / "data",
        world["root"] / "weights",
        cache=kwargs.pop("cache", world["root"] / "cache"),
        device=DEVICE,
        progress=False,
        **kwargs,
    )


def _raster(box, n=200, extent=10.0):
    """The pixels of a fine grid over [0, extent)^2 whose centres lie inside ``box``."""
    centres = (np.arange(n) + 0.5) * extent / n
    xs, ys = np.meshgrid(centres, centres)
    x1, y1, x2, y2 = box
    return (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)


def test_iou_and_giou_equal_brute_force_on_a_pixel_grid():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0.5, 9.5, (40, 2, 2)), axis=1)  # (box, x|y sorted, ...)
    boxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
    a, b = boxes[:20], boxes[20:]
    iou = box_iou(a, b)
    as_cxcywh = lambda x: torch.tensor(  # noqa: E731
        np.stack([(x[:, 0] + x[:, 2]) / 2, (x[:, 1] + x[:, 3]) / 2, x[:, 2] - x[:, 0],
                  x[:, 3] - x[:, 1]], 1)
    )  # fmt: skip
    giou = generalized_iou(as_cxcywh(a), as_cxcywh(b)).numpy()
    for k in range(20):
        ra, rb = _raster(a[k]), _raster(b[k])
        union = (ra | rb).sum()
        assert iou[k] == pytest.approx((ra & rb).sum() / union, abs=0.02)
        hull = (min(a[k, 0], b[k, 0]), min(a[k, 1], b[k, 1]),
                max(a[k, 2], b[k, 2]), max(a[k, 3], b[k, 3]))  # fmt: skip
        hull_area = _raster(hull).sum()
        expected = (ra & rb).sum() / union - (hull_area - union) / hull_area
        assert giou[k] == pytest.approx(expected, abs=0.02)
    assert box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]])[0] == pytest.approx(1 / 3)
    assert box_iou([[0, 0, 1, 1]], [[2, 2, 3, 3]])[0] == 0.0
    same = as_cxcywh(a[:3])
    assert torch.allclose(generalized_iou(same, same), torch.ones(3, dtype=same.dtype), atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_each_image_frame_puts_a_box_where_the_processor_puts_its_pixels(world, name):
    """A white rectangle on black through the model's own image processor: the bright
    pixels of its output span the rectangle's box in the frame (within a pixel and a
    half of resampling blur)."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(world["root"] / "weights" / name)
    width, height = 44, 34
    box = (9, 5, 30, 22)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = 255
    out = processor(images=[Image.fromarray(pixels)], return_tensors="pt")["pixel_values"][0]
    frame = image_frame(MODELS[name][0], processor.to_dict(), width, height)
    if "pixel_mask" in processor(images=[Image.fromarray(pixels)], return_tensors="pt"):
        mask = processor(images=[Image.fromarray(pixels)], return_tensors="pt")["pixel_mask"][0]
        out = out[:, : int(mask[:, 0].sum()), : int(mask[0].sum())]  # the unpadded image
    bright = out.mean(0).numpy() > (out.mean(0).max().item() + out.mean(0).min().item()) / 2
    rows, cols = np.flatnonzero(bright.any(1)), np.flatnonzero(bright.any(0))
    h, w = bright.shape
    cx, cy, bw, bh = frame.to_model(box)
    expected = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * [w, h, w, h]
    found = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    np.testing.assert_allclose(found, expected, atol=1.5, err_msg=name)
    np.testing.assert_allclose(frame.to_pixels(frame.to_model(box)), box, atol=1e-9)


def test_the_matched_candidate_is_the_least_cost():
    rng = np.random.default_rng(1)
    scores = torch.tensor(rng.normal(size=(3, 7)), dtype=torch.float32)
    boxes = torch.tensor(rng.uniform(0.2, 0.6, (3, 7, 4)), dtype=torch.float32)
    target = torch.tensor(rng.uniform(0.2, 0.6, (3, 4)), dtype=torch.float32)
    recipe = ReferringRecipe()
    chosen = match_candidate(scores, boxes, target, recipe)
    p = torch.softmax(scores, 1).numpy()
    for r in range(3):
        costs = [
            -p[r, c]
            + 5 * np.abs(boxes[r, c].numpy() - target[r].numpy()).sum()
            + 2 * (1 - float(generalized_iou(boxes[r, c], target[r])))
            for c in range(7)
        ]
        assert int(chosen[r]) == int(np.argmin(costs))


@pytest.fixture(scope="module")
def truth(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("truth") / "referring_truth.csv"
    args = ["finetune", "--task", "referring", "--config", str(world["config"]),
            "--data", str(world["root"] / "data"), "--weights", str(world["root"] / "weights"),
            "--out", str(out), "--cache", str(world["root"] / "cache"),
            "--device", DEVICE, "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return out, args


@slow
def test_finetuning_writes_the_table_run_reads(truth, world):
    from emms.paper.score import load_truth

    table = pd.read_csv(truth[0])
    assert tuple(table.columns) == get_task("referring").truth_columns
    assert len(table) == len(MODELS) * len(RECIPE["seeds"])
    assert table["acc_at_0.5"].between(0, 1).all()
    # learning, on the training expressions: CLIP's new box head and Grounding DINO fit
    # some of them (measured 0.50-0.67 best seed; an untrained model places ~0). The
    # tiny random OWL models' box MLPs saturate their sigmoid (outputs of 1e-10 and 1.0
    # at initialisation), so their boxes cannot move: no claim about them here.
    best = table.groupby("model")["acc_at_0.5"].max()
    assert best["clip"] >= 0.4 and best["gdino"] >= 0.4, table
    read, source = load_truth(config_for(world, truth=truth[0]))
    assert "(acc_at_0.5, mean over seeds)" in source
    mean = table.groupby("model")["acc_at_0.5"].mean()
    assert dict(zip(read["model"], read["truth"], strict=True)) == pytest.approx(mean.to_dict())


@slow
def test_finished_fine_tunes_are_read_back_and_a_seed_repeats(truth, world, tmp_path, monkeypatch):
    from emms.paper import referring_finetune

    out, args = truth
    first = pd.read_csv(out)
    single = {**world["raw"], "models": world["raw"]["models"][2:],
              "finetune": {**RECIPE, "seeds": [1]}}  # fmt: skip
    path = tmp_path / "seed1.yaml"
    path.write_text(yaml.safe_dump(single))
    again = referring_finetune.run_finetuning(
        config_for(world, config=path, cache=tmp_path / "c"), tmp_path / "t.csv"
    )
    before = first.set_index(["model", "seed"])["acc_at_0.5"]
    assert again["acc_at_0.5"].between(0, 1).all() and len(again) == 2
    # On CUDA a seed does not repeat exactly: Grounding DINO's deformable attention
    # (grid_sample's backward) and the fused attention kernels have no deterministic
    # implementation (torch warns; measured on an H200: 0.167 vs 0.333 for one row).
    # On the CPU every kernel is deterministic and the rerun is the same number.
    if DEVICE == "cpu":
        for _, row in again.iterrows():
            expected = before[(row["model"], 1)]
            assert row["acc_at_0.5"] == pytest.approx(expected, abs=1e-6)  # CSV: 6 decimals

    monkeypatch.setattr(
        referring_finetune, "finetune_referring_model", lambda *a, **k: pytest.fail("retrained")
    )
    assert main(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), first)


def test_bad_recipes_are_named(world, tmp_path):
    def config_with(**finetune):
        raw = {**world["raw"], "finetune": {**RECIPE, **finetune}}
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_recipe(config_for(world, config=path))

    with pytest.raises(PaperRunError, match=r"finetune\.lr_head: Extra inputs"):
        config_with(lr_head=1e-3)
    with pytest.raises(PaperRunError, match=r"no evaluation split for \['refcoco'\]"):
        config_with(eval_split={"refcocog": "val"})


def test_the_shipped_recipe_is_the_documented_default():
    shipped = yaml.safe_load(open("params/paper/referring.yaml"))["finetune"]
    assert ReferringRecipe.model_validate(shipped) == ReferringRecipe()
