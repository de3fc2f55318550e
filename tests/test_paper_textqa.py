"""Smoke run of the paper-scale text-QA path (``python -m emms.paper run --task textqa``).

Fixtures in the real formats: ``squad/train-v1.1.json`` and ``squad/train-v2.0.json``
(official keys, unanswerable questions in 2.0); the real architectures of the text zoo,
randomly initialised and tiny (two BERTs of different depth, a DistilBERT: no token
types), saved with real tokenizer files; the F-label encoders of the recognition smoke
test (tiny BERT and GPT-2); truth from a user table (``--truth``), as a task without a
published table needs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_paper_pipeline import DEVICE, write_encoders  # a sibling test module

from emms.cache import load_array, read_sidecar
from emms.paper import load_run_config
from emms.paper.__main__ import main
from emms.paper.labels import label_texts
from emms.paper.run import run

slow = pytest.mark.slow

#: (paragraph, answers: spans of it, unanswerable questions). Each answer becomes a cloze
#: question: the sentence that holds it, the answer replaced by "what".
PARAGRAPHS = [
    (
        "The interpreter reads a module once and caches the compiled code in a folder "
        "named after the module. A later import loads the cached file when it is newer.",
        ["module", "folder", "the cached file", "newer"],
        ["Who signs the compiled code?"],
    ),
    (
        "A generator function returns an iterator. Each call of next resumes the body "
        "until the following yield expression, which hands a value back to the caller.",
        ["an iterator", "the body", "a value", "the caller"],
        ["How much memory does a generator use?"],
    ),
    (
        "Exceptions propagate up the call stack until a handler matches their class. An "
        "unhandled exception prints a traceback and ends the program with status one.",
        ["the call stack", "a handler", "a traceback", "status one"],
        ["Which exception is the fastest?"],
    ),
    (
        "A dictionary maps hashable keys to values. Since version three point seven it "
        "keeps the order in which the keys were inserted.",
        ["hashable keys", "values", "the order", "version three point seven"],
        ["Who invented the dictionary?"],
    ),
]


def questions(context: str, answers: list[str], unanswerable: list[str]):
    """[(question, answer or None)] of one paragraph."""
    sentences = [s.strip() for s in context.split(". ") if s.strip()]
    out = []
    for answer in answers:
        sentence = next(s for s in sentences if answer in s).rstrip(".")
        out.append((sentence.replace(answer, "what", 1) + "?", answer))
    return out + [(q, None) for q in unanswerable]


QUESTIONS = [(c, q, a) for c, answers, no in PARAGRAPHS for q, a in questions(c, answers, no)]

#: hidden size of the tiny zoo: under the 16 answerable questions (no exact fit)
WIDTH = 8
MAX_LENGTH = 40  # cuts some contexts: the truncation path runs

MODELS = {
    "bert_l2": {"model_type": "bert", "layers": 2, "seed": 0},
    "bert_l1": {"model_type": "bert", "layers": 1, "seed": 1},
    "distilbert_l2": {"model_type": "distilbert", "layers": 2, "seed": 2},
}


def zoo_entries() -> list[dict]:
    """The tiny zoo as entries of a paper-scale config (``models:``)."""
    return [
        {
            "name": n,
            "source": "transformers",
            "identifier": f"tiny/{n}",
            "model_type": s["model_type"],
        }
        for n, s in MODELS.items()
    ]


def squad_json(version: str) -> dict:
    """The fixture paragraphs in the official schema (2.0 keeps the unanswerable ones)."""
    paragraphs = []
    for p, (context, answers, unanswerable) in enumerate(PARAGRAPHS):
        qas = []
        for q, (question, answer) in enumerate(questions(context, answers, unanswerable)):
            qa = {"id": f"p{p}q{q}", "question": question}
            if answer is None and version == "1.1":
                continue
            if answer is None:
                qa |= {"answers": [], "is_impossible": True, "plausible_answers": []}
            else:
                qa["answers"] = [{"text": answer, "answer_start": context.index(answer)}]
                if version == "2.0":
                    qa["is_impossible"] = False
            qas.append(qa)
        paragraphs.append({"context": context, "qas": qas})
    return {"version": version, "data": [{"title": "Python_docs", "paragraphs": paragraphs}]}


def write_models(root: Path) -> None:
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertModel,
        DistilBertTokenizerFast,
    )

    from emms.models.flabels import minilm_path

    for name, spec in MODELS.items():
        torch.manual_seed(spec["seed"])
        if spec["model_type"] == "bert":
            config = BertConfig(
                hidden_size=WIDTH,
                num_hidden_layers=spec["layers"],
                num_attention_heads=2,
                intermediate_size=2 * WIDTH,
            )
            model, tokenizer = BertModel(config), BertTokenizerFast
        else:
            config = DistilBertConfig(
                dim=WIDTH, n_layers=spec["layers"], n_heads=2, hidden_dim=2 * WIDTH
            )
            model, tokenizer = DistilBertModel(config), DistilBertTokenizerFast
        model.save_pretrained(root / name)
        tokenizer.from_pretrained(minilm_path()).save_pretrained(root / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_textqa")
    for version in ("1.1", "2.0"):
        path = root / "data" / "squad" / f"train-v{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(squad_json(version)))
    write_models(root / "weights")
    encoders = write_encoders(root / "encoders")
    # one F1 per (dataset, model, seed): deeper is better, two seeds each
    rows = [
        {"dataset": d, "model": m, "seed": s, "f1": f1 + s}
        for d in ("squad1.1", "squad2.0")
        for m, f1 in zip(MODELS, (62.0, 48.0, 55.0), strict=True)
        for s in (0, 1)
    ]
    truth = root / "truth.csv"
    pd.DataFrame(rows).to_csv(truth, index=False)
    config = {
        "task": "textqa",
        "models": zoo_entries(),
        "run": {
            "encoders": list(encoders),
            "encoder_dirs": encoders,
            "batch_size": 4,
            "max_length": MAX_LENGTH,
            "n_boot": 50,
        },
    }
    path = root / "textqa.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"root": root, "config": path, "truth": truth, "encoders": encoders}


def config_for(world, tmp: Path, **kwargs):
    return load_run_config(
        "textqa",
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


@slow
def test_features_are_the_context_token_mean_of_each_question(first_run, world):
    """Independent of the runner's batching, padding and sequence_ids: one question at a
    time, context tokens found as those strictly between the first and the last [SEP]."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    cfg, _ = first_run
    for name in MODELS:
        features, meta = load_array(cfg.features_path("squad2.0", name))
        assert meta["model"] == name and meta["max_length"] == MAX_LENGTH
        assert meta["device"].split(":")[0] == DEVICE.split(":")[0]
        # on CUDA the features come from bfloat16 autocast (8 bits of mantissa)
        tolerance = (
            {"rtol": 1e-4, "atol": 1e-5} if DEVICE == "cpu" else {"rtol": 0.05, "atol": 0.05}
        )
        folder = world["root"] / "weights" / name
        model = AutoModel.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert features.shape == (len(QUESTIONS), WIDTH)
        for i, (context, question, _) in enumerate(QUESTIONS):
            ids = tokenizer(question, context, truncation="only_second", max_length=MAX_LENGTH)
            seps = [k for k, t in enumerate(ids["input_ids"]) if t == tokenizer.sep_token_id]
            inputs = {k: torch.tensor([v]) for k, v in ids.items()}
            with torch.inference_mode():
                hidden = model(**inputs).last_hidden_state[0]
            expected = hidden[seps[0] + 1 : seps[-1]].mean(0).numpy()
            np.testing.assert_allclose(features[i], expected, **tolerance)


@slow
def test_flabels_embed_question_and_answer_and_no_answer(first_run):
    cfg, _ = first_run
    from emms.datasets.paper import read_paper_dataset

    record = read_paper_dataset("squad2.0", cfg.data)
    texts = label_texts(record, np.arange(len(record)), cfg)
    assert texts[0] == "Q: The interpreter reads a what once and caches the compiled code in a " \
        "folder named after the module? A: module"  # fmt: skip
    assert texts[4] == "Q: Who signs the compiled code? A: no answer"
    assert sum(t.endswith("A: no answer") for t in texts) == 4 and len(texts) == 20
    for encoder in cfg.encoders:
        flabels, meta = load_array(cfg.flabels_path("squad2.0", encoder))
        assert flabels.shape[0] == len(record) and meta["task"] == "textqa"
    v11 = read_paper_dataset("squad1.1", cfg.data)
    assert len(v11) == 16
    assert not any(t.endswith("no answer") for t in label_texts(v11, np.arange(16), cfg))


@slow
def test_report_ranks_the_text_zoo_with_the_flabel_selectors(first_run):
    cfg, result = first_run
    tau = result.tau
    assert set(tau["dataset"]) == {"squad1.1", "squad2.0"}
    assert {"emms", "logme_flabel"} <= set(tau["selector"])
    assert "logme" not in set(tau["selector"])  # class-label selectors do not apply
    assert tau["weighted_tau"].notna().all() and tau["weighted_tau"].between(-1, 1).all()
    scores = result.scores
    assert (scores["error"] == "").all()
    assert len(scores) == len(MODELS) * 2 * tau["selector"].nunique()
    report = result.report.read_text()
    assert "user-supplied fine-tuning table" in report and "f1, mean over seeds" in report
    assert "| published (Meng et al., 2023" in report and "| 12.2 |" in report


@slow
def test_second_run_recomputes_nothing(first_run):
    cfg, _ = first_run
    before = {p: p.stat().st_mtime_ns for p in sorted(cfg.cache.rglob("*.npy"))}
    again = run(cfg)
    assert again.computed == [] and len(again.reused) == len(before)
    assert {p: p.stat().st_mtime_ns for p in sorted(cfg.cache.rglob("*.npy"))} == before


@slow
def test_a_changed_max_length_recomputes_the_features(first_run, tmp_path):
    import shutil

    cfg, _ = first_run
    shutil.copytree(cfg.cache, tmp_path / "cache")
    changed = replace(
        cfg, cache=tmp_path / "cache", out=tmp_path, max_length=MAX_LENGTH - 4, selectors=["emms"]
    )
    cfg = changed
    result = run(changed)
    assert sorted(c for c in result.computed if c[0] == "features") == sorted(
        ("features", d, m) for d in ("squad1.1", "squad2.0") for m in MODELS
    )
    assert read_sidecar(cfg.features_path("squad1.1", "bert_l2"))["max_length"] == MAX_LENGTH - 4


def _cli(world, tmp_path, *extra):
    return [
        "run", "--task", "textqa", "--config", str(world["config"]),
        "--data", str(world["root"] / "data"), "--truth", str(world["truth"]),
        "--out", str(tmp_path / "reports"), "--cache", str(tmp_path / "cache"),
        "--no-progress", *extra,
    ]  # fmt: skip


@slow
def test_missing_tokenizer_names_the_files_and_the_fetch_command(world, tmp_path, capsys):
    import shutil

    weights = tmp_path / "weights"
    shutil.copytree(world["root"] / "weights", weights)
    for f in weights.glob("bert_l1/*token*"):
        f.unlink()
    assert main(_cli(world, tmp_path, "--weights", str(weights))) == 2
    error = capsys.readouterr().err
    assert "'bert_l1'" in error and "tokenizer" in error and "hf download tiny/bert_l1" in error
    assert not (tmp_path / "cache").exists()


@slow
def test_a_question_that_fills_max_length_is_refused(world, tmp_path, capsys):
    config = yaml.safe_load(world["config"].read_text())
    config["run"]["max_length"] = 8
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(config))
    args = _cli(world, tmp_path, "--weights", str(world["root"] / "weights"))
    args[args.index("--config") + 1] = str(path)
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "no context token is left" in error and "raise run.max_length" in error
    assert not list((tmp_path / "cache").rglob("*.npy"))


@slow
def test_truncated_contexts_are_counted(first_run):
    cfg, _ = first_run
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.weights / "bert_l2")
    longer = sum(len(tokenizer(q, c)["input_ids"]) > MAX_LENGTH for c, q, _ in QUESTIONS)
    assert longer > 0  # the fixture exercises truncation at max_length 48
    assert read_sidecar(cfg.features_path("squad2.0", "bert_l2"))["truncated"] == longer


@slow
def test_flabel_encoder_without_tokenizer_files_is_refused(world, tmp_path, capsys):
    import shutil

    encoder = tmp_path / "tiny-bert"
    shutil.copytree(world["encoders"]["bert-large-uncased"], encoder)
    for f in [*encoder.glob("*token*"), encoder / "vocab.txt"]:
        f.unlink()
    config = yaml.safe_load(world["config"].read_text())
    config["run"]["encoder_dirs"]["bert-large-uncased"] = str(encoder)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    args = _cli(world, tmp_path, "--weights", str(world["root"] / "weights"))
    args[args.index("--config") + 1] = str(path)
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "'bert-large-uncased'" in error and "tokenizer.json" in error
    assert f"--local-dir {encoder}" in error and not (tmp_path / "cache").exists()
