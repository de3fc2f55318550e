"""Paper-scale text-QA ground truth (``python -m emms.paper finetune --task textqa``).

On the SQuAD fixtures and the tiny random zoo of ``test_paper_textqa``: the training
windows point at the answer text, the span search equals a brute-force one, an oracle
model scores 100 and an always-"no answer" model scores the unanswerable share (the
metric's known bounds), fine-tuning is seeded, the table is the one ``run --truth``
reads, finished fine-tunes are not redone, and bad configs are named."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_paper_pipeline import DEVICE  # EMMS_TEST_DEVICE=cuda: the same tests on a GPU
from test_paper_textqa import MODELS, squad_json, write_models, zoo_entries

from emms.datasets.paper import read_paper_dataset
from emms.paper import load_run_config
from emms.paper.__main__ import main
from emms.paper.config import PaperRunError
from emms.paper.text_extract import load_tokenizer
from emms.paper.text_finetune import (
    FinetuneRecipe,
    best_spans,
    encode_windows,
    load_recipe,
    predict_answers,
    score_answers,
)

MAX_LENGTH = 40  # short windows: several contexts need two or more
STRIDE = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_textqa_finetune")
    for version in ("1.1", "2.0"):
        for split in ("train", "dev"):
            path = root / "data" / "squad" / f"{split}-v{version}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(squad_json(version)))
    write_models(root / "weights")
    config = {
        "task": "textqa",
        "models": zoo_entries(),
        # on a GPU the fine-tunes run under bfloat16 autocast, the path real runs take
        "run": {
            "batch_size": 4,
            "max_length": MAX_LENGTH,
            "precision": "float32" if DEVICE == "cpu" else "bfloat16",
        },
        "finetune": {
            "doc_stride": STRIDE,
            "seeds": [0, 1],
            "schedule": {
                "squad1.1": {"epochs": 1, "batch_size": 8},
                "squad2.0": {"epochs": 1, "batch_size": 8},
            },
        },
    }
    path = root / "textqa.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"root": root, "config": path, "raw": config}


def config_for(world, **kwargs):
    return load_run_config(
        "textqa",
        kwargs.pop("config", world["config"]),
        world["root"] / "data",
        world["root"] / "weights",
        cache=kwargs.pop("cache", world["root"] / "cache"),
        device=DEVICE,
        progress=False,
        **kwargs,
    )


def windows_of(world, dataset="squad2.0", model="bert_l2"):
    cfg = config_for(world)
    tokenizer = load_tokenizer(cfg.zoo.models[model], cfg)
    record = read_paper_dataset(dataset, cfg.data, split="dev")
    windows = encode_windows(tokenizer, record, np.arange(len(record.ids)), MAX_LENGTH, STRIDE)
    return cfg, tokenizer, record, windows


def test_training_windows_point_at_the_answer_text(world):
    _, _, record, windows = windows_of(world)
    questions = windows["question"].numpy()
    assert len(questions) > len(record.ids)  # some contexts span several windows
    for q in range(len(record.ids)):
        mine = np.flatnonzero(questions == q)
        targets = [(int(windows["start"][w]), int(windows["end"][w])) for w in mine]
        if record.is_impossible[q]:
            assert targets == [(0, 0)] * len(mine)
            continue
        inside = [(w, t) for w, t in zip(mine, targets, strict=True) if t != (0, 0)]
        assert inside, f"question {record.ids[q]}: no window holds its answer"
        for w, (start, end) in inside:
            offsets = windows["offsets"][w]
            text = record.contexts[q][int(offsets[start, 0]) : int(offsets[end, 1])]
            assert text == record.answers[q][0].text
            assert windows["context"][w, start] and windows["context"][w, end]


def test_span_search_equals_brute_force():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, 5, 12)).astype(np.float32)
    context = rng.random((5, 12)) < 0.7
    context[:, 0] = False
    context[:, 3] = True
    score, s, e, null = best_spans(
        torch.from_numpy(start), torch.from_numpy(end), torch.from_numpy(context), 4
    )
    for w in range(5):
        pairs = [
            (start[w, i] + end[w, j], i, j)
            for i, j in itertools.product(range(12), repeat=2)
            if context[w, i] and context[w, j] and i <= j < i + 4
        ]
        best = max(pairs)
        assert float(score[w]) == pytest.approx(best[0])
        assert (int(s[w]), int(e[w])) == best[1:]
        assert float(null[w]) == pytest.approx(start[w, 0] + end[w, 0])


class _Scripted(torch.nn.Module):
    """Logits that favour each window's training target (the oracle) or [CLS] always."""

    def __init__(self, windows, oracle: bool):
        super().__init__()
        self.index = {tuple(row.tolist()): w for w, row in enumerate(windows["input_ids"])}
        self.windows, self.oracle = windows, oracle

    def forward(self, input_ids, **_):
        rows = [self.index[tuple(r.tolist())] for r in input_ids]
        start = torch.full(input_ids.shape, -10.0)
        end = torch.full(input_ids.shape, -10.0)
        for b, w in enumerate(rows):
            s, e = (int(self.windows["start"][w]), int(self.windows["end"][w]))
            s, e = (s, e) if self.oracle else (0, 0)
            start[b, s], end[b, e] = 10.0, 10.0
        return SimpleNamespace(start_logits=start, end_logits=end)


@pytest.mark.parametrize("dataset", ["squad1.1", "squad2.0"])
def test_oracle_scores_100_and_always_null_scores_the_unanswerable_share(world, dataset):
    cfg, tokenizer, record, windows = windows_of(world, dataset)
    recipe = FinetuneRecipe(doc_stride=STRIDE)
    accepted = set(tokenizer.model_input_names)
    with_null = dataset == "squad2.0"
    for oracle, expected in ((True, 100.0), (False, 100.0 * record.is_impossible.mean())):
        predictions = predict_answers(
            _Scripted(windows, oracle), windows, record, recipe, accepted, torch.device("cpu"),
            batch_size=3, with_null=with_null,
        )  # fmt: skip
        scores = score_answers(record, predictions)
        assert scores["f1"] == pytest.approx(expected)
        assert scores["exact_match"] == pytest.approx(expected)
    assert with_null == bool(record.is_impossible.any())


@pytest.mark.slow
def test_finetuning_writes_the_truth_table_and_resumes(world, tmp_path, monkeypatch):
    out = tmp_path / "truth.csv"
    cache = tmp_path / "cache"
    root = world["root"]
    args = ["finetune", "--task", "textqa", "--config", str(world["config"]),
            "--data", str(root / "data"), "--weights", str(root / "weights"), "--out", str(out),
            "--cache", str(cache), "--device", DEVICE, "--no-progress"]  # fmt: skip
    assert main(args) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["dataset", "model", "seed", "f1", "exact_match"]
    assert len(table) == 2 * len(MODELS) * 2  # datasets x models x seeds
    assert table[["f1", "exact_match"]].apply(lambda c: c.between(0, 100)).all().all()
    assert (table.exact_match <= table.f1 + 1e-9).all()
    # the table `run --truth` reads: F1 (the fourth column) is the truth, mean over seeds
    from emms.paper.score import load_truth

    truth, source = load_truth(config_for(world, truth=out))
    assert "(f1, mean over seeds)" in source
    expected = table.groupby(["dataset", "model"])["f1"].mean()
    for _, row in truth.iterrows():
        assert row["truth"] == pytest.approx(expected[(row["dataset"], row["model"])])
    # seeded: rerunning one fine-tune gives the same numbers
    from emms.paper import text_finetune

    cfg = config_for(world, cache=cache)
    one = table[(table.dataset == "squad2.0") & (table.model == "bert_l1") & (table.seed == 1)]
    again = text_finetune.finetune_model(
        cfg.zoo.models["bert_l1"], cfg, load_recipe(cfg),
        read_paper_dataset("squad2.0", cfg.data, split="train"),
        read_paper_dataset("squad2.0", cfg.data, split="dev"),
        dataset="squad2.0", seed=1, device=torch.device(DEVICE),
    )  # fmt: skip
    # CUDA's atomics-based kernels (warn_only determinism) may round differently per run
    assert again["f1"] == pytest.approx(float(one.f1.iloc[0]), abs=1e-6 if DEVICE == "cpu" else 5)
    cached = json.loads(next((cache / "paper" / "textqa" / "truth").rglob("*.json")).read_text())
    assert cached["device"] == DEVICE
    # resumed: nothing is fine-tuned again, the same table comes back
    monkeypatch.setattr(text_finetune, "finetune_model", lambda *a, **k: pytest.fail("retrained"))
    assert main(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), table)


def test_a_stride_the_window_cannot_hold_is_named(world):
    cfg, tokenizer, record, _ = windows_of(world)
    with pytest.raises(PaperRunError, match=r"question 'p0q0': the question leaves \d+ context"):
        encode_windows(tokenizer, record, np.arange(len(record.ids)), MAX_LENGTH, 30)


def test_bad_finetune_configs_are_named(world, tmp_path):
    def config_with(**finetune):
        raw = json.loads(json.dumps(world["raw"]))
        raw["finetune"] |= finetune
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_recipe(config_for(world, config=path))

    with pytest.raises(PaperRunError, match=r"finetune\.lrate: Extra inputs"):
        config_with(lrate=1e-4)
    with pytest.raises(PaperRunError, match=r"no epochs/batch_size for \['squad2.0'\]"):
        config_with(schedule={"squad1.1": {"epochs": 1, "batch_size": 8}})
    with pytest.raises(PaperRunError, match=r"finetune\.lr: Input should be greater than 0"):
        config_with(lr=0)


def test_finetuning_refuses_a_task_with_a_published_table(world, capsys):
    args = ["finetune", "--task", "recognition", "--data", str(world["root"] / "data"),
            "--weights", str(world["root"] / "weights"), "--out", "x.csv"]  # fmt: skip
    assert main(args) == 2
    assert "ground truth is the paper's published table" in capsys.readouterr().err


def test_float16_fine_tuning_on_a_gpu_is_refused(world, tmp_path, monkeypatch):
    """float16 autocast without loss scaling would underflow gradients: refused before
    anything is trained (the device is faked; the check precedes any CUDA call)."""
    from emms.paper import extract
    from emms.paper.text_finetune import run_finetuning

    monkeypatch.setattr(extract, "resolve_device", lambda name: torch.device("cuda"))
    cfg = config_for(world, overrides={"precision": "float16"}, cache=tmp_path)
    with pytest.raises(PaperRunError, match="float16 autocast needs loss scaling"):
        run_finetuning(cfg, tmp_path / "truth.csv")
    assert not (tmp_path / "truth.csv").exists()
