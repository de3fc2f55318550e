"""The text-QA zoo's other families through the real paper-scale path: RoBERTa (byte-level
BPE, no token types), ALBERT and DeBERTa-v2 (Unigram / SentencePiece-style tokenizers,
built here with the ``tokenizers`` library since no SentencePiece model ships offline),
ELECTRA (WordPiece); each a tiny randomly initialised model of the real class, saved with
its family's tokenizer files, on the SQuAD fixture of ``test_paper_textqa.py``.

What each must do: load through ``load_model`` (the entry's ``model_type`` checked),
tokenise ``question [SEP] context`` with its own tokenizer, and give the mean of the final
hidden states over the context tokens, checked against an independent rule (the
non-special tokens after the question's own tokens), then F-labels and a score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_paper_pipeline import DEVICE, write_encoders
from test_paper_textqa import QUESTIONS, squad_json

from emms.cache import load_array
from emms.paper.config import load_run_config
from emms.paper.run import run

WIDTH = 8
MAX_LENGTH = 160  # RoBERTa's fixture tokenizer spends one token per byte
FAMILIES = {"roberta": 0, "albert": 1, "electra": 2, "deberta-v2": 3}  # model_type: seed
WORDS = sorted({w.strip(".,?").lower() for c, q, _ in QUESTIONS for w in f"{c} {q}".split()})


def _unigram_tokenizer():
    """A SentencePiece-style Unigram tokenizer over the fixture's words (whole words, then
    single characters as the fallback), with ALBERT's / DeBERTa's special tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [(t, 0.0) for t in specials] + [("▁" + w, -2.0) for w in WORDS]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,?'-"] + [("▁", -3.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=1))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return tokenizer, len(pieces)


def _write_roberta_tokenizer(folder: Path):
    """RoBERTa's byte-level BPE with one token per byte (no merges)."""
    from transformers import RobertaTokenizerFast

    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    moved = iter(range(256, 512))
    chars = [chr(b) if b in printable else chr(next(moved)) for b in range(256)]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials)} | {c: i + 5 for i, c in enumerate(chars)}
    tokenizer = RobertaTokenizerFast(vocab=vocab, merges=[])
    assert tokenizer.tokenize("a b") == ["a", "Ġ", "b"]  # not only the special tokens
    tokenizer.save_pretrained(folder)
    return len(vocab)


def write_family(model_type: str, folder: Path, seed: int) -> None:
    import torch
    from transformers import (
        AlbertConfig,
        AlbertModel,
        AlbertTokenizerFast,
        DebertaV2Config,
        DebertaV2Model,
        DebertaV2TokenizerFast,
        ElectraConfig,
        ElectraModel,
        ElectraTokenizerFast,
        RobertaConfig,
        RobertaModel,
    )

    from emms.models.flabels import minilm_path

    size = {"hidden_size": WIDTH, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 2 * WIDTH}  # fmt: skip
    torch.manual_seed(seed)
    if model_type == "roberta":
        vocab = _write_roberta_tokenizer(folder)
        RobertaModel(
            RobertaConfig(vocab_size=vocab, max_position_embeddings=MAX_LENGTH + 2, **size)
        ).save_pretrained(folder)
    elif model_type == "electra":
        ElectraTokenizerFast.from_pretrained(minilm_path()).save_pretrained(folder)
        ElectraModel(ElectraConfig(embedding_size=WIDTH, **size)).save_pretrained(folder)
    else:
        backend, vocab = _unigram_tokenizer()
        cls, config, model = {
            "albert": (AlbertTokenizerFast, AlbertConfig, AlbertModel),
            "deberta-v2": (DebertaV2TokenizerFast, DebertaV2Config, DebertaV2Model),
        }[model_type]
        cls(
            tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        ).save_pretrained(folder)  # fmt: skip
        extra = {"embedding_size": WIDTH} if model_type == "albert" else {}
        model(config(vocab_size=vocab, pad_token_id=0, **extra, **size)).save_pretrained(folder)


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("textqa_families")
    for version in ("1.1", "2.0"):
        path = root / "data" / "squad" / f"train-v{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(squad_json(version)))
    names = {t: t.replace("-", "_") + "_tiny" for t in FAMILIES}
    for model_type, seed in FAMILIES.items():
        write_family(model_type, root / "weights" / names[model_type], seed)
    encoders = write_encoders(root / "encoders")
    rows = [
        {"dataset": d, "model": names[t], "seed": s, "f1": 40.0 + 5 * k + s}
        for d in ("squad1.1", "squad2.0")
        for k, t in enumerate(FAMILIES)
        for s in (0, 1)
    ]
    pd.DataFrame(rows).to_csv(root / "truth.csv", index=False)
    config = {
        "task": "textqa",
        "models": [
            {"name": names[t], "source": "transformers", "identifier": f"tiny/{t}", "model_type": t}
            for t in FAMILIES
        ],  # fmt: skip
        "run": {
            "encoders": list(encoders),
            "encoder_dirs": encoders,
            "batch_size": 4,
            "max_length": MAX_LENGTH,
            "n_boot": 20,
            "selectors": ["emms", "logme_flabel"],
        },
    }
    (root / "textqa.yaml").write_text(yaml.safe_dump(config))
    cfg = load_run_config(
        "textqa", root / "textqa.yaml", root / "data", root / "weights",
        out=root / "reports", cache=root / "cache", device=DEVICE,
        truth=root / "truth.csv", progress=False,
    )  # fmt: skip
    return cfg, run(cfg), names


def _independent_context_mean(model, tokenizer, question, context):
    """Context tokens = the non-special tokens after the question's own tokens."""
    import torch

    pair = tokenizer(question, context, truncation="only_second", max_length=MAX_LENGTH,
                     return_special_tokens_mask=True)  # fmt: skip
    n_question = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    ordinary = [k for k, special in enumerate(pair.pop("special_tokens_mask")) if not special]
    context_positions = ordinary[n_question:]
    inputs = {k: torch.tensor([v]) for k, v in pair.items() if k in tokenizer.model_input_names}
    with torch.inference_mode():
        hidden = model(**inputs).last_hidden_state[0]
    return hidden[context_positions].mean(0).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_family_features_are_the_context_token_mean(family_run, model_type):
    from transformers import AutoModel, AutoTokenizer

    cfg, _, names = family_run
    name = names[model_type]
    features, meta = load_array(cfg.features_path("squad2.0", name))
    assert features.shape == (len(QUESTIONS), WIDTH) and meta["model"] == name
    folder = cfg.weights / name
    model = AutoModel.from_pretrained(folder).eval()
    assert model.config.model_type == model_type
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if DEVICE == "cpu" else {"rtol": 0.05, "atol": 0.05}
    for i, (context, question, _) in enumerate(QUESTIONS):
        expected = _independent_context_mean(model, tokenizer, question, context)
        np.testing.assert_allclose(features[i], expected, **tolerance)


@pytest.mark.slow
def test_the_four_families_are_scored(family_run):
    cfg, result, names = family_run
    assert set(result.scores["model"]) == set(names.values())
    scored = result.scores.dropna(subset=["score"])
    assert len(scored) == len(names) * 2 * 2  # 4 models x 2 datasets x 2 selectors
    assert np.isfinite(scored["score"]).all()
    assert result.tau["weighted_tau"].dropna().between(-1, 1).all()


def test_a_tokenizer_that_drops_the_context_is_refused_not_zeros(tmp_path):
    """A tokenizer whose vocabulary lost its pieces turns every context into no token;
    the mean over no token would be a silent row of zeros, so the run stops instead and
    writes no features file."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    from emms.paper.config import PaperRunError

    (tmp_path / "data" / "squad").mkdir(parents=True)
    for version in ("1.1", "2.0"):
        path = tmp_path / "data" / "squad" / f"train-v{version}.json"
        path.write_text(json.dumps(squad_json(version)))
    folder = tmp_path / "weights" / "roberta_tiny"
    specials = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    RobertaTokenizerFast(vocab=specials, merges=[]).save_pretrained(folder)
    config = RobertaConfig(
        vocab_size=5, hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16,
    )  # fmt: skip
    RobertaModel(config).save_pretrained(folder)
    encoders = write_encoders(tmp_path / "encoders")
    pd.DataFrame([{"dataset": "squad1.1", "model": "roberta_tiny", "seed": 0, "f1": 1.0}]).to_csv(
        tmp_path / "truth.csv", index=False
    )
    (tmp_path / "textqa.yaml").write_text(yaml.safe_dump({
        "task": "textqa",
        "models": [{"name": "roberta_tiny", "source": "transformers",
                    "identifier": "tiny/roberta", "model_type": "roberta"}],
        "run": {"encoders": list(encoders), "encoder_dirs": encoders,
                "datasets": ["squad1.1"]},
    }))  # fmt: skip
    cfg = load_run_config(
        "textqa", tmp_path / "textqa.yaml", tmp_path / "data", tmp_path / "weights",
        out=tmp_path / "reports", cache=tmp_path / "cache", device=DEVICE,
        truth=tmp_path / "truth.csv", progress=False,
    )  # fmt: skip
    with pytest.raises(PaperRunError, match=r"question 'p0q0'.*gives its context no token"):
        run(cfg)
    assert not list((tmp_path / "cache").rglob("*.npy"))
