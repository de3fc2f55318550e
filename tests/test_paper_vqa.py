"""Smoke run of the paper-scale VQA path (``python -m emms.paper run --task vqa``).

Fixture in the real format: COCO-QA's ``cocoqa/train/{img_ids,questions,answers,types}.txt``
with the MS-COCO ``train2014`` JPEGs it names. The four kinds of model of the VQA zoo
(``params/paper/vqa.yaml``), randomly initialised and tiny, each saved with an image
processor and (WordPiece) tokenizer files: ViLT and BLIP (fused), CLIP and SigLIP (dual
encoders). Truth from a user table (``--truth``): the task has no published one.
"""

from __future__ import annotations

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

N = 10
WIDTH = 8
QUESTIONS = [
    ("what is the color of the bus", "red", 2),
    ("how many cats are there", "two", 1),
    ("what is on the table", "cake", 0),
    ("where is the dog sitting", "couch", 3),
    ("what color is the large umbrella in the rain", "blue", 2),
]
MODELS = {  # name: (model_type, auto_class)
    "vilt": ("vilt", "AutoModel"),
    "blip": ("blip", "BlipForImageTextRetrieval"),
    "clip": ("clip", "AutoModel"),
    "siglip": ("siglip", "AutoModel"),
}


def write_cocoqa(root: Path) -> None:
    base = root / "cocoqa" / "train"
    base.mkdir(parents=True)
    ids, questions, answers, types = [], [], [], []
    for i in range(N):
        image_id = 9 + 2 * (i % 7)  # some images carry two questions
        question, answer, kind = QUESTIONS[i % len(QUESTIONS)]
        ids.append(str(image_id))
        questions.append(question if i < len(QUESTIONS) else f"{question} now")
        answers.append(answer)
        types.append(str(kind))
        path = root / "coco" / "train2014" / f"COCO_train2014_{image_id:012d}.jpg"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(image_id).integers(0, 256, (24, 30, 3), np.uint8)
            Image.fromarray(pixels).save(path, "JPEG")
    for name, lines in (("img_ids", ids), ("questions", questions), ("answers", answers),
                        ("types", types)):  # fmt: skip
        (base / f"{name}.txt").write_text("\n".join(lines) + "\n")


def write_models(root: Path) -> None:
    import torch
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        ViltConfig,
        ViltImageProcessor,
        ViltModel,
    )

    from emms.models.flabels import minilm_path

    tower = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32}  # fmt: skip
    vision = {**tower, "image_size": 32, "patch_size": 8}
    text = {**tower, "vocab_size": 30522, "max_position_embeddings": 24}
    torch.manual_seed(0)
    models = {
        "vilt": (
            ViltModel(ViltConfig(**vision, vocab_size=30522, max_position_embeddings=24)),
            ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=32),
        ),
        "blip": (
            BlipForImageTextRetrieval(
                BlipConfig(
                    text_config={**text, "encoder_hidden_size": 16},
                    vision_config=vision,
                    image_text_hidden_size=WIDTH,
                )
            ),
            BlipImageProcessor(size={"height": 32, "width": 32}),
        ),
        "clip": (
            CLIPModel(
                CLIPConfig(
                    text_config={**text, "eos_token_id": 102},  # [SEP] closes the text
                    vision_config=vision,
                    projection_dim=WIDTH,
                )
            ),
            CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        ),
        "siglip": (
            SiglipModel(
                SiglipConfig(
                    text_config={**text, "max_position_embeddings": 12}, vision_config=vision
                )
            ),  # fmt: skip
            SiglipImageProcessor(size={"height": 32, "width": 32}),
        ),
    }
    for name, (model, processor) in models.items():
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
        BertTokenizerFast.from_pretrained(minilm_path()).save_pretrained(root / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_vqa")
    write_cocoqa(root / "data")
    write_models(root / "weights")
    encoders = write_encoders(root / "encoders")
    rows = [
        {"dataset": "cocoqa", "model": m, "seed": s, "accuracy": acc + s}
        for m, acc in zip(MODELS, (61.0, 58.0, 55.0, 57.0), strict=True)
        for s in (0, 1)
    ]
    truth = root / "truth.csv"
    pd.DataFrame(rows).to_csv(truth, index=False)
    config = {
        "task": "vqa",
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
            "datasets": ["cocoqa"],
            "encoders": list(encoders),
            "encoder_dirs": encoders,
            "batch_size": 4,  # 10 questions: batches of 4, 4, 2, padded
            "max_length": 16,
            "n_boot": 50,
        },
    }
    path = root / "vqa.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"root": root, "config": path, "truth": truth}


def config_for(world, tmp: Path, **kwargs):
    return load_run_config(
        "vqa",
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


def _one_question(name: str, folder: Path, image, question: str) -> np.ndarray:
    """The joint representation of one (image, question), unbatched and unpadded, from
    each model's own forward pass (written here without the module's code)."""
    import torch
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    model_type, auto_class = MODELS[name]
    model = getattr(transformers, auto_class).from_pretrained(folder).eval()
    pixels = AutoImageProcessor.from_pretrained(folder)(images=[image], return_tensors="pt")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        if model_type == "siglip":  # SigLIP reads its text padded to its full length
            text = tokenizer([question], padding="max_length", max_length=12, truncation=True,
                             return_tensors="pt")  # fmt: skip
            out = model(input_ids=text["input_ids"], pixel_values=pixels["pixel_values"])
            return torch.cat([out.image_embeds, out.text_embeds], 1)[0].numpy()
        text = tokenizer([question], return_tensors="pt")
        if model_type == "vilt":
            return model(**text, **pixels).pooler_output[0].numpy()
        if model_type == "blip":
            out = model(
                input_ids=text["input_ids"],
                attention_mask=text["attention_mask"],
                pixel_values=pixels["pixel_values"],
                use_itm_head=True,
            )
            return out.question_embeds[0, 0].numpy()
        out = model(
            input_ids=text["input_ids"],
            attention_mask=text["attention_mask"],
            pixel_values=pixels["pixel_values"],
        )
        return torch.cat([out.image_embeds, out.text_embeds], 1)[0].numpy()


@slow
def test_features_are_each_models_joint_representation(first_run, world):
    from emms.datasets.paper import read_paper_dataset

    cfg, _ = first_run
    record = read_paper_dataset("cocoqa", world["root"] / "data")
    widths = {"vilt": 16, "blip": 16, "clip": 2 * WIDTH, "siglip": 2 * 16}
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if DEVICE == "cpu" else {"rtol": 0.05, "atol": 0.05}
    for name in MODELS:
        features, meta = load_array(cfg.features_path("cocoqa", name))
        assert features.shape == (N, widths[name]), name
        assert meta["kind"] == ("fused" if name in ("vilt", "blip") else "dual")
        folder = world["root"] / "weights" / name
        for i in range(N):
            expected = _one_question(name, folder, record.load_image(i), record.questions[i])
            np.testing.assert_allclose(features[i], expected, **tolerance, err_msg=name)


@slow
def test_flabels_embed_the_answer_with_its_question(first_run, world):
    from emms.datasets.paper import read_paper_dataset

    cfg, _ = first_run
    record = read_paper_dataset("cocoqa", world["root"] / "data")
    texts = label_texts(record, np.arange(N), cfg)
    assert texts[0] == "Q: what is the color of the bus A: red"
    assert len(texts) == N


@slow
def test_report_ranks_the_zoo_and_a_second_run_recomputes_nothing(first_run):
    cfg, result = first_run
    assert set(result.scores["model"]) == set(MODELS)
    assert (result.tau["n_models"] == len(MODELS)).all()
    assert np.isfinite(result.scores[result.scores["selector"] == "emms"]["score"]).all()
    again = run(cfg)
    assert again.computed == []


@slow
def test_a_model_without_a_vqa_rule_or_its_processor_is_refused(world, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    (weights / "clip" / "preprocessor_config.json").unlink()
    with pytest.raises(PaperRunError, match="'clip'.*preprocessor_config.json"):
        run(config_for(world, tmp_path, weights=weights))
    config = yaml.safe_load(world["config"].read_text())
    config["models"].append(
        {"name": "bert", "source": "transformers", "identifier": "tiny/bert", "model_type": "bert"}
    )
    shutil.copytree(world["root"] / "weights" / "vilt", weights / "bert", dirs_exist_ok=True)
    (weights / "bert" / "config.json").write_text('{"model_type": "bert"}')
    path = tmp_path / "vqa.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cfg = load_run_config(
        "vqa", path, world["root"] / "data", world["root"] / "weights", models=["bert"],
        out=tmp_path / "r", cache=tmp_path / "c", truth=world["truth"], progress=False,
    )  # fmt: skip
    cfg.weights = weights
    with pytest.raises(PaperRunError, match="'bert' is a 'bert' model; VQA features"):
        run(cfg)
    assert not (tmp_path / "c").exists()
