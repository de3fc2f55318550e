"""The captioning zoo's other families through the real paper-scale path: the Swin and
SwinV2 encoders (saved as the image-classification checkpoints the zoo names) and the
RoBERTa and BART decoders (byte-level BPE tokenizers, ``<s>`` as the start token), tiny
and randomly initialised, combined by ``python -m emms.paper pair`` into the four pairs
of those families, on the Flickr8k fixture of ``test_paper_captioning.py``; features
checked against the same independent one-image-at-a-time computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_paper_captioning import N_TRAIN, decoder_means_one_at_a_time, write_flickr8k
from test_paper_pipeline import DEVICE, write_encoders

from emms.cache import load_array
from emms.paper import load_run_config
from emms.paper.__main__ import main
from emms.paper.run import run

WIDTH = 8
ENCODERS = {"swinvit": "swin", "swin2vit": "swinv2"}  # zoo name: model_type
DECODERS = {"roberta": "roberta", "bart": "bart"}
PAIRS = {f"{e}_{d}": {"encoder": e, "decoder": d} for e in ENCODERS for d in DECODERS}


def _byte_level_vocab() -> dict[str, int]:
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    moved = iter(range(256, 512))
    chars = [chr(b) if b in printable else chr(next(moved)) for b in range(256)]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    return {t: i for i, t in enumerate(specials)} | {c: i + 5 for i, c in enumerate(chars)}


def write_members(root: Path) -> None:
    import torch
    from transformers import (
        BartConfig,
        BartModel,
        BartTokenizerFast,
        RobertaConfig,
        RobertaModel,
        RobertaTokenizerFast,
        SwinConfig,
        SwinForImageClassification,
        Swinv2Config,
        Swinv2ForImageClassification,
        ViTImageProcessor,
    )

    shape = {"image_size": 32, "patch_size": 4, "embed_dim": 8, "depths": [1, 1],
             "num_heads": [1, 2], "window_size": 2, "num_labels": 10}  # fmt: skip
    for seed, (name, kind) in enumerate(ENCODERS.items()):
        torch.manual_seed(seed)
        cls, config = {
            "swin": (SwinForImageClassification, SwinConfig),
            "swinv2": (Swinv2ForImageClassification, Swinv2Config),
        }[kind]
        cls(config(**shape)).save_pretrained(root / name)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / name)
    vocab = _byte_level_vocab()
    torch.manual_seed(5)
    RobertaModel(
        RobertaConfig(vocab_size=len(vocab), hidden_size=WIDTH, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=16, max_position_embeddings=130)
    ).save_pretrained(root / "roberta")  # fmt: skip
    RobertaTokenizerFast(vocab=vocab, merges=[]).save_pretrained(root / "roberta")
    BartModel(
        BartConfig(vocab_size=len(vocab), d_model=WIDTH, encoder_layers=1, decoder_layers=1,
                   encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                   decoder_ffn_dim=16, max_position_embeddings=128)
    ).save_pretrained(root / "bart")  # fmt: skip
    BartTokenizerFast(vocab=vocab, merges=[]).save_pretrained(root / "bart")


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioning_families")
    write_flickr8k(root / "data")
    write_members(root / "weights")
    encoders = write_encoders(root / "encoders")
    reference = root / "bleu4.csv"
    bleu = dict(zip(PAIRS, (0.21, 0.18, 0.26, 0.24), strict=True))
    pd.DataFrame([{"dataset": "flickr8k", **bleu}]).to_csv(reference, index=False)
    members = [
        {"name": n, "group": "encoder", "source": "transformers", "identifier": f"tiny/{n}",
         "auto_class": "AutoModelForImageClassification", "model_type": t}
        for n, t in ENCODERS.items()
    ] + [
        {"name": n, "group": "decoder", "source": "transformers", "identifier": f"tiny/{n}",
         "model_type": t}
        for n, t in DECODERS.items()
    ]  # fmt: skip
    config = {
        "task": "captioning",
        "reference": str(reference),
        "models": members,
        "pairs": PAIRS,
        "run": {
            "encoders": list(encoders),
            "encoder_dirs": encoders,
            "batch_size": 5,
            "max_length": 64,
            "n_boot": 20,
            "selectors": ["emms", "logme_flabel"],
        },
    }
    path = root / "captioning.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["pair", "--config", str(path), "--weights", str(root / "weights")]) == 0
    cfg = load_run_config(
        "captioning", path, root / "data", root / "weights", out=root / "reports",
        cache=root / "cache", device=DEVICE, progress=False,
    )  # fmt: skip
    return root, cfg, run(cfg)


@pytest.mark.slow
def test_pairs_start_with_s_and_pad_with_the_decoders_pad(family_run):
    root, _, _ = family_run
    for name in PAIRS:
        config = json.loads((root / "weights" / name / "config.json").read_text())
        assert config["model_type"] == "vision-encoder-decoder"
        assert config["encoder"]["model_type"] == ENCODERS[PAIRS[name]["encoder"]]
        assert config["decoder"]["model_type"] == DECODERS[PAIRS[name]["decoder"]]
        assert config["decoder"]["is_decoder"] and config["decoder"]["add_cross_attention"]
        assert config["decoder_start_token_id"] == 0 and config["pad_token_id"] == 1  # <s>


@pytest.mark.slow
@pytest.mark.parametrize("pair", list(PAIRS))
def test_family_features_are_the_decoder_mean_over_each_caption(family_run, pair):
    from emms.datasets.paper import read_paper_dataset

    root, cfg, _ = family_run
    record = read_paper_dataset("flickr8k", root / "data")
    features, meta = load_array(cfg.features_path("flickr8k", pair))
    assert features.shape == (N_TRAIN, WIDTH) and meta["model"] == pair
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if DEVICE == "cpu" else {"rtol": 0.05, "atol": 0.05}
    expected = decoder_means_one_at_a_time(root / "weights" / pair, record)
    np.testing.assert_allclose(features, expected, **tolerance)


@pytest.mark.slow
def test_the_four_pairs_are_scored(family_run):
    _, _, result = family_run
    assert set(result.scores["model"]) == set(PAIRS)
    assert np.isfinite(result.scores.dropna(subset=["score"])["score"]).all()
    assert len(result.scores.dropna(subset=["score"])) == len(PAIRS) * 2
