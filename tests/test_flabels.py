"""Text encoders: the bundled MiniLM is exactly sentence-transformers' model, pooling
ignores padding, controls behave, missing weights stop with a clear message."""

import numpy as np
import pytest

from emms.models.flabels import (
    EncoderUnavailable,
    TransformerTextEncoder,
    embed_texts,
    load_encoder,
    minilm_path,
)

TEXTS = ["a handwritten zero", "a handwritten digit with a closed loop", "a handwritten nine"]


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm")


def test_minilm_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(minilm.encode(TEXTS), reference, atol=1e-5)


def test_pooling_ignores_padding(minilm):
    alone = minilm.encode(["a handwritten zero"])
    padded = minilm.encode(["a handwritten zero", "a much longer text " * 8])[:1]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_semantics_survive_in_minilm_but_not_in_the_random_tower(minilm):
    random_tower = load_encoder("random-minilm")
    texts = ["the digit seven", "the number seven", "a red bicycle"]

    def similarities(vectors):
        v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return v[0] @ v[1], v[0] @ v[2]

    near, far = similarities(minilm.encode(texts))
    assert near > far + 0.3
    again = load_encoder("random-minilm").encode(texts)
    np.testing.assert_array_equal(random_tower.encode(texts), again)  # seeded
    assert not np.allclose(random_tower.encode(texts), minilm.encode(texts), atol=1e-2)


def test_wordpiece_bag_is_the_mean_of_input_embeddings():
    bag = load_encoder("minilm-wordpiece-bag")
    table = bag.model.get_input_embeddings().weight.detach().numpy()
    ids = bag.tokenizer("seven", add_special_tokens=False)["input_ids"]
    np.testing.assert_allclose(bag.encode(["seven"])[0], table[ids].mean(axis=0), atol=1e-6)


def test_embed_texts_encodes_each_distinct_text_once(minilm):
    calls = []

    class Counting:
        name = "counting"

        def encode(self, texts, batch_size=64):
            calls.extend(texts)
            return minilm.encode(texts)

    texts = ["b", "a", "b", "c", "a"]
    out = embed_texts(Counting(), texts, progress=False)
    assert sorted(calls) == ["a", "b", "c"]
    np.testing.assert_allclose(out[0], out[2])
    np.testing.assert_allclose(out, minilm.encode(texts), atol=1e-5)


def test_a_local_random_bert_loads_through_the_same_interface(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(minilm_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    encoder = TransformerTextEncoder("tiny-bert", tmp_path)
    assert encoder.encode(TEXTS).shape == (3, 32)


@pytest.mark.parametrize("name", ["clip-vit-g-14", "bert-large-uncased", "gpt2-medium"])
def test_paper_scale_encoders_without_weights_say_what_to_do(name, tmp_path, monkeypatch):
    monkeypatch.setenv("EMMS_WEIGHTS", str(tmp_path))
    with pytest.raises(EncoderUnavailable, match=f"{name}.*not found at {tmp_path}"):
        load_encoder(name)


def test_unknown_encoder():
    with pytest.raises(KeyError, match="unknown encoder"):
        load_encoder("word2vec")


def test_causal_encoder_pools_the_same_with_or_without_padding(tmp_path):
    """GPT-2 numbers positions from the first token: padding must go on the right, or a
    short text's embedding would change with the longest text of its batch."""
    import torch
    from transformers import GPT2Config, GPT2Model, GPT2Tokenizer

    printable = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(printable)} | {"Ġ": 94, "<|endoftext|>": 95}
    # saved padding on the left, as some GPT-2 tokenizer configs are: the encoder must undo it
    GPT2Tokenizer(vocab=vocab, merges=[], padding_side="left").save_pretrained(tmp_path)
    torch.manual_seed(0)
    GPT2Model(
        GPT2Config(vocab_size=96, n_embd=16, n_layer=1, n_head=2, n_positions=64)
    ).save_pretrained(tmp_path)
    encoder = TransformerTextEncoder("tiny-gpt2", tmp_path)
    assert encoder.tokenizer.padding_side == "right"
    alone = encoder.encode(["seven"])
    padded = encoder.encode(["seven", "a much longer text of words"])[:1]
    np.testing.assert_allclose(alone, padded, atol=1e-5)
    encoder.tokenizer.padding_side = "left"  # what the release's pooling would meet
    shifted = encoder.encode(["seven", "a much longer text of words"])[:1]
    assert np.abs(shifted - alone).max() > 1e-3


def test_texts_longer_than_the_position_table_are_truncated_not_an_index_error(tmp_path):
    import torch
    from transformers import GPT2Config, GPT2Model, GPT2Tokenizer

    printable = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(printable)} | {"Ġ": 94, "<|endoftext|>": 95}
    GPT2Tokenizer(vocab=vocab, merges=[]).save_pretrained(tmp_path)
    torch.manual_seed(0)
    GPT2Model(
        GPT2Config(vocab_size=96, n_embd=16, n_layer=1, n_head=2, n_positions=16)
    ).save_pretrained(tmp_path)
    encoder = TransformerTextEncoder("tiny-gpt2", tmp_path)  # max_length 128 asked
    assert encoder.max_length == 16
    long_text = "abcdefghijklmnopqrstuvwxyz"  # one token per character: 26 > 16 positions
    np.testing.assert_allclose(
        encoder.encode([long_text]), encoder.encode([long_text[:16]]), atol=1e-6
    )


def test_open_clip_text_encoder_reads_the_local_checkpoint(tmp_path):
    """The paper's CLIP text tower runs through :class:`OpenCLIPTextEncoder`: here a tiny
    open_clip architecture (same classes as ViT-g/14, one layer, width 32) with random
    weights saved the way the hub ships them (``open_clip_model.safetensors``). The
    encoder's vectors are the checkpoint's ``encode_text``, not a fresh random tower."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    from emms.models.flabels import OpenCLIPTextEncoder

    config = tmp_path / "emms-tiny-clip.json"
    config.write_text(json.dumps({
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                       "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
    }))  # fmt: skip
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    reference = open_clip.create_model("emms-tiny-clip").eval()
    checkpoint = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, checkpoint)

    encoder = OpenCLIPTextEncoder("clip-vit-g-14", "emms-tiny-clip", checkpoint)
    texts = ["a handwritten seven", "a handwritten two", "seven"]
    with torch.no_grad():
        expected = reference.encode_text(open_clip.get_tokenizer("emms-tiny-clip")(texts))
    vectors = encoder.encode(texts, batch_size=2)
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected.numpy(), atol=1e-6)
    assert isinstance(encoder.model.visual, torch.nn.Identity)  # the text tower only

    torch.manual_seed(1)
    other = open_clip.create_model("emms-tiny-clip")
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, checkpoint)
    changed = OpenCLIPTextEncoder("clip-vit-g-14", "emms-tiny-clip", checkpoint).encode(texts)
    assert np.abs(changed - vectors).max() > 1e-2

    with pytest.raises(EncoderUnavailable, match="not found at .*missing.bin"):
        OpenCLIPTextEncoder("clip-vit-g-14", "emms-tiny-clip", tmp_path / "missing.bin")
