"""The embedded vision zoo: recipes, models, checkpoints, features, fine-tuning."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emms._validation import check_probabilities
from emms.datasets.digits import IMAGE_SIZE, SourceDataset, TargetDataset, load_source, load_target
from emms.models.features import extract_features
from emms.models.finetune import finetune
from emms.models.zoo import (
    FAMILIES,
    CheckpointError,
    Recipe,
    ZooError,
    augment_batch,
    build_model,
    checkpoint_paths,
    load_checkpoint,
    predict_logits,
    pretrain,
    recipe_from_dict,
    recipes_from_config,
    save_checkpoint,
    source_probabilities,
)
from emms.params import load_params

TINY = dict(name="tiny", arch="resnet", width=8, epochs=1, lr=3e-3, augment=True, seed=0)


@pytest.fixture(scope="module")
def arrays():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.uint8), data.target.astype(np.int64)


@pytest.fixture(scope="module")
def source(arrays):
    full = load_source(arrays)
    keep = np.arange(0, len(full.labels), 6)  # ~150 images: enough to exercise training
    return SourceDataset(full.images[keep], full.labels[keep], full.class_names, "tiny")


@pytest.fixture(scope="module")
def target(arrays):
    full = load_target("shapes3", arrays, seed=0)
    return TargetDataset(
        "shapes3-tiny",
        full.train_images[:96],
        full.train_labels[:96],
        full.test_images[:64],
        full.test_labels[:64],
        full.class_names,
        full.description,
    )


@pytest.fixture(scope="module")
def tiny_model(source):
    return pretrain(TINY, source, progress=False)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- recipes


ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml").task("recognition")
DEFAULT_ZOO = PARAMS.zoo.models
FINETUNE_RECIPE = PARAMS.finetune.model_dump(exclude={"seeds"})


def test_default_zoo_is_diverse_and_valid():
    recipes = PARAMS.zoo.recipes()
    assert len(recipes) >= 8
    assert len({r.arch for r in recipes}) >= 4
    assert len({r.name for r in recipes}) == len(recipes)
    assert len({r.epochs for r in recipes}) >= 3 and {r.augment for r in recipes} == {True, False}
    assert all(r.arch in FAMILIES for r in recipes)
    assert recipes_from_config({e["name"]: e for e in DEFAULT_ZOO}) == recipes


@pytest.mark.parametrize(
    "change, message",
    [
        ({"arch": "alexnet"}, r"unknown architecture 'alexnet'.*convnext.*vit"),
        ({"arch": "timm:no_such_net"}, "not a timm model name"),
        ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"lr": "3e-3"}, "must be a number"),
        ({"width": 0}, "width=0"),
        ({"epochs": 2.5}, "epochs=2.5"),
        ({"augment": "yes"}, "augment"),
        ({"name": "a/b"}, "slashes"),
    ],
)
def test_bad_recipes(change, message):
    with pytest.raises(ZooError, match=message):
        recipe_from_dict({**TINY, **change})


def test_recipe_config_errors():
    with pytest.raises(ZooError, match=r"missing field\(s\) \['seed'\]"):
        recipe_from_dict({k: v for k, v in TINY.items() if k != "seed"})
    with pytest.raises(ZooError, match="unique"):
        recipes_from_config([TINY, TINY])
    with pytest.raises(ZooError, match="empty"):
        recipes_from_config([])
    with pytest.raises(ValueError):  # ZooError is a ValueError (params validation relies on it)
        recipe_from_dict({**TINY, "arch": "alexnet"})


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("entry", DEFAULT_ZOO, ids=[e["name"] for e in DEFAULT_ZOO])
def test_default_models_features_are_the_head_input(entry):
    torch.manual_seed(0)
    model = build_model(entry, num_classes=10).eval()
    x = torch.randn(5, 1, IMAGE_SIZE, IMAGE_SIZE)
    features = extract_features(model, x.numpy())
    assert features.dtype == np.float32 and features.ndim == 2 and features.shape[0] == 5
    assert features.shape[1] <= 256  # D well below the targets' N
    with torch.no_grad():
        logits = model(x)
        from_head = model.get_classifier()(torch.from_numpy(features))
    assert logits.shape == (5, 10)
    torch.testing.assert_close(from_head, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_at_16px(family):
    width = 32 if family in ("vit", "mixer") else 8
    recipe = {**TINY, "arch": family, "width": width, "image_size": 16}
    model = build_model(recipe, num_classes=3).eval()
    assert model.emms_image_size == 16
    assert predict_logits(model, np.zeros((2, 1, 16, 16), np.float32)).shape == (2, 3)


def test_timm_model_name():
    model = build_model({**TINY, "arch": "timm:test_resnet"}, num_classes=4)
    assert predict_logits(model, np.zeros((2, 1, 32, 32), np.float32)).shape == (2, 4)


def test_augment_batch_deterministic_and_keeps_background():
    x = torch.randn(4, 1, 16, 16)
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    from emms.models.zoo import _BACKGROUND

    blank = torch.full((2, 1, 16, 16), _BACKGROUND)
    torch.testing.assert_close(augment_batch(blank, torch.Generator()), blank)


# --------------------------------------------------------------------------- pre-training


def test_pretrain_is_deterministic_and_keeps_caller_rng(source, tiny_model):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = pretrain(TINY, source, progress=False)
    assert torch.equal(torch.rand(1), before)  # caller's RNG not consumed
    assert _same_state(_state(again), _state(tiny_model))
    assert not again.training


def test_pretrain_rejects_wrong_image_size(source):
    with pytest.raises(ZooError, match="image_size=16"):
        pretrain({**TINY, "image_size": 16}, source, progress=False)


def test_source_probabilities(tiny_model, target):
    probs = source_probabilities(tiny_model, target.train_images)
    assert probs.dtype == np.float32 and probs.shape == (len(target.train_images), 10)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    check_probabilities(probs, len(probs))


def test_extract_features_restores_mode_and_is_batch_invariant(tiny_model, target):
    tiny_model.train()
    a = extract_features(tiny_model, target.train_images, batch_size=7)
    assert tiny_model.training
    tiny_model.eval()
    b = extract_features(tiny_model, target.train_images)
    c = extract_features(tiny_model, target.train_images)
    assert np.array_equal(b, c)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        extract_features(tiny_model, target.train_images[:, 0])


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, tiny_model, target):
    weights, sidecar = save_checkpoint(tiny_model, TINY, tmp_path / "zoo" / "tiny.safetensors")
    assert (weights, sidecar) == checkpoint_paths(tmp_path / "zoo" / "tiny")
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["tiny.json", "tiny.safetensors"]
    meta = json.loads(sidecar.read_text())
    assert meta["recipe"]["name"] == "tiny" and meta["num_classes"] == 10
    assert meta["recipe"]["image_size"] == IMAGE_SIZE  # resolved from the source images
    model, recipe = load_checkpoint(weights)
    assert isinstance(recipe, Recipe) and recipe.arch == "resnet" and not model.training
    x = target.test_images
    assert np.array_equal(predict_logits(model, x), predict_logits(tiny_model, x))
    assert np.array_equal(extract_features(model, x), extract_features(tiny_model, x))
    assert np.array_equal(source_probabilities(model, x), source_probabilities(tiny_model, x))
    assert not weights.read_bytes().startswith(b"\x80")  # not a pickle


def test_missing_or_corrupt_checkpoint(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match=r"nothing\.safetensors.*dvc repro zoo"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    weights, sidecar = save_checkpoint(tiny_model, TINY, tmp_path / "tiny")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(weights)
    weights.write_bytes(data)
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match="tiny.json"):
        load_checkpoint(weights)
    sidecar.unlink()
    with pytest.raises(CheckpointError, match=r"tiny\.json is missing"):
        load_checkpoint(weights)


# --------------------------------------------------------------------------- fine-tuning


def test_finetune_is_deterministic_for_a_seed(tmp_path, tiny_model, target):
    recipe = {**FINETUNE_RECIPE, "epochs": 1, "min_steps": 0}
    before = _state(tiny_model)
    torch.manual_seed(5)
    rng_before = torch.rand(1)
    torch.manual_seed(5)
    a = finetune(tiny_model, target, seed=0, **recipe)
    assert torch.equal(torch.rand(1), rng_before)
    b = finetune(tiny_model, target, seed=0, **recipe)
    assert a == b and 0.0 <= a <= 1.0
    assert _same_state(before, _state(tiny_model))  # the zoo model is not modified
    save_checkpoint(tiny_model, TINY, tmp_path / "tiny")
    assert finetune(tmp_path / "tiny.safetensors", target, seed=0, **recipe) == a


def test_finetune_rejects_bad_recipe(tiny_model, target):
    with pytest.raises(ValueError, match="lr"):
        finetune(tiny_model, target, **{**FINETUNE_RECIPE, "epochs": 1, "lr": 0.0}, seed=0)
