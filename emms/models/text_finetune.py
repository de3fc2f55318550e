"""Ground truth of the text-QA experiment: fine-tune a zoo encoder for span extraction.

One fixed recipe for every model (``params.yaml``, ``textqa.finetune``): a new start/end
head (one linear layer, seeded), all layers trained with AdamW (backbone ``lr``, head
``head_lr``, linear warm-up over 10 % of the steps then linear decay, gradients clipped at
norm 1; the word-piece embedding table stays fixed when ``freeze_word_embeddings``: a few
hundred questions would only overfit its 30,522 rows) for ``steps`` optimizer steps of
``batch_size`` training questions drawn in a seeded order (whole passes, reshuffled, as
needed: a fixed compute budget, the same for every model), one thread. The prediction is
the best context span (:func:`emms.models.text_zoo.predict_spans`); the truth is SQuAD F1
and exact match on the TEST questions, whose paragraphs come from documentation topics
never seen in pre-training or fine-tuning (:func:`emms.datasets.squad.squad_scores`,
percent).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from emms.datasets.squad import QAExample, squad_scores
from emms.models.text_zoo import (
    SpanQA,
    encode_examples,
    load_checkpoint,
    load_tokenizer,
    predict_spans,
    train_spans,
)

__all__ = ["finetune"]


def finetune(
    checkpoint,
    train: Sequence[QAExample],
    test: Sequence[QAExample],
    *,
    steps: int,
    lr: float,
    head_lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
    freeze_word_embeddings: bool = True,
    tokenizer=None,
) -> dict[str, float]:
    """Fine-tune the encoder of ``checkpoint`` on ``train``; SQuAD scores on ``test``."""
    torch.set_num_threads(1)
    tokenizer = tokenizer or load_tokenizer()
    encoder, _ = load_checkpoint(checkpoint)
    allow_null = any(ex.is_impossible for ex in train)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SpanQA(encoder)
        if freeze_word_embeddings:
            encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        train_spans(
            model,
            encode_examples(tokenizer, train),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            head_lr=head_lr,
            weight_decay=weight_decay,
            seed=seed,
            allow_null=allow_null,
        )
    predictions = predict_spans(
        model, encode_examples(tokenizer, test), test, allow_null=allow_null
    )
    return squad_scores(test, predictions)
