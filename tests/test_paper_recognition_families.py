"""Every architecture family of the paper's recognition zoo through the real loading and
feature code, randomly initialised (no weights exist here): the weights file in the
format its release ships (safetensors, MoCo v3's wrapped ``.pth.tar``), ``load_model``
with the zoo entry's own kwargs and prefixes, the entry's preprocessing, and the feature
rule of :func:`emms.paper.extract.feature_forward`, checked against the model's own
classifier: the features are exactly the input of its final Linear.

One entry per family (the smallest of it); ResNet-18, MobileNetV2 and a tiny ViT are in
``test_paper_pipeline.py``. About 10-20 s on 2 CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_model
from test_paper_pipeline import DEVICE  # EMMS_TEST_DEVICE=cuda: the same tests on a GPU

from emms.models.paper_zoo import load_model, load_zoo
from emms.paper.config import RunConfig
from emms.paper.extract import _final_linear, feature_forward, preprocessing

ZOO = load_zoo("recognition")

#: the smallest entry of each family of the paper's zoo, by its name there
FAMILIES = [
    "resnet34",  # torchvision ResNet
    "densenet121",  # torchvision DenseNet (classifier Linear)
    "mnasnet1_0",  # torchvision MnasNet (classifier Sequential(Dropout, Linear); its
    # loader needs a module version that a safetensors file does not keep)
    "googlenet",  # torchvision GoogLeNet, built with its aux heads like its weights
    "inception_v3",  # torchvision Inception-v3, aux heads, 299 px
    "deit_tiny",  # timm ViT
    "pvtv2_b2",  # timm PVT v2
    "swin_t",  # timm Swin
    "mocov3_small",  # timm ViT-S/16, 12 heads, headless, MoCo v3 checkpoint format
]


def _config(tmp_path) -> RunConfig:
    return RunConfig(
        task="recognition", config_path=tmp_path, zoo=ZOO, data=tmp_path,
        weights=tmp_path, cache=tmp_path, out=tmp_path,
    )  # fmt: skip


def _write_weights(entry, network, root):
    """The random network's weights as the entry's release ships them."""
    folder = root / entry.name
    folder.mkdir(parents=True)
    if entry.strip_prefix:  # MoCo v3: {"state_dict": {"module.base_encoder.<key>": ...}}
        state = {entry.strip_prefix + k: v for k, v in network.state_dict().items()}
        # the projection head and the momentum encoder ride along in the real file
        state[entry.strip_prefix + "head.0.weight"] = torch.zeros(4096, 384)
        state["module.momentum_encoder.cls_token"] = torch.zeros(1, 1, 384)
        torch.save({"epoch": 300, "state_dict": state}, folder / entry.weights_file)
    else:
        save_model(network, str(folder / (entry.weights_file or "model.safetensors")))


@pytest.mark.parametrize("name", FAMILIES)
def test_family_loads_and_its_features_are_the_classifier_input(name, tmp_path):
    from emms.models.paper_zoo import build_architecture

    entry = ZOO.models[name]
    torch.manual_seed(0)
    original = build_architecture(entry).eval()
    _write_weights(entry, original, tmp_path)
    network = load_model(entry, tmp_path)
    for key, value in original.state_dict().items():
        assert torch.equal(network.state_dict()[key], value), key

    transform, description = preprocessing(entry, network, _config(tmp_path))
    rng = np.random.default_rng(0)
    images = torch.stack(
        [
            transform(Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)))
            for _ in range(2)
        ]
    )
    side = 299 if name == "inception_v3" else 224
    assert images.shape == (2, 3, side, side), description
    network, images = network.to(DEVICE), images.to(DEVICE)
    close = {"atol": 1e-5} if DEVICE == "cpu" else {"atol": 1e-3, "rtol": 1e-3}
    forward = feature_forward(network, entry)
    with torch.no_grad():
        features, logits = forward(images)
        if entry.source == "timm" and entry.kwargs.get("num_classes") == 0:
            # headless (MoCo v3): the pooled [CLS] token of the base encoder, no source
            # probabilities, so LEEP/NCE are not scored for it
            assert logits is None
            tokens = network.forward_features(images)
            np.testing.assert_allclose(features.cpu(), tokens[:, 0].cpu(), **close)
            assert features.shape == (2, network.num_features)
            return
        head = network.get_classifier() if entry.source == "timm" else _final_linear(network, entry)
        assert isinstance(head, torch.nn.Linear)
        assert features.shape == (2, head.in_features) and logits.shape == (2, 1000)
        np.testing.assert_allclose(head(features).cpu(), logits.cpu(), **close)
        # the logits are the network's own output: nothing after the final Linear
        output = network(images)
        output = getattr(output, "logits", output)
        np.testing.assert_allclose(output.cpu(), logits.cpu(), **close)


def test_transformers_pvt_features_are_the_classifier_input(tmp_path):
    """PVT v1 (transformers' port: ``Zetatech/pvt-*``) from a folder of the format the hub
    ships (config.json + model.safetensors), at a reduced width: the feature hook sits on
    ``classifier``."""
    from transformers import AutoModelForImageClassification, PvtConfig

    entry = ZOO.models["pvt_tiny"]
    config = PvtConfig(
        image_size=64, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1], num_labels=1000,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForImageClassification.from_config(config).save_pretrained(tmp_path / entry.name)
    network = load_model(entry, tmp_path)
    transform, _ = preprocessing(entry, network, _config(tmp_path))
    image = Image.fromarray(np.zeros((30, 20, 3), dtype=np.uint8) + 128)
    images = torch.stack([transform(image), transform(image.rotate(90))])
    assert images.shape == (2, 3, 64, 64)
    features, logits = feature_forward(network, entry)(images)
    assert features.shape == (2, 32)
    with torch.no_grad():
        np.testing.assert_allclose(network.classifier(features).numpy(), logits.numpy(), atol=1e-5)
        np.testing.assert_allclose(
            network(pixel_values=images).logits.numpy(), logits.numpy(), atol=1e-5
        )
