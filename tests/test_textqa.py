"""The text-QA task: span labels found token by token, predictions that are spans of the
context, deterministic fine-tuning, features over the context tokens, F-label texts."""

import numpy as np
import pytest
import torch

from emms.datasets.squad import QAExample
from emms.models import text_zoo
from emms.models.text_features import extract_features
from emms.models.text_finetune import finetune
from emms.tasks import TargetData, get_task

CONTEXT = 'The "assert" statement inserts debugging assertions into a program at run time.'


def _examples():
    out = []
    for i, answer in enumerate(["assertions", "debugging assertions into a program", "run time"]):
        start = CONTEXT.index(answer)
        words = CONTEXT[:start].split()[-5:] + ["____"] + CONTEXT[start + len(answer) :].split()[:5]
        out.append(QAExample(f"q{i}", "assert", CONTEXT, " ".join(words), ((answer, start),)))
    return out


@pytest.fixture(scope="module")
def tokenizer():
    return text_zoo.load_tokenizer()


def test_answer_tokens_cover_exactly_the_answer(tokenizer):
    examples = _examples()
    encoded = text_zoo.encode_examples(tokenizer, examples)
    for i, ex in enumerate(examples):
        s, e = int(encoded.start[i]), int(encoded.end[i])
        assert encoded.context_mask[i, s] and encoded.context_mask[i, e] and s <= e
        span = CONTEXT[encoded.offsets[i, s, 0] : encoded.offsets[i, e, 1]]
        assert span == ex.answers[0][0]
        ids = encoded.input_ids[i, s : e + 1].tolist()
        assert tokenizer.decode(ids) == ex.answers[0][0].lower()  # uncased word pieces
    # the question's tokens are not context tokens
    assert not encoded.context_mask[:, 0].any()


def test_recipes_are_validated():
    with pytest.raises(text_zoo.TextZooError, match="kind 'gpt'"):
        text_zoo.recipes_from_config([{"name": "x", "kind": "gpt", "layers": 1}])
    with pytest.raises(text_zoo.TextZooError, match="MiniLM has 6 layers"):
        text_zoo.recipes_from_config([{"name": "x", "kind": "minilm", "layers": 7}])
    with pytest.raises(text_zoo.TextZooError, match=r"unknown field\(s\) \['depth'\]"):
        text_zoo.recipes_from_config([{"name": "x", "kind": "bert", "layers": 1, "depth": 2}])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("text_zoo")
    source = [QAExample(f"s{i}", "assert", CONTEXT, "-") for i in range(4)]
    out = {}
    for recipe in (
        text_zoo.TextRecipe("minilm_l1", "minilm", 1),
        text_zoo.TextRecipe("tiny_random", "bert", 1, hidden=32, heads=2, seed=3),
        text_zoo.TextRecipe("tiny_span", "bert", 1, hidden=32, heads=2, span_steps=3, seed=3),
    ):
        encoder = text_zoo.pretrain(recipe, source, tokenizer)
        text_zoo.save_checkpoint(encoder, recipe, folder / f"{recipe.name}.safetensors")
        out[recipe.name] = (folder / f"{recipe.name}.safetensors", encoder)
    return out


def test_checkpoints_round_trip_and_span_pretraining_changes_the_weights(checkpoints):
    path, encoder = checkpoints["minilm_l1"]
    loaded, recipe = text_zoo.load_checkpoint(path)
    assert recipe.layers == 1 and len(loaded.encoder.layer) == 1
    for (name, a), b in zip(
        encoder.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    random_, span = (
        text_zoo.load_checkpoint(checkpoints[n][0])[0] for n in ("tiny_random", "tiny_span")
    )
    same_init = text_zoo.build_encoder(
        text_zoo.TextRecipe("r", "bert", 1, hidden=32, heads=2, seed=3)
    )
    assert torch.equal(
        random_.encoder.layer[0].output.dense.weight, same_init.encoder.layer[0].output.dense.weight
    )
    assert not torch.equal(
        random_.encoder.layer[0].output.dense.weight, span.encoder.layer[0].output.dense.weight
    )


def test_fine_tuning_is_deterministic_and_scores_in_percent(checkpoints, tokenizer):
    examples = _examples()
    kwargs = dict(
        steps=3, lr=1e-3, head_lr=1e-2, batch_size=2, weight_decay=0.0, tokenizer=tokenizer
    )
    path = checkpoints["tiny_span"][0]
    first = finetune(path, examples, examples, seed=0, **kwargs)
    assert first == finetune(path, examples, examples, seed=0, **kwargs)
    assert set(first) == {"f1", "exact_match"}
    assert 0.0 <= first["exact_match"] <= first["f1"] <= 100.0


def test_predictions_are_spans_of_the_context(checkpoints, tokenizer):
    examples = _examples()
    encoder, _ = text_zoo.load_checkpoint(checkpoints["tiny_random"][0])
    torch.manual_seed(0)
    model = text_zoo.SpanQA(encoder)
    predictions = text_zoo.predict_spans(
        model, text_zoo.encode_examples(tokenizer, examples), examples
    )
    assert set(predictions) == {ex.id for ex in examples}
    for text in predictions.values():
        assert text and text in CONTEXT


def test_features_pool_the_context_tokens_only(checkpoints, tokenizer):
    examples = _examples()
    path = checkpoints["tiny_random"][0]
    features = extract_features(path, examples, tokenizer=tokenizer)
    assert features.shape == (3, 32) and features.dtype == np.float32
    # one question with another question but the same context: the context tokens'
    # states change (attention sees the question) but the pooling is over the same tokens
    encoder, _ = text_zoo.load_checkpoint(path)
    encoded = text_zoo.encode_examples(tokenizer, examples[:1])
    with torch.inference_mode():
        hidden = encoder(
            input_ids=encoded.input_ids,
            attention_mask=encoded.attention_mask,
            token_type_ids=encoded.token_type_ids,
        ).last_hidden_state[0]
    expected = hidden[encoded.context_mask[0]].mean(0).numpy()
    np.testing.assert_allclose(features[0], expected, rtol=1e-5, atol=1e-6)


def test_flabel_texts_join_question_and_answer():
    task = get_task("textqa")
    examples = _examples()
    target = TargetData(
        name="short",
        task="textqa",
        label_format="span",
        train_inputs=examples,
        train_labels=[ex.answers[0][0] for ex in examples],
        test_inputs=examples,
        test_labels=[[ex.answers[0][0]] for ex in examples],
        description="",
        context={"question": [ex.question for ex in examples]},
    )

    class Block:
        class flabels:
            with_question = True

    texts = task.label_texts(Block, target)
    assert texts[0] == f"Q: {examples[0].question} A: assertions"
    Block.flabels.with_question = False
    assert task.label_texts(Block, target)[2] == "run time"


def _truth(values):
    """values[model] = per-seed metric."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"dataset": "short", "model": m, "seed": s, "f1": v, "exact_match": v / 2}
            for m, per_seed in values.items()
            for s, v in enumerate(per_seed)
        ]
    )


def test_split_seed_reliability_compares_every_split_of_the_seeds():
    from emms.reports.experiment import secondary_truth, split_seed_reliability, split_seed_taus

    consistent = _truth({"a": [10, 11, 12], "b": [20, 21, 22], "c": [30, 31, 32], "d": [5, 6, 4]})
    table = split_seed_taus(consistent, "f1")
    assert list(table["seeds A"]) == ["0", "1", "2"]  # 3 seeds: 1 vs 2, three ways
    assert list(table["seeds B"]) == ["1, 2", "0, 2", "0, 1"]
    assert table["weighted_tau"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # seed 2 reverses the order: the splits that isolate it disagree completely
    reversed_ = _truth({"a": [1, 1, 10], "b": [2, 2, 8], "c": [3, 3, 6], "d": [4, 4, 5]})
    tau = split_seed_taus(reversed_, "f1").set_index("seeds A")["weighted_tau"]
    assert tau["2"] == pytest.approx(-1.0)
    # the reliability is the mean over the splits: one split of three reversed
    reliability = split_seed_reliability(split_seed_taus(reversed_, "f1"))
    assert reliability["short"] == pytest.approx(tau.mean()) and reliability["short"] < 1
    four = _truth({"a": [1, 2, 3, 4], "b": [5, 6, 7, 8], "c": [9, 9, 9, 9]})
    assert list(split_seed_taus(four, "f1")["seeds A"]) == ["0, 1", "0, 2", "0, 3"]
    extra = secondary_truth(consistent, ["exact_match"]).set_index("model")
    assert extra.loc["b", "exact_match"] == pytest.approx(10.5)
    assert extra.loc["b", "exact_match_std"] == pytest.approx(0.5)
