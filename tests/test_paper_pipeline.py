"""Smoke run of the whole paper-scale path (``python -m emms.paper run``) on fixtures.

Fixtures in the real formats: CIFAR-10 (python batches) and DTD (labels/train1.txt +
images/<class>/), three classes each; the real architectures (torchvision resnet18 and
mobilenet_v2, timm resnet18 and vit_tiny_patch16_224 at 32 px), randomly initialised
and saved as local ``model.safetensors``; F-label encoders of the real classes (BERT,
GPT-2) with tiny random configs and real tokenizer files; truth in the published-table
format. Everything runs on the CPU in float32; ``EMMS_TEST_DEVICE=cuda`` runs the same
tests on a GPU (features in bfloat16 autocast there, the paper-scale default; F-labels
in float32).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from emms.cache import load_array, read_sidecar
from emms.paper import extract, load_run_config
from emms.paper.__main__ import main
from emms.paper.run import run
from emms.selectors.registry import selectors_for

slow = pytest.mark.slow  # the tests that build the fixture world (minutes)

CLASSES = ("banded", "dotted", "zigzagged")
MODELS = {
    "tv_resnet18": {"source": "torchvision", "identifier": "resnet18"},
    "tv_mobilenet_v2": {"source": "torchvision", "identifier": "mobilenet_v2"},
    "timm_resnet18": {"source": "timm", "identifier": "resnet18.a1_in1k"},
    "timm_vit_tiny": {
        "source": "timm",
        "identifier": "vit_tiny_patch16_224.augreg_in21k_ft_in1k",
        "kwargs": {"img_size": 32},
    },
}
TRUTH = {  # published-table format: one row per dataset, one column per model
    "cifar10": [91.0, 88.5, 90.2, 95.1],
    "dtd": [70.3, 66.0, 71.2, 74.9],
}


def _pixels(rng, label: int, size: int) -> np.ndarray:
    base = np.zeros((size, size, 3))
    base[..., label] = 180
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def write_cifar10(root: Path, per_batch: int = 3) -> None:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = [(i + j) % 3 for j in range(per_batch)]
        data = np.stack([_pixels(rng, c, 32).transpose(2, 0, 1).reshape(-1) for c in labels])
        with open(base / name, "wb") as stream:
            pickle.dump({"data": data, "labels": labels}, stream)
    with open(base / "batches.meta", "wb") as stream:
        pickle.dump({"label_names": ["airplane", "automobile", "bird"]}, stream)


def write_dtd(root: Path, per_class: int = 4) -> None:
    base = root / "dtd" / "dtd"
    rng = np.random.default_rng(1)
    lines = []
    for c, name in enumerate(CLASSES):
        for k in range(per_class):
            path = base / "images" / name / f"{name}_{k:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pixels(rng, c, 24)).save(path, "JPEG")
            lines.append(f"{name}/{path.name}")
    (base / "labels").mkdir(parents=True)
    (base / "labels" / "train1.txt").write_text("\n".join(lines) + "\n")


def write_weights(root: Path) -> None:
    import torch
    from safetensors.torch import save_model

    from emms.models.paper_zoo import PaperModel, build_architecture

    torch.manual_seed(0)
    for name, fields in MODELS.items():
        network = build_architecture(PaperModel.from_dict({"name": name, **fields}))
        (root / name).mkdir(parents=True)
        save_model(network, str(root / name / "model.safetensors"))


def write_encoders(root: Path) -> dict[str, str]:
    """Tiny random BERT and GPT-2 (2 layers, width 32) with real tokenizer files."""
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, GPT2Tokenizer

    from emms.models.flabels import minilm_path

    torch.manual_seed(0)
    bert = root / "tiny-bert"
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(bert)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path() / f, bert / f)
    gpt2 = root / "tiny-gpt2"
    # byte-level vocabulary without merges: GPT-2's byte -> character map (printable
    # bytes keep their character, the others move to U+0100 onwards), one token per byte
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    moved = iter(range(256, 512))
    chars = [chr(b) if b in printable else chr(next(moved)) for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars)} | {"<|endoftext|>": 256}
    GPT2Tokenizer(vocab=vocab, merges=[]).save_pretrained(gpt2)
    GPT2Model(
        GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64)
    ).save_pretrained(gpt2)
    return {"bert-large-uncased": str(bert), "gpt2-medium": str(gpt2)}


def write_config(path: Path, truth: Path, encoder_dirs: dict, models=MODELS, **run) -> Path:
    config = {
        "task": "recognition",
        "groups": {"all": {"reference": str(truth)}},
        "models": [{"name": n, "group": "all", **f} for n, f in models.items()],
        "run": {
            "datasets": ["cifar10", "dtd"],
            "dataset_options": {"cifar10": {"verify_checksums": False, "allow_pickle": True}},
            "encoders": list(encoder_dirs),
            "encoder_dirs": encoder_dirs,
            "template": "a photo of a {name}",
            "batch_size": 4,
            "image_size": 32,
            "n_boot": 50,
            **run,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    write_cifar10(root / "data")
    write_dtd(root / "data")
    write_weights(root / "weights")
    encoders = write_encoders(root / "encoders")
    truth = root / "truth.csv"
    columns = {m: [TRUTH[d][i] for d in TRUTH] for i, m in enumerate(MODELS)}
    pd.DataFrame({"dataset": list(TRUTH), **columns}).to_csv(truth, index=False)
    config = write_config(root / "recognition.yaml", truth, encoders)
    return {"root": root, "config": config, "truth": truth, "encoders": encoders}


#: where the smoke run extracts features (README, "Paper scale": run once on CUDA)
DEVICE = os.environ.get("EMMS_TEST_DEVICE", "cpu")

#: scoring every selector costs most of a run on 2 busy cores; the resume tests score two
FAST = {"selectors": ["logme", "emms"]}


def config_for(world, tmp: Path, name: str = "cache", **kwargs):
    return load_run_config(
        "recognition",
        kwargs.pop("config", world["config"]),
        kwargs.pop("data", world["root"] / "data"),
        world["root"] / "weights",
        out=tmp / "reports",
        cache=tmp / name,
        device=DEVICE,
        progress=False,
        **kwargs,
    )


def cached_arrays(cache: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in sorted(cache.rglob("*.npy"))}


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = config_for(world, tmp)
    return cfg, run(cfg)


@slow
def test_features_and_flabels_are_cached_with_sidecars(first_run):
    cfg, result = first_run
    widths = {"tv_resnet18": 512, "tv_mobilenet_v2": 1280, "timm_resnet18": 512,
              "timm_vit_tiny": 192}  # fmt: skip
    samples = {"cifar10": 15, "dtd": 12}
    assert len(result.computed) == len(MODELS) * 2 + 2 * 2
    for dataset, n in samples.items():
        for model, width in widths.items():
            features, meta = load_array(cfg.features_path(dataset, model))
            assert features.shape == (n, width) and features.dtype == np.float32
            assert np.isfinite(features).all() and features.std(axis=0).max() > 0
            assert (meta["task"], meta["model"], meta["dataset"]) == ("recognition", model, dataset)
            assert meta["split"] == "train" and len(meta["recipe"]) == 16
            assert meta["device"] == DEVICE and meta["has_source_probs"]
            probs, _ = load_array(cfg.source_probs_path(dataset, model))
            assert probs.shape == (n, 1000)
            np.testing.assert_allclose(probs.astype(np.float64).sum(axis=1), 1.0, atol=2e-2)
        for encoder in ("bert-large-uncased", "gpt2-medium"):
            flabels, meta = load_array(cfg.flabels_path(dataset, encoder))
            assert flabels.shape == (n, 32)
            assert meta["encoder"] == encoder and meta["template"] == "a photo of a {name}"
            assert meta["device"] == DEVICE  # the encoders run where the features do
            # one embedding per class: samples of a class share it, classes differ
            assert len(np.unique(flabels.round(5), axis=0)) == 3
    assert not list(cfg.cache.rglob("*.partial.npy"))


def test_flabel_encoders_on_the_run_device_equal_the_cpu(world, tmp_path):
    """The paper's F-label encoders (tiny random BERT and GPT-2 here) run on the run's
    device in float32 and return CPU float32 vectors equal to a CPU pass
    (``EMMS_TEST_DEVICE=cuda`` makes this a GPU-vs-CPU check)."""
    import torch

    from emms.paper.labels import build_encoder

    cfg = config_for(world, tmp_path)
    texts = ["a photo of a airplane", "a photo of a banded texture", "a"]
    for name in ("bert-large-uncased", "gpt2-medium"):
        moved = build_encoder(name, cfg, torch.device(DEVICE))
        assert moved.device.type == torch.device(DEVICE).type
        vectors = moved.encode(texts, batch_size=2)
        assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
        cpu = build_encoder(name, cfg, "cpu").encode(texts, batch_size=2)
        np.testing.assert_allclose(vectors, cpu, atol=1e-4 * max(1.0, np.abs(cpu).max()))


@slow
def test_features_are_the_pooled_classifier_input(first_run, world):
    """The cached features of torchvision resnet18, pushed through its own fc layer,
    give the cached source probabilities: they are exactly the classifier's input."""
    import torch

    from emms.models.paper_zoo import load_model

    cfg, _ = first_run
    network = load_model(cfg.zoo.models["tv_resnet18"], world["root"] / "weights")
    features, _ = load_array(cfg.features_path("dtd", "tv_resnet18"))
    probs, _ = load_array(cfg.source_probs_path("dtd", "tv_resnet18"))
    with torch.no_grad():
        again = torch.softmax(network.fc(torch.from_numpy(features)), dim=1).numpy()
    np.testing.assert_allclose(again, probs.astype(np.float32), atol=1e-3)


@slow
def test_report_has_a_tau_per_selector_and_dataset(first_run):
    cfg, result = first_run
    names = [s.name for s in selectors_for(label_format="class")]
    assert set(result.tau["selector"]) == set(names)
    assert set(result.tau["dataset"]) == {"cifar10", "dtd"}
    assert len(result.tau) == len(names) * 2
    scored = result.tau.dropna(subset=["weighted_tau"])
    assert len(scored) >= len(names)  # most selectors score on these tiny sets
    assert scored["weighted_tau"].between(-1, 1).all()
    unscored = result.tau[result.tau["weighted_tau"].isna()]
    assert (unscored["note"].str.len() > 0).all()  # every gap says why
    assert not unscored["note"].str.endswith("()").any()
    text = result.report.read_text()
    assert result.report == cfg.out / "recognition-paper.md"
    for label in ("EMMS (exact)", "LogME (F-label)", "LEEP", "SFDA"):
        assert label in text
    assert "published" in text and "computed by this run" in text
    folder = cfg.report_dir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "all/dtd/emms" in metrics["tau"]
    assert metrics["headline"]["published_gain_percent"] == 9.0
    # the paper's speed-up beside this run's: LogME (F-label) seconds over EMMS seconds
    assert metrics["headline"]["published_speedup"] == 5.13
    scores = result.scores.pivot_table(
        index=["dataset", "model"], columns="selector", values="seconds"
    )
    expected = scores["logme_flabel"].sum() / scores["emms"].sum()
    assert metrics["headline"]["computed_speedup"] == pytest.approx(expected, rel=1e-12)
    assert f"| {expected:.2f} |" in text and "| 5.13 |" in text
    tau_csv = pd.read_csv(folder / "tau.csv")
    assert len(tau_csv) == len(result.tau)
    assert (folder / "scores.csv").is_file() and (folder / "tau.md").is_file()
    # the embedded reports' figures, drawn from this run's tau and scores
    for figure in ("weighted_tau", "scores_vs_truth"):
        assert f"](recognition-paper/{figure}.svg)" in text
        for suffix in ("png", "svg"):
            assert (folder / f"{figure}.{suffix}").stat().st_size > 1000


@slow
def test_second_run_recomputes_nothing(first_run):
    cfg, first = first_run
    before = cached_arrays(cfg.cache)
    again = run(replace(cfg, selectors=FAST["selectors"]))
    assert again.computed == []
    assert len(again.reused) == len(MODELS) * 2 + 2 * 2
    assert cached_arrays(cfg.cache) == before
    same = first.tau[first.tau["selector"].isin(FAST["selectors"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.tau, same)


@slow
def test_dataloader_workers_give_the_same_features(first_run, world, tmp_path):
    """The shipped recognition config reads images in 8 worker processes: the readers'
    records (CIFAR's in-memory arrays, DTD's files) must travel to workers and come back
    in order, giving the features of the in-process run."""
    reference, _ = first_run
    cfg = config_for(world, tmp_path, models=["tv_resnet18"], overrides={**FAST, "num_workers": 2})
    assert cfg.num_workers == 2
    run(cfg)
    for dataset in ("cifar10", "dtd"):
        ours, _ = load_array(cfg.features_path(dataset, "tv_resnet18"))
        theirs, _ = load_array(reference.features_path(dataset, "tv_resnet18"))
        np.testing.assert_array_equal(ours, theirs)


@slow
def test_interrupted_run_resumes_with_identical_features(first_run, world, tmp_path, monkeypatch):
    reference, _ = first_run
    cfg = config_for(world, tmp_path, "cache2", overrides=FAST)
    original = extract.extract_pair
    calls = []

    def interrupt_after_first_pair(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(extract, "extract_pair", interrupt_after_first_pair)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert len(list(cfg.cache.rglob("*.npy"))) == 2  # the first pair: features + probs
    # an interruption in the middle of a pair leaves no partial or final file
    monkeypatch.setattr(extract, "extract_pair", original)
    writes = []
    real_write = extract._BlockWriter.write

    def interrupt_on_second_batch(self, rows):
        writes.append(1)
        if len(writes) == 3:  # features + probs of batch 1 written, features of batch 2 next
            raise KeyboardInterrupt("simulated interruption mid-pair")
        real_write(self, rows)

    monkeypatch.setattr(extract._BlockWriter, "write", interrupt_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert len(list(cfg.cache.rglob("*.npy"))) == 2
    assert not list(cfg.cache.rglob(".*partial*"))
    # a stale partial file of an earlier crash is never trusted
    stale = cfg.features_path("dtd", "tv_resnet18").with_name(".tv_resnet18.partial.npy")
    stale.parent.mkdir(parents=True, exist_ok=True)
    np.save(stale, np.zeros((12, 512), np.float32))
    monkeypatch.setattr(extract._BlockWriter, "write", real_write)
    resumed = run(cfg)
    assert ("features", "cifar10", "tv_resnet18") not in resumed.computed
    assert len([c for c in resumed.computed if c[0] == "features"]) == len(MODELS) * 2 - 1
    assert not stale.exists()
    for dataset in ("cifar10", "dtd"):
        for model in MODELS:
            ours, meta = load_array(cfg.features_path(dataset, model))
            theirs, their_meta = load_array(reference.features_path(dataset, model))
            np.testing.assert_array_equal(ours, theirs)
            assert meta["recipe"] == their_meta["recipe"]


@slow
def test_a_changed_recipe_recomputes_only_that_model(first_run, world, tmp_path):
    cfg, _ = first_run
    models = dict(MODELS)
    kwargs = {"img_size": 32, "drop_rate": 0.1}  # same weights, another entry
    models["timm_vit_tiny"] = {**MODELS["timm_vit_tiny"], "kwargs": kwargs}
    config = write_config(tmp_path / "changed.yaml", world["truth"], world["encoders"], models)
    changed = load_run_config(
        "recognition", config, world["root"] / "data", world["root"] / "weights",
        out=tmp_path / "reports", cache=cfg.cache, device="cpu", progress=False, overrides=FAST,
    )  # fmt: skip
    result = run(changed)
    assert sorted(result.computed) == [("features", d, "timm_vit_tiny") for d in ("cifar10", "dtd")]
    assert (
        read_sidecar(cfg.features_path("dtd", "timm_vit_tiny"))["recipe"]
        != read_sidecar(cfg.features_path("dtd", "tv_resnet18"))["recipe"]
    )


# ------------------------------------------------------------------ bad input: exit 2


def cli(world, tmp: Path, *, config=None, data=None, weights=None) -> list[str]:
    return [
        "run", "--task", "recognition", "--config", str(config or world["config"]),
        "--data", str(data or world["root"] / "data"),
        "--weights", str(weights or world["root"] / "weights"),
        "--device", "cpu", "--out", str(tmp / "reports"), "--cache", str(tmp / "cache"),
        "--no-progress",
    ]  # fmt: skip


def fails(world, tmp_path, capsys, **kwargs) -> str:
    assert main(cli(world, tmp_path, **kwargs)) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert not list((tmp_path / "cache").rglob("*partial*"))
    return message


def copy_data(world, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(world["root"] / "data", data)
    return data


@slow
def test_wrong_data_path(world, tmp_path, capsys):
    message = fails(world, tmp_path, capsys, data=tmp_path / "nowhere")
    assert "nowhere" in message and "--data" in message
    assert not (tmp_path / "cache").exists()


@slow
def test_missing_split_file(world, tmp_path, capsys):
    data = copy_data(world, tmp_path)
    (data / "dtd" / "dtd" / "labels" / "train1.txt").rename(
        data / "dtd" / "dtd" / "labels" / "test1.txt"
    )
    message = fails(world, tmp_path, capsys, data=data)
    assert "dtd" in message
    assert not (tmp_path / "cache").exists()


@slow
def test_empty_dataset_folder(world, tmp_path, capsys):
    data = copy_data(world, tmp_path)
    shutil.rmtree(data / "dtd" / "dtd")
    (data / "dtd" / "dtd").mkdir()
    message = fails(world, tmp_path, capsys, data=data)
    assert "dtd" in message and "empty" in message
    assert not (tmp_path / "cache").exists()


@slow
def test_batch_file_with_a_missing_key(world, tmp_path, capsys):
    data = copy_data(world, tmp_path)
    batch = data / "cifar-10-batches-py" / "data_batch_2"
    with open(batch, "rb") as stream:
        content = pickle.load(stream)
    del content["labels"]
    with open(batch, "wb") as stream:
        pickle.dump(content, stream)
    message = fails(world, tmp_path, capsys, data=data)
    assert "cifar10" in message and "labels" in message
    assert not (tmp_path / "cache").exists()


@slow
def test_undecodable_image_leaves_no_partial_cache(world, tmp_path, capsys):
    data = copy_data(world, tmp_path)
    bad = data / "dtd" / "dtd" / "images" / "dotted" / "dotted_0001.jpg"
    bad.write_bytes(b"not a jpeg")
    message = fails(world, tmp_path, capsys, data=data)
    assert "dotted_0001.jpg" in message
    assert not list((tmp_path / "cache").rglob("features/dtd/*.npy"))


@slow
def test_unknown_model_identifier(world, tmp_path, capsys):
    models = {**MODELS, "timm_resnet18": {"source": "timm", "identifier": "resnet_does_not_exist"}}
    config = write_config(tmp_path / "bad.yaml", world["truth"], world["encoders"], models)
    message = fails(world, tmp_path, capsys, config=config)
    assert "resnet_does_not_exist" in message
    assert not (tmp_path / "cache").exists()


@slow
def test_weights_of_another_architecture(world, tmp_path, capsys):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    shutil.copy(
        weights / "tv_mobilenet_v2" / "model.safetensors",
        weights / "tv_resnet18" / "model.safetensors",
    )
    message = fails(world, tmp_path, capsys, weights=weights)
    assert "tv_resnet18" in message and "another architecture" in message
    assert not list((tmp_path / "cache").rglob("*.npy"))


@slow
def test_missing_weights_names_the_files_and_the_fetch_command(world, tmp_path, capsys):
    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    (weights / "timm_vit_tiny" / "model.safetensors").unlink()
    message = fails(world, tmp_path, capsys, weights=weights)
    assert "model.safetensors" in message and "timm.create_model(" in message
    assert not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ fast checks


def test_user_truth_table_is_averaged_over_seeds(tmp_path):
    from emms.paper.score import load_truth

    truth = tmp_path / "truth.csv"
    pd.DataFrame(
        {
            "dataset": ["dtd"] * 4,
            "model": ["resnet34", "resnet34", "resnet50", "resnet50"],
            "seed": [0, 1, 0, 1],
            "test_accuracy": [0.5, 0.7, 0.8, 0.9],
        }
    ).to_csv(truth, index=False)
    cfg = load_run_config(
        "recognition", "params/paper/recognition.yaml", tmp_path, tmp_path, truth=truth,
        models=["resnet34", "resnet50"],
    )  # fmt: skip
    table, source = load_truth(cfg)
    assert "user-supplied" in source and "test_accuracy" in source
    assert table.set_index("model")["truth"].round(6).to_dict() == {
        "resnet34": 0.6,
        "resnet50": 0.85,
    }
    assert set(table["group"]) == {"cnn"}


def test_published_truth_ranks_cnns_and_vits_separately(tmp_path):
    from emms.paper.score import load_truth

    cfg = load_run_config("recognition", "params/paper/recognition.yaml", tmp_path, tmp_path)
    table, source = load_truth(cfg)
    assert "finetune_cnn_classification.csv" in source
    assert set(table["group"]) == {"cnn", "vit"}
    assert not {"dino_base", "pvtv2_b3", "swin_s"} & set(table["model"])  # not scored
    row = table[(table["dataset"] == "aircraft") & (table["model"] == "resnet34")]
    assert row["truth"].item() == 84.06


def test_config_names_are_checked(tmp_path, capsys):
    for argv, expected in (
        (["--task", "nonsense"], "unknown task"),
        (["--task", "recognition", "--models", "nope"], "'nope' is not in the zoo"),
        (["--task", "recognition", "--datasets", "squad1.1"], "not a recognition dataset"),
        (["--task", "recognition", "--config", str(tmp_path / "x.yaml")], "not found"),
    ):
        code = main(["run", *argv, "--data", str(tmp_path), "--weights", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and err.count("\n") == 1, (argv, err)


def test_check_weights_finds_missing_files_and_unknown_models(tmp_path):
    from emms.models.paper_zoo import PaperModel, UnknownModel, WeightsMissing, check_weights

    entry = PaperModel.from_dict({"name": "r18", "source": "torchvision", "identifier": "resnet18"})
    with pytest.raises(WeightsMissing, match="model.safetensors"):
        check_weights(entry, tmp_path)
    (tmp_path / "r18").mkdir()
    (tmp_path / "r18" / "model.safetensors").write_bytes(b"x")
    assert check_weights(entry, tmp_path) == tmp_path / "r18"
    bad = PaperModel.from_dict({"name": "x", "source": "timm", "identifier": "no_such_net.tag"})
    with pytest.raises(UnknownModel, match="no_such_net"):
        check_weights(bad, tmp_path)


def test_reduced_precision_that_destroyed_the_features_is_refused():
    """float16 flushed a random MobileNetV2's ~1e-9 features to zero on an H100: such a
    batch (or a non-finite one) stops the run with the precision that fixes it."""
    from types import SimpleNamespace

    from emms.paper.config import PaperRunError
    from emms.paper.extract import _check_range

    cuda, cpu = SimpleNamespace(type="cuda"), SimpleNamespace(type="cpu")
    fine = np.array([[0.0, 1e-9], [2.0, 0.0]], dtype=np.float32)
    _check_range(fine, "m on d", cuda, "float16")
    with pytest.raises(PaperRunError, match="m on d: features under float16 autocast are all zero"):
        _check_range(np.zeros((2, 3), np.float32), "m on d", cuda, "float16")
    with pytest.raises(PaperRunError, match="not finite.*--precision bfloat16"):
        _check_range(np.array([[np.inf, 1.0]], np.float32), "m on d", cuda, "bfloat16")
    _check_range(np.zeros((2, 3), np.float32), "m on d", cpu, "float16")  # CPU: float32
    _check_range(np.zeros((2, 3), np.float32), "m on d", cuda, "float32")
