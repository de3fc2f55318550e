"""Paper-scale VQA ground truth (``python -m emms.paper finetune --task vqa``).

On the COCO-QA fixture and the tiny random zoo of ``test_paper_vqa`` (ViLT, BLIP, CLIP,
SigLIP): the accuracy has its known bounds, the answer vocabulary is the training
answers by frequency, every model can fit a question-determined answer set (the head
learns from the joint representation, not from nothing), fine-tuning is seeded (a dropout
mask depends on the seed alone), the table is the one ``run --truth`` reads, finished
fine-tunes are not redone, and bad configs are named."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml
from test_paper_pipeline import DEVICE
from test_paper_vqa import MODELS, write_cocoqa, write_models

from emms.paper import load_run_config
from emms.paper.__main__ import main
from emms.paper.config import PaperRunError
from emms.paper.finetune import seeded
from emms.paper.vqa_finetune import accuracy, answer_vocabulary, load_recipe
from emms.tasks import get_task

slow = pytest.mark.slow

RECIPE = {
    "lr": 1.0e-3,
    "head_lr_mult": 10,
    "epochs": 40,
    "batch_size": 4,
    "seeds": [0, 1],
    # scored on the training questions: whether a model can fit them at all
    "eval_split": {"cocoqa": "train"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_vqa_finetune")
    write_cocoqa(root / "data")
    write_models(root / "weights")
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
            "batch_size": 4,
            "max_length": 16,
            "precision": "float32" if DEVICE == "cpu" else "bfloat16",
        },  # fmt: skip
        "finetune": RECIPE,
    }
    path = root / "vqa.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"root": root, "config": path, "raw": config}


def config_for(world, **kwargs):
    return load_run_config(
        "vqa",
        kwargs.pop("config", world["config"]),
        world["root"] / "data",
        world["root"] / "weights",
        cache=kwargs.pop("cache", world["root"] / "cache"),
        device=DEVICE,
        progress=False,
        **kwargs,
    )


def test_accuracy_bounds_and_normalisation():
    gold = ["red", "two", "Cake ", "couch"]
    assert accuracy(["red", "two", "cake", "couch"], gold) == 1.0
    assert accuracy(["blue"] * 4, gold) == 0.0
    assert accuracy(["RED", "three", "cake", "sofa"], gold) == 0.5
    with pytest.raises(ValueError):
        accuracy(["red"], gold)  # one prediction per question


def test_answer_vocabulary_is_the_training_answers_by_frequency():
    answers = ["two", "red", "Red", "cake", "two", "red "]
    assert answer_vocabulary(answers) == ["red", "two", "cake"]
    assert answer_vocabulary(answers, max_answers=2) == ["red", "two"]


def test_a_dropout_mask_depends_on_the_seed_alone():
    device = torch.device("cpu")
    masks = []
    for warm_up in (0, 5):
        torch.rand(warm_up)  # whatever ran before in the process
        with seeded(3, device):
            masks.append(torch.nn.functional.dropout(torch.ones(50), 0.5))
    assert torch.equal(masks[0], masks[1])
    with seeded(4, device):
        assert not torch.equal(torch.nn.functional.dropout(torch.ones(50), 0.5), masks[0])


@pytest.fixture(scope="module")
def truth(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("truth") / "vqa_truth.csv"
    args = ["finetune", "--task", "vqa", "--config", str(world["config"]),
            "--data", str(world["root"] / "data"), "--weights", str(world["root"] / "weights"),
            "--out", str(out), "--cache", str(world["root"] / "cache"),
            "--device", DEVICE, "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return out, args


@slow
def test_every_model_fits_questions_whose_answer_the_question_decides(truth, world):
    """Five question texts, each with one answer: a model whose head reads the question
    through the joint representation fits them (the majority answer alone scores 0.2,
    and so does a representation that ignores the question)."""
    table = pd.read_csv(truth[0])
    assert tuple(table.columns) == get_task("vqa").truth_columns
    assert len(table) == len(MODELS) * len(RECIPE["seeds"])
    assert set(table["model"]) == set(MODELS)
    assert table["vqa_accuracy"].between(0, 1).all()
    # every run at least 2.5x the majority answer's 0.2 (measured 0.7-1.0; the tiny
    # one-layer ViLT's [CLS] barely varies with its input at initialisation, so it is
    # the slowest to fit)
    assert (table["vqa_accuracy"] >= 0.5).all(), table
    assert (table.groupby("model")["vqa_accuracy"].max() >= 0.7).all(), table
    # the table `run --truth` reads: the mean accuracy over seeds
    from emms.paper.score import load_truth

    read, source = load_truth(config_for(world, truth=truth[0]))
    assert "(vqa_accuracy, mean over seeds)" in source
    mean = table.groupby("model")["vqa_accuracy"].mean()
    assert dict(zip(read["model"], read["truth"], strict=True)) == pytest.approx(mean.to_dict())


@slow
def test_finished_fine_tunes_are_read_back_and_a_new_recipe_reruns(truth, world, monkeypatch):
    from emms.paper import vqa_finetune

    out, args = truth
    first = pd.read_csv(out)

    def refuse(*_, **__):
        raise AssertionError("a cached fine-tune was redone")

    monkeypatch.setattr(vqa_finetune, "finetune_vqa_model", refuse)
    assert main(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), first)

    changed = {**world["raw"], "finetune": {**RECIPE, "epochs": 1, "seeds": [0]}}
    path = world["root"] / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    calls = []
    monkeypatch.setattr(
        vqa_finetune, "finetune_vqa_model", lambda *a, **k: calls.append(1) or {"vqa_accuracy": 0.5}
    )
    elsewhere = [*args[:3], "--config", str(path), *args[5:]]
    elsewhere[elsewhere.index("--out") + 1] = str(world["root"] / "changed.csv")
    assert main(elsewhere) == 0
    assert len(calls) == len(MODELS)


@slow
def test_the_same_seed_gives_the_same_accuracy(world, truth, tmp_path):
    """A fresh cache, seed 1 alone (seed 0 not run before it): the same numbers."""
    single = {**world["raw"], "models": world["raw"]["models"][:2],
              "finetune": {**RECIPE, "seeds": [1]}}  # fmt: skip
    path = tmp_path / "seed1.yaml"
    path.write_text(yaml.safe_dump(single))
    from emms.paper.vqa_finetune import run_finetuning

    again = run_finetuning(config_for(world, config=path, cache=tmp_path / "c"), tmp_path / "t.csv")
    before = pd.read_csv(truth[0]).set_index(["model", "seed"])["vqa_accuracy"]
    for _, row in again.iterrows():
        expected = before[(row["model"], 1)]
        assert row["vqa_accuracy"] == pytest.approx(expected, abs=1e-6)  # 6 decimals in the CSV


def test_bad_recipes_are_named(world, tmp_path):
    def config_with(**finetune):
        raw = {**world["raw"], "finetune": {**RECIPE, **finetune}}
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_recipe(config_for(world, config=path))

    with pytest.raises(PaperRunError, match=r"finetune\.head_lr: Extra inputs"):
        config_with(head_lr=1e-3)
    with pytest.raises(PaperRunError, match=r"no evaluation split for \['cocoqa'\]"):
        config_with(eval_split={"clevr": "val"})
    with pytest.raises(PaperRunError, match=r"finetune\.epochs: Input should be greater than 0"):
        config_with(epochs=0)


def test_a_model_without_a_vqa_rule_stops_before_training(world, tmp_path, capsys):
    import json

    weights = tmp_path / "weights"
    weights.mkdir()
    for name in MODELS:
        (weights / name).symlink_to(world["root"] / "weights" / name)
    folder = weights / "vilt"
    folder.unlink()
    folder.mkdir()
    for item in (world["root"] / "weights" / "vilt").iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "config.json").unlink()
    config = json.loads((world["root"] / "weights" / "vilt" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    args = ["finetune", "--task", "vqa", "--config", str(world["config"]),
            "--data", str(world["root"] / "data"), "--weights", str(weights),
            "--out", str(tmp_path / "t.csv"), "--cache", str(tmp_path / "cache"),
            "--device", DEVICE, "--no-progress"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "'vilt' is a 'bert' model" in err
    assert not (tmp_path / "cache").exists()


def test_the_shipped_recipe_is_vilts_and_the_defaults():
    from emms.paper.vqa_finetune import VQARecipe

    shipped = yaml.safe_load(open("params/paper/vqa.yaml"))["finetune"]
    assert VQARecipe.model_validate(shipped) == VQARecipe()
    assert (shipped["lr"], shipped["head_lr_mult"], shipped["epochs"], shipped["batch_size"]) == (
        1e-4, 10, 10, 256,
    )  # fmt: skip
