"""Features of the text-QA experiment: what the span head reads, pooled.

The span head reads the final hidden state of every token of ``[CLS] question [SEP]
context [SEP]``. A model's feature vector for a question is the **mean of the final hidden
states over the context tokens** (the tokens the head chooses among; question, special
and padding tokens excluded), computed in eval mode (no dropout) with the encoder exactly
as the zoo stage saved it. Width: the encoder's hidden size (384 for MiniLM, 128 for the
small BERTs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emms.datasets.squad import QAExample
from emms.models.text_zoo import encode_examples, load_checkpoint, load_tokenizer

__all__ = ["context_mean", "extract_features"]


def context_mean(hidden: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H) hidden states, (B, T) bool context mask -> (B, H): the mean over each
    row's context tokens (a row without one gives zeros, not NaN)."""
    mask = context_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def extract_features(
    checkpoint, examples: Sequence[QAExample], *, batch_size: int = 64, tokenizer=None
) -> np.ndarray:
    """(N, hidden) float32: context-token mean of the final hidden states."""
    torch.set_num_threads(1)
    encoder, _ = load_checkpoint(checkpoint)
    encoded = encode_examples(tokenizer or load_tokenizer(), examples)
    out = []
    with torch.inference_mode():
        for first in range(0, len(encoded), batch_size):
            batch = encoded.batch(torch.arange(first, min(first + batch_size, len(encoded))))
            hidden = encoder(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"],
            ).last_hidden_state
            out.append(context_mean(hidden, batch["context_mask"]).numpy())
    return np.concatenate(out).astype(np.float32, copy=False)
