"""Paper zoos: the YAML configs match the reference tables, identifiers exist in their
libraries, and local weights load strictly (real architectures, random weights saved to
a temporary weights folder), with readable errors for missing, wrong or unknown models."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_model

from emms.models.paper_zoo import (
    PaperModel,
    PaperZooError,
    UnknownModel,
    WeightsMismatch,
    WeightsMissing,
    check_weights,
    fetch_command,
    load_model,
    load_zoo,
    weights_root,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "data" / "reference"
TASKS = ("recognition", "captioning", "vqa", "textqa", "referring")
RELEASE_SCORED_VITS = [
    "deit_tiny",
    "deit_small",
    "deit_base",
    "dino_small",
    "mocov3_small",
    "pvtv2_b2",
    "pvt_tiny",
    "pvt_small",
    "pvt_medium",
    "swin_t",
]


def columns(csv: str) -> list[str]:
    return list(pd.read_csv(REFERENCE / csv).columns[1:])


def test_recognition_zoo_matches_the_reference_tables():
    zoo = load_zoo("recognition")
    assert [m.name for m in zoo.group("cnn")] == columns("finetune_cnn_classification.csv")
    vits = [m.name for m in zoo.group("vit")]
    assert sorted(vits) == sorted(RELEASE_SCORED_VITS)
    all_vits = columns("finetune_vit_classification.csv")
    assert set(vits) | set(zoo.groups["vit"]["not_scored"]) == set(all_vits)
    for group in ("cnn", "vit"):
        assert (REPO / zoo.groups[group]["reference"]).is_file()


def test_captioning_pairs_match_the_reference_table():
    zoo = load_zoo("captioning")
    assert list(zoo.pairs) == columns("finetune_captioning_bleu4.csv")
    for pair, members in zoo.pairs.items():
        assert pair == f"{members['encoder']}_{members['decoder']}"
        assert zoo.models[members["encoder"]].group == "encoder"
        assert zoo.models[members["decoder"]].group == "decoder"
    assert (REPO / zoo.reference).is_file()


@pytest.mark.parametrize("task", TASKS)
def test_every_identifier_exists_in_its_library(task):
    import open_clip
    import timm
    import torchvision
    import transformers

    zoo = load_zoo(task)
    assert zoo.task == task and len(zoo.models) >= 6
    pretrained = set(timm.list_pretrained())
    for model in zoo.models.values():
        if model.source == "timm":
            assert timm.is_model(model.identifier.split(".")[0]), model.identifier
            if "." in model.identifier:
                assert model.identifier in pretrained, model.identifier
        elif model.source == "torchvision":
            assert model.identifier in torchvision.models.list_models()
            enum = torchvision.models.get_model_weights(model.identifier)
            assert model.weights_tag in enum.__members__, (model.identifier, model.weights_tag)
        elif model.source == "transformers":
            assert "/" in model.identifier, model.identifier  # a Hub repo id
            assert hasattr(transformers, model.auto_class), model.auto_class
            assert model.model_type in transformers.CONFIG_MAPPING, model.model_type
        else:
            arch, tag = model.identifier.split("/")
            assert (arch, tag) in open_clip.list_pretrained()


def timm_entry(name="r18", identifier="resnet18", **kwargs) -> PaperModel:
    return PaperModel(name=name, source="timm", identifier=identifier, kwargs=kwargs)


def save(network, root: Path, name: str, file="model.safetensors") -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    save_model(network, str(root / name / file))
    return root / name / file


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("identifier", ["resnet18", "vit_tiny_patch16_224"])
def test_timm_weights_round_trip(identifier, tmp_path):
    import timm

    torch.manual_seed(0)
    original = timm.create_model(identifier, pretrained=False, num_classes=7)
    save(original, tmp_path, "m")
    entry = timm_entry("m", identifier, num_classes=7)
    loaded = load_model(entry, tmp_path)
    assert same_weights(original, loaded) and not loaded.training
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original.eval()(x))


def test_torchvision_weights_round_trip_and_pth(tmp_path):
    import torchvision

    original = torchvision.models.get_model("resnet18", weights=None)
    entry = PaperModel(name="tv", source="torchvision", identifier="resnet18")
    save(original, tmp_path, "tv")
    assert same_weights(original, load_model(entry, tmp_path))
    torch.save({"state_dict": original.state_dict()}, tmp_path / "tv" / "model.pth")
    pth = PaperModel(
        name="tv", source="torchvision", identifier="resnet18", weights_file="model.pth"
    )
    assert same_weights(original, load_model(pth, tmp_path))


def test_wrong_architecture_is_named_with_a_key_summary(tmp_path):
    import timm

    save(timm.create_model("resnet18", pretrained=False), tmp_path, "vit")
    with pytest.raises(WeightsMismatch) as info:
        load_model(timm_entry("vit", "vit_tiny_patch16_224"), tmp_path)
    message = str(info.value)
    assert "vit_tiny_patch16_224" in message and "another architecture" in message
    assert "missing from the file" in message and "cls_token" in message
    assert "unexpected in the file (122): bn1.bias" in message and "conv1.weight" in message
    # and the fix: the command that fetches the right weights into that folder
    assert f"Fix: replace what is in {tmp_path / 'vit'}" in message
    assert "timm.create_model('vit_tiny_patch16_224', pretrained=True)" in message


def test_wrong_head_shape_is_named(tmp_path):
    import timm

    save(timm.create_model("resnet18", pretrained=False, num_classes=10), tmp_path, "r18")
    with pytest.raises(
        WeightsMismatch,
        match=r"wrong shapes \(2\): .*fc.weight \(10, 512\) vs "
        r"\(1000, 512\)",
    ):
        load_model(timm_entry(), tmp_path)


def test_prefix_handling_for_foreign_checkpoints(tmp_path):
    import timm

    original = timm.create_model("resnet18", pretrained=False, num_classes=0)
    state = {f"module.base_encoder.{k}": v for k, v in original.state_dict().items()}
    state["module.base_encoder.head.0.weight"] = torch.zeros(2, 2)  # projection head
    state["module.predictor.0.weight"] = torch.zeros(2, 2)  # another network
    (tmp_path / "moco").mkdir()
    torch.save({"state_dict": state}, tmp_path / "moco" / "ckpt.pth.tar")
    entry = PaperModel(
        name="moco",
        source="timm",
        identifier="resnet18",
        kwargs={"num_classes": 0},
        weights_file="ckpt.pth.tar",
        strip_prefix="module.base_encoder.",
        drop_prefixes=("head.",),
    )
    assert same_weights(original, load_model(entry, tmp_path))
    with pytest.raises(WeightsMismatch, match="head.0.weight"):
        load_model(PaperModel(**{**entry.__dict__, "drop_prefixes": ()}), tmp_path)


def test_missing_weights_name_files_and_fetch_command(tmp_path):
    with pytest.raises(WeightsMissing) as info:
        load_model(timm_entry("deit_tiny", "deit_tiny_patch16_224.fb_in1k"), tmp_path)
    message = str(info.value)
    assert str(tmp_path / "deit_tiny" / "model.safetensors") in message
    assert "timm.create_model('deit_tiny_patch16_224.fb_in1k', pretrained=True)" in message
    assert isinstance(info.value, FileNotFoundError)
    zoo = load_zoo("recognition")
    command = fetch_command(zoo.models["resnet50"], tmp_path)
    assert "get_model('resnet50', weights='IMAGENET1K_V1')" in command
    assert command.startswith(f"mkdir -p {tmp_path / 'resnet50'}")
    hf = fetch_command(load_zoo("textqa").models["bert_base"], tmp_path)
    assert hf == f"hf download google-bert/bert-base-uncased --local-dir {tmp_path / 'bert_base'}"
    with pytest.raises(WeightsMissing, match="hf download FacebookAI/roberta-base"):
        load_model(load_zoo("textqa").models["roberta_base"], tmp_path)
    clip = PaperModel(name="g", source="open_clip", identifier="ViT-g-14/laion2b_s12b_b42k")
    with pytest.raises(WeightsMissing, match="hf download laion/CLIP-ViT-g-14-laion2B-s12B-b42K"):
        load_model(clip, tmp_path)


def test_weights_root_prefers_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("EMMS_WEIGHTS", raising=False)
    assert weights_root(load_zoo("vqa")) == Path("weights")
    monkeypatch.setenv("EMMS_WEIGHTS", str(tmp_path))
    assert weights_root(load_zoo("vqa")) == tmp_path
    with pytest.raises(WeightsMissing, match=str(tmp_path / "clip_b32")):
        load_model(load_zoo("vqa").models["clip_b32"])


def test_unknown_identifiers_and_bad_entries(tmp_path):
    with pytest.raises(UnknownModel, match="timm has no model 'resnet_9000'"):
        load_model(timm_entry("x", "resnet_9000"), tmp_path)
    with pytest.raises(UnknownModel, match="torchvision has no model 'alexnet2'"):
        load_model(PaperModel(name="x", source="torchvision", identifier="alexnet2"), tmp_path)
    with pytest.raises(UnknownModel, match="open_clip has no architecture 'ViT-zz'"):
        load_model(PaperModel(name="x", source="open_clip", identifier="ViT-zz/none"), tmp_path)
    with pytest.raises(UnknownModel, match="open_clip has no architecture 'ViT-zz'"):
        check_weights(PaperModel(name="x", source="open_clip", identifier="ViT-zz/none"), tmp_path)
    with pytest.raises(UnknownModel, match="unknown source 'keras'"):
        PaperModel.from_dict({"name": "x", "source": "keras", "identifier": "y"})
    with pytest.raises(PaperZooError, match="unknown fields"):
        PaperModel.from_dict({"name": "x", "source": "timm", "identifier": "y", "wieghts": 1})
    bad = tmp_path / "zoo.yaml"
    bad.write_text(
        "task: t\nmodels:\n - {name: a, source: timm, identifier: resnet18}\n"
        " - {name: a, source: timm, identifier: resnet34}\n"
    )
    with pytest.raises(PaperZooError, match="listed twice"):
        load_zoo(bad)


def tiny_bert(layers=2, hidden=32):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=99,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=37,
        )
    )


def bert_entry(**extra) -> PaperModel:
    return PaperModel(
        name="bert",
        source="transformers",
        identifier="google-bert/bert-base-uncased",
        model_type="bert",
        **extra,
    )


def test_transformers_local_round_trip_and_mismatches(tmp_path):
    from transformers import GPT2Config, GPT2Model

    original = tiny_bert()
    original.save_pretrained(tmp_path / "bert")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ignored tensors: exact architecture
        loaded = load_model(bert_entry(), tmp_path)
    assert same_weights(original, loaded)

    # three layers in the config, two in the weights: missing tensors
    tiny_bert(layers=3).config.to_json_file(tmp_path / "bert" / "config.json")
    with pytest.raises(WeightsMismatch, match=r"missing from the file.*layer\.2"):
        load_model(bert_entry(), tmp_path)

    # a GPT-2 checkpoint in BERT's folder
    GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50)).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(WeightsMismatch, match="is a 'gpt2' model, but 'bert'"):
        load_model(bert_entry(), tmp_path)


def test_transformers_wrong_sizes(tmp_path):
    tiny_bert(hidden=64).save_pretrained(tmp_path / "bert")
    tiny_bert(hidden=32).config.to_json_file(tmp_path / "bert" / "config.json")
    with pytest.raises(WeightsMismatch, match="bert"):
        load_model(bert_entry(), tmp_path)


def test_docs_zoo_table_is_generated_from_the_configs(tmp_path):
    from emms.models.paper_zoo import BEGIN, END, render_zoo_table, write_zoo_table

    table = render_zoo_table()
    rows = table.splitlines()[2:]
    assert len(rows) == sum(len(load_zoo(t).models) for t in TASKS)
    assert "| recognition | `resnet50` | cnn | torchvision | `resnet50 (IMAGENET1K_V1)` |" in table
    docs = (REPO / "docs" / "paper-scale.md").read_text()
    assert f"{BEGIN}\n{table}{END}" in docs, "run `python -m emms.models.paper_zoo docs`"
    copy = tmp_path / "doc.md"
    copy.write_text(f"a\n{BEGIN}\nold\n{END}\nb\n")
    assert write_zoo_table(copy) and copy.read_text() == f"a\n{BEGIN}\n{table}{END}\nb\n"


@pytest.mark.parametrize("task", TASKS)
def test_fetch_commands_are_well_formed(task, tmp_path):
    for model in load_zoo(task).models.values():
        command = fetch_command(model, tmp_path)
        assert str(tmp_path / model.name) in command, command
        if 'python -c "' in command:
            code = command.split('python -c "', 1)[1].rstrip('"')
            compile(code, model.name, "exec")  # a valid Python line
            assert "pretrained=True" in code or "weights='IMAGENET1K_V1'" in code
        elif model.fetch:
            assert "MoCo v3" in command
        else:
            assert command.startswith(f"hf download {model.identifier} --local-dir ")
