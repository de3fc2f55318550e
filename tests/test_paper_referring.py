"""Smoke run of the paper-scale referring path (``python -m emms.paper run --task
referring``).

Fixture in the real format: RefCOCO's ``refcoco/instances.json`` and ``refs(unc).json``
(the refer toolkit's keys; a JSON export of the pickle) with the MS-COCO ``train2014``
JPEGs they name. The four model families of the referring zoo
(``params/paper/referring.yaml``), randomly initialised and tiny, each saved with an image
processor and WordPiece tokenizer files: OWL-ViT, OWLv2, Grounding DINO, CLIP. Truth from
a user table (``--truth``): the task has no published one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_paper_pipeline import DEVICE, write_encoders  # a sibling test module

from emms.cache import load_array
from emms.paper import load_run_config
from emms.paper.config import PaperRunError
from emms.paper.labels import label_texts
from emms.paper.run import run

slow = pytest.mark.slow

MODELS = {  # name: (model_type, auto_class)
    "owlvit": ("owlvit", "OwlViTForObjectDetection"),
    "owlv2": ("owlv2", "Owlv2ForObjectDetection"),
    "gdino": ("grounding-dino", "GroundingDinoForObjectDetection"),
    "clip": ("clip", "AutoModel"),
}
EXPRESSIONS = ["man on the left", "the red car", "Dog near the door", "left guy in a hat"]
N_IMAGES = 4
TEXT_LENGTH = 16


def write_refcoco(root: Path) -> int:
    """Two objects per image, two expressions for the first: 12 training rows."""
    base = root / "refcoco"
    base.mkdir(parents=True)
    images, annotations, refs = [], [], []
    for i in range(N_IMAGES):
        image_id = 9 + i
        name = f"COCO_train2014_{image_id:012d}.jpg"
        width, height = 40 + 4 * i, 30 + 2 * i
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        path = root / "coco" / "train2014" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(i).integers(0, 256, (height, width, 3), np.uint8)
        Image.fromarray(pixels).save(path, "JPEG")
        for k in range(2):
            ann_id = 100 + 2 * i + k
            annotations.append(
                {"id": ann_id, "image_id": image_id, "bbox": [2.0 + 10 * k, 3.0, 12.5, 9.0],
                 "category_id": 1 + k}
            )  # fmt: skip
            sentences = [
                {"sent": EXPRESSIONS[(i + k + j) % len(EXPRESSIONS)], "tokens": [], "sent_id": j}
                for j in range(2 if k == 0 else 1)
            ]
            refs.append(
                {"ref_id": len(refs), "ann_id": ann_id, "image_id": image_id, "split": "train",
                 "category_id": 1 + k, "sentences": sentences}
            )  # fmt: skip
    categories = [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]
    (base / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    (base / "refs(unc).json").write_text(json.dumps(refs))
    return sum(len(r["sentences"]) for r in refs)


def write_models(root: Path) -> None:
    import torch
    from transformers import (
        BertTokenizerFast,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        OwlViTConfig,
        OwlViTForObjectDetection,
        OwlViTImageProcessor,
        SwinConfig,
    )

    from emms.models.flabels import minilm_path

    tower = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32}  # fmt: skip
    vision = {**tower, "image_size": 32, "patch_size": 8}
    # [SEP] closes the text: CLIP-style towers pool at it
    text = {**tower, "vocab_size": 30522, "max_position_embeddings": TEXT_LENGTH,
            "eos_token_id": 102}  # fmt: skip
    square = {"height": 32, "width": 32}
    torch.manual_seed(0)
    dino = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
            window_size=4, out_features=["stage1", "stage2"],
        ),
        text_config={**text, "hidden_size": 32, "max_position_embeddings": 32},
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10,
        num_feature_levels=2, encoder_n_points=2, decoder_n_points=2, max_text_len=32,
        use_timm_backbone=False, use_pretrained_backbone=False,
    )  # fmt: skip
    models = {
        "owlvit": (
            OwlViTForObjectDetection(
                OwlViTConfig(text_config=text, vision_config=vision, projection_dim=16)
            ),
            OwlViTImageProcessor(size=square, crop_size=square),
        ),
        "owlv2": (
            Owlv2ForObjectDetection(
                Owlv2Config(text_config=text, vision_config=vision, projection_dim=16)
            ),
            Owlv2ImageProcessor(size=square),
        ),
        "gdino": (
            GroundingDinoForObjectDetection(dino),
            GroundingDinoImageProcessor(size={"shortest_edge": 48, "longest_edge": 64}),
        ),
        "clip": (
            CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)),
            CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=square),
        ),
    }
    for name, (model, processor) in models.items():
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
        BertTokenizerFast.from_pretrained(minilm_path()).save_pretrained(root / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_referring")
    n = write_refcoco(root / "data")
    write_models(root / "weights")
    encoders = write_encoders(root / "encoders")
    rows = [
        {"dataset": "refcoco", "model": m, "seed": s, "acc_at_0.5": acc + s}
        for m, acc in zip(MODELS, (61.0, 66.0, 72.0, 30.0), strict=True)
        for s in (0, 1)
    ]
    truth = root / "truth.csv"
    pd.DataFrame(rows).to_csv(truth, index=False)
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
            "encoders": list(encoders),
            "encoder_dirs": encoders,
            "batch_size": 5,  # batches of 5, 5, 2: padded texts, mixed image sizes
            "n_boot": 50,
        },
    }
    path = root / "referring.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"root": root, "config": path, "truth": truth, "n": n}


def config_for(world, tmp: Path, **kwargs):
    return load_run_config(
        "referring",
        world["config"],
        world["root"] / "data",
        kwargs.pop("weights", world["root"] / "weights"),
        out=tmp / "reports",
        cache=tmp / "cache",
        device=DEVICE,
        truth=world["truth"],
        progress=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory):
    cfg = config_for(world, tmp_path_factory.mktemp("run"))
    return cfg, run(cfg)


def _one_expression(name: str, folder: Path, image, expression: str) -> np.ndarray:
    """The features of one (image, expression), unbatched, from the model's own outputs
    and the definition (softmax over candidates of their match, weighted mean)."""
    import torch
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    model_type, auto_class = MODELS[name]
    model = getattr(transformers, auto_class).from_pretrained(folder).eval()
    images = AutoImageProcessor.from_pretrained(folder)(images=[image], return_tensors="pt")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        if model_type in ("owlvit", "owlv2"):
            text = tokenizer([expression], padding="max_length", max_length=TEXT_LENGTH,
                             return_tensors="pt")  # fmt: skip
            text.pop("token_type_ids")
            out = model(**text, pixel_values=images["pixel_values"])
            features, scores = out.image_embeds.flatten(1, 2)[0], out.logits[0, :, 0]
        elif model_type == "grounding-dino":
            text = tokenizer([expression.lower() + "."], return_tensors="pt")
            out = model(**text, **images)
            features, scores = out.last_hidden_state[0], out.logits[0].max(-1).values
        else:
            text = tokenizer([expression], return_tensors="pt")
            text.pop("token_type_ids")
            vision = model.vision_model(pixel_values=images["pixel_values"]).last_hidden_state
            patches = model.visual_projection(model.vision_model.post_layernorm(vision[0, 1:]))
            patches = patches / patches.norm(dim=-1, keepdim=True)
            query = model.get_text_features(**text).pooler_output[0]
            features = patches
            scores = model.logit_scale.exp() * patches @ (query / query.norm())
    weights = np.exp(scores.numpy() - scores.numpy().max())
    return (weights / weights.sum()) @ features.numpy()


@slow
def test_features_are_the_expression_weighted_candidates(first_run, world):
    from emms.datasets.paper import read_paper_dataset

    cfg, _ = first_run
    record = read_paper_dataset("refcoco", world["root"] / "data")
    assert len(record) == world["n"]
    widths = {"owlvit": 16, "owlv2": 16, "gdino": 32, "clip": 8}
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if DEVICE == "cpu" else {"rtol": 0.05, "atol": 0.05}
    for name in MODELS:
        features, meta = load_array(cfg.features_path("refcoco", name))
        assert features.shape == (world["n"], widths[name]), name
        assert meta["candidates"] == ("queries" if name == "gdino" else "patches")
        folder = world["root"] / "weights" / name
        for i in range(world["n"]):
            expected = _one_expression(name, folder, record.load_image(i), record.expressions[i])
            np.testing.assert_allclose(features[i], expected, **tolerance, err_msg=name)


def test_the_weighted_mean_is_the_best_candidate_when_one_dominates():
    import torch

    from emms.paper.referring_extract import weighted_mean

    features = torch.randn(3, 5, 4)
    scores = torch.zeros(3, 5)
    scores[torch.arange(3), torch.tensor([4, 0, 2])] = 80.0  # softmax weight 1 - 4e-35
    best = features[torch.arange(3), torch.tensor([4, 0, 2])]
    torch.testing.assert_close(weighted_mean(features, scores), best)
    even = weighted_mean(features, torch.full((3, 5), 7.0))
    torch.testing.assert_close(even, features.mean(1))


@slow
def test_flabels_embed_the_box_in_the_papers_format(first_run, world):
    from emms.datasets.paper import read_paper_dataset

    cfg, _ = first_run
    record = read_paper_dataset("refcoco", world["root"] / "data")
    texts = label_texts(record, np.arange(world["n"]), cfg)
    # image 9 is 40 x 30; its first object's COCO box [2, 3, 12.5, 9] -> [2, 3, 14.5, 12]
    assert texts[0] == "[0.050, 0.100, 0.362, 0.400]"


@slow
def test_report_ranks_the_zoo_and_a_second_run_recomputes_nothing(first_run):
    cfg, result = first_run
    assert set(result.scores["model"]) == set(MODELS)
    assert (result.tau["n_models"] == len(MODELS)).all()
    assert np.isfinite(result.scores[result.scores["selector"] == "emms"]["score"]).all()
    assert run(cfg).computed == []


@slow
def test_a_model_without_a_referring_rule_is_refused_before_writing(world, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    (weights / "clip" / "config.json").write_text('{"model_type": "vilt"}')
    with pytest.raises(PaperRunError, match="'clip' is a 'vilt' model; referring features"):
        run(config_for(world, tmp_path, weights=weights))
    assert not (tmp_path / "cache").exists()


def test_grounding_dino_batches_hold_one_image_size():
    from types import SimpleNamespace

    from emms.paper.referring_extract import batches

    record = SimpleNamespace(image_sizes=np.array([[4, 3]] * 3 + [[5, 3]] * 2 + [[4, 3]] * 4))
    rows = np.arange(9)
    assert list(batches(record, rows, 3, one_image_size=False)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert list(batches(record, rows, 3, one_image_size=True)) == [
        [0, 1, 2], [3, 4], [5, 6, 7], [8]
    ]  # fmt: skip
