"""Smoke run of the paper-scale captioning path (``python -m emms.paper run --task
captioning``): encoder/decoder pairs ranked against a reference BLEU-4 table.

Fixtures in the real formats: ``flickr8k/dataset_flickr8k.json`` (Karpathy split keys)
with JPEG images in ``Flicker8k_Dataset/``; two vision encoders (transformers ViT) and two
text decoders (BERT, WordPiece tokenizer files) randomly initialised and tiny, combined
into four ``VisionEncoderDecoderModel`` pairs by ``python -m emms.paper pair``; the tiny
F-label encoders of the recognition smoke test; a reference table with one column per
pair, as ``data/reference/finetune_captioning_bleu4.csv``.
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
from emms.models.paper_zoo import WeightsMissing, load_zoo
from emms.paper import load_run_config
from emms.paper.__main__ import main
from emms.paper.config import PaperRunError
from emms.paper.labels import label_texts
from emms.paper.run import run

slow = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
N_TRAIN = 12
WIDTH = 8  # the decoders' hidden size: under the 12 training images (no exact fit)
ENCODERS = {"vit": 0, "deit": 1}  # name: seed
DECODERS = {"bert": 2, "bert1": 1}  # name: layers
PAIRS = {f"{e}_{d}": {"encoder": e, "decoder": d} for e in ENCODERS for d in DECODERS}
WORDS = "a child dog runs in the park with red ball two girls play on grass".split()


def captions(i: int) -> list[str]:
    """Two reference captions of image i, of different lengths (padding is exercised)."""
    rng = np.random.default_rng(i)
    return [" ".join(rng.choice(WORDS, size=n)) + "." for n in (3 + i % 5, 2)]


def write_flickr8k(root: Path) -> None:
    base = root / "flickr8k"
    rows = []
    for i in range(N_TRAIN + 2):
        name = f"{1000 + i}_caption.jpg"
        rng = np.random.default_rng(100 + i)
        pixels = rng.integers(0, 256, size=(20 + i, 24, 3), dtype=np.uint8)
        (base / "Flicker8k_Dataset").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(base / "Flicker8k_Dataset" / name, "JPEG")
        split = "train" if i < N_TRAIN else "test"
        sentences = [{"raw": c, "tokens": c.split(), "imgid": i} for c in captions(i)]
        rows.append({"filename": name, "imgid": i, "split": split, "sentences": sentences})
    (base / "dataset_flickr8k.json").write_text(json.dumps({"dataset": "flickr8k", "images": rows}))


def write_members(root: Path) -> None:
    """The encoders (ViT + image processor) and decoders (BERT + tokenizer) the pairs
    are built from, each in its own folder as a Hub snapshot would be."""
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    from emms.models.flabels import minilm_path

    for name, seed in ENCODERS.items():
        torch.manual_seed(seed)
        config = ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
        ViTModel(config, add_pooling_layer=False).save_pretrained(root / name)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / name)
    for name, layers in DECODERS.items():
        torch.manual_seed(10 + layers)
        config = BertConfig(
            hidden_size=WIDTH,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=2 * WIDTH,
        )
        BertModel(config).save_pretrained(root / name)
        BertTokenizerFast.from_pretrained(minilm_path()).save_pretrained(root / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_captioning")
    write_flickr8k(root / "data")
    write_members(root / "weights")
    encoders = write_encoders(root / "encoders")
    reference = root / "bleu4.csv"
    bleu = dict(zip(PAIRS, (0.21, 0.18, 0.26, 0.24), strict=True))
    pd.DataFrame([{"dataset": "flickr8k", **bleu}]).to_csv(reference, index=False)
    kind = {"source": "transformers", "model_type": "vit"}
    config = {
        "task": "captioning",
        "reference": str(reference),
        "models": [
            *({"name": e, "group": "encoder", "identifier": f"tiny/{e}", **kind} for e in ENCODERS),
            *(
                {
                    "name": d,
                    "group": "decoder",
                    "source": "transformers",
                    "identifier": f"tiny/{d}",
                    "model_type": "bert",
                }
                for d in DECODERS
            ),
        ],  # fmt: skip
        "pairs": PAIRS,
        "run": {
            "encoders": list(encoders),
            "encoder_dirs": encoders,
            "batch_size": 5,  # 12 images: batches of 5, 5, 2
            "max_length": 32,
            "n_boot": 50,
        },
    }
    path = root / "captioning.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # the pairs' order is the zoo's
    assert main(["pair", "--config", str(path), "--weights", str(root / "weights")]) == 0
    return {"root": root, "config": path, "reference": reference}


def config_for(world, tmp: Path, **kwargs):
    return load_run_config(
        "captioning",
        world["config"],
        world["root"] / "data",
        kwargs.pop("weights", world["root"] / "weights"),
        out=tmp / "reports",
        cache=tmp / "cache",
        device=DEVICE,
        progress=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory):
    cfg = config_for(world, tmp_path_factory.mktemp("run"))
    return cfg, run(cfg)


@slow
def test_pair_folders_hold_what_the_features_need(world):
    """`python -m emms.paper pair` wrote a loadable pair with the start / pad ids."""
    from transformers import VisionEncoderDecoderModel

    for name in PAIRS:
        folder = world["root"] / "weights" / name
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "vision-encoder-decoder"
        assert config["decoder_start_token_id"] == 101 and config["pad_token_id"] == 0  # [CLS]
        assert (folder / "preprocessor_config.json").is_file()
        assert (folder / "tokenizer.json").is_file()
        model = VisionEncoderDecoderModel.from_pretrained(folder, local_files_only=True)
        assert model.config.decoder.num_hidden_layers == DECODERS[PAIRS[name]["decoder"]]
    assert not list((world["root"] / "weights").glob(".*partial"))


def decoder_means_one_at_a_time(folder: Path, record) -> np.ndarray:
    """(N_TRAIN, width): per training image, unpadded, the pair's last decoder hidden
    states averaged over its first caption, decoder input = start token + the caption's
    ids without the last (the runner's rule, computed without its batching)."""
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    start = torch.tensor([[model.config.decoder_start_token_id]])
    rows = []
    for i in range(N_TRAIN):
        pixels = processor(images=record.load_image(i), return_tensors="pt")["pixel_values"]
        ids = tokenizer(record.captions[i][0], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model(
                pixel_values=pixels,
                decoder_input_ids=torch.cat([start, ids[:, :-1]], 1),
                output_hidden_states=True,
            )
        rows.append(out.decoder_hidden_states[-1][0].mean(0).numpy())
    return np.stack(rows)


@slow
def test_features_are_the_decoder_mean_over_each_caption(first_run, world):
    """Independent of the runner's batching and padding: one image at a time, the caption
    unpadded, decoder input = [CLS] + its ids without the last, the plain mean over every
    position of the last decoder hidden states."""

    from emms.datasets.paper import read_paper_dataset

    cfg, _ = first_run
    record = read_paper_dataset("flickr8k", world["root"] / "data")
    assert len(record) == N_TRAIN
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if DEVICE == "cpu" else {"rtol": 0.05, "atol": 0.05}
    for name in PAIRS:
        features, meta = load_array(cfg.features_path("flickr8k", name))
        assert features.shape == (N_TRAIN, WIDTH) and meta["model"] == name
        expected = decoder_means_one_at_a_time(world["root"] / "weights" / name, record)
        np.testing.assert_allclose(features, expected, **tolerance)
    # the image reaches the features: one decoder with two encoders gives two feature
    # sets (close, as the new cross-attention starts small: 2e-4 here, float32 noise 1e-7)
    a, _ = load_array(cfg.features_path("flickr8k", "vit_bert"))
    b, _ = load_array(cfg.features_path("flickr8k", "deit_bert"))
    assert np.abs(a - b).max() > 1e-5


@slow
def test_flabels_embed_each_images_first_caption(first_run, world):
    from emms.datasets.paper import read_paper_dataset

    cfg, _ = first_run
    record = read_paper_dataset("flickr8k", world["root"] / "data")
    texts = label_texts(record, np.arange(N_TRAIN), cfg)
    assert texts == [captions(i)[0] for i in range(N_TRAIN)]
    for encoder in cfg.encoders:
        flabels, _ = load_array(cfg.flabels_path("flickr8k", encoder))
        assert flabels.shape[0] == N_TRAIN and np.isfinite(flabels).all()


@slow
def test_report_ranks_the_pairs_against_the_reference_table(first_run):
    cfg, result = first_run
    assert set(result.scores["model"]) == set(PAIRS)
    assert set(result.tau["group"]) == {"pairs"}
    assert (result.tau["n_models"] == len(PAIRS)).all()
    emms = result.scores[result.scores["selector"] == "emms"]
    assert len(emms) == len(PAIRS) and np.isfinite(emms["score"]).all()
    assert result.report.is_file()


@slow
def test_a_second_run_recomputes_nothing(first_run):
    cfg, _ = first_run
    again = run(cfg)
    assert again.computed == []
    assert len(again.reused) == len(PAIRS) + len(cfg.encoders)


@slow
def test_a_pair_without_its_image_processor_stops_before_writing(world, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    (weights / "vit_bert" / "preprocessor_config.json").unlink()
    cfg = config_for(world, tmp_path, weights=weights)
    with pytest.raises(PaperRunError, match="vit_bert.*preprocessor_config.json"):
        run(cfg)
    assert not (tmp_path / "cache").exists()


@slow
def test_a_pair_without_a_start_token_stops_naming_it(world, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    path = weights / "deit_bert1" / "config.json"
    config = json.loads(path.read_text())
    del config["decoder_start_token_id"]
    path.write_text(json.dumps(config))
    cfg = config_for(world, tmp_path, weights=weights)
    with pytest.raises(PaperRunError, match="deit_bert1.*decoder_start_token_id"):
        run(cfg)


def test_a_missing_pair_names_its_files_and_how_to_build_it(world, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights, ignore=shutil.ignore_patterns("vit_*"))
    cfg = config_for(world, tmp_path, weights=weights)
    with pytest.raises(WeightsMissing) as error:
        run(cfg)
    message = str(error.value)
    assert "vit_bert" in message and "config.json" in message
    assert f"python -m emms.paper pair --weights {weights} --pairs vit_bert" in message


def test_models_of_a_paired_zoo_are_its_pairs(world, tmp_path):
    cfg = config_for(world, tmp_path)
    assert cfg.models == list(PAIRS)
    with pytest.raises(PaperRunError, match="the encoder/decoder pairs"):
        config_for(world, tmp_path, models=["vit"])


def test_the_paper_zoo_ranks_the_nine_pairs_of_the_reference_table():
    zoo = load_zoo(REPO / "params" / "paper" / "captioning.yaml")
    table = pd.read_csv(REPO / zoo.reference)
    assert zoo.ranked == list(table.columns[1:])
    entry = zoo.entry("swin2vit_bart")
    assert entry.auto_class == "VisionEncoderDecoderModel"
    assert entry.model_type == "vision-encoder-decoder"
    assert "microsoft/swinv2" in entry.identifier and "facebook/bart-base" in entry.identifier
