"""Text-QA features of a paper zoo (EMMS §4.5), streamed to the cache, resumable.

The rule is the embedded experiment's (:mod:`emms.models.text_features`): a span head
reads the final hidden state of every token of ``question [SEP] context``, so a model's
feature vector for a question is the **mean of the final hidden states over the context
tokens** (:func:`emms.models.text_features.context_mean`; question, special and padding
tokens excluded), the encoder in eval mode, on the training split's questions.

Tokenisation is the model's own fast tokenizer from its weights folder, as SQuAD
fine-tuning scripts feed it: ``tokenizer(question, context, truncation="only_second",
max_length=run.max_length)`` (384, the usual SQuAD recipe), and context tokens are those
whose ``sequence_ids`` is 1. Models without token types (RoBERTa, DistilBERT) get only
what their tokenizer returns.

Deviation, stated: fine-tuning scripts split a context longer than ``max_length`` into
overlapping windows (doc stride 128); the features keep the first window only (one
vector per question, as EMMS needs). The sidecar of each features file counts the
questions whose context was cut (``truncated``).

Streaming and resume are those of :mod:`emms.paper.extract`: batches go to a hidden
memory-mapped partial file, the finished array is saved atomically with its sidecar, and
a pair whose sidecar matches is never recomputed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from emms.cache import fingerprint
from emms.models.paper_zoo import fetch_command, model_folder
from emms.models.text_features import context_mean

from .config import PaperRunError, RunConfig
from .extract import _autocast, _BlockWriter, _check_range

__all__ = [
    "TOKENIZER_FILES",
    "TEXT_FEATURE_RULE",
    "load_tokenizer",
    "text_recipe",
    "extract_text_pair",
]

#: A tokenizer folder holds one of these (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "spm.model",
                   "sentencepiece.bpe.model")  # fmt: skip

#: Bumped when the definition of the text features changes (part of every recipe).
TEXT_FEATURE_RULE = "context-token mean of the final hidden states v1"


def load_tokenizer(entry, cfg: RunConfig):
    """The model's fast tokenizer from its weights folder (pre-flight: no download)."""
    from transformers import AutoTokenizer

    folder = model_folder(entry, cfg.weights)
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise PaperRunError(
            f"model {entry.name!r}: no tokenizer in {folder} (none of "
            f"{', '.join(TOKENIZER_FILES)}; transformers would build an empty vocabulary "
            f"instead of failing). On a machine with network run "
            f"`{fetch_command(entry, cfg.weights)}`."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise PaperRunError(
            f"model {entry.name!r}: no tokenizer could be read from {folder} "
            f"({type(error).__name__}: {str(error).splitlines()[0]}). The folder needs the "
            "model's tokenizer files (tokenizer.json or vocab.txt / merges.txt / *.model, "
            f"tokenizer_config.json); on a machine with network run "
            f"`{fetch_command(entry, cfg.weights)}`."
        ) from error
    if not getattr(tokenizer, "is_fast", False):
        raise PaperRunError(
            f"model {entry.name!r}: the tokenizer in {folder} is a slow (Python) tokenizer; "
            "the context tokens are found with a fast tokenizer's sequence_ids. Put the "
            "model's tokenizer.json in the folder (it comes with the Hub snapshot)."
        )
    if cfg.max_length > tokenizer.model_max_length:
        raise PaperRunError(
            f"run.max_length {cfg.max_length} is longer than the {tokenizer.model_max_length} "
            f"positions of {entry.name!r}; lower it."
        )
    return tokenizer


def text_recipe(entry, tokenizer, cfg: RunConfig) -> str:
    """The fingerprint of everything that defines a model's text features."""
    return fingerprint(
        {
            "entry": asdict(entry),
            "rule": TEXT_FEATURE_RULE,
            "max_length": cfg.max_length,
            "tokenizer": {
                "class": type(tokenizer).__name__,
                "vocab_size": len(tokenizer),
                "lowercase": bool(getattr(tokenizer, "do_lower_case", False)),
            },
            "precision": cfg.precision,
        }
    )


def _batches(n: int, size: int):
    for first in range(0, n, size):
        yield first, min(first + size, n)


def _encode(tokenizer, record, chosen: list[int], max_length: int):
    """``question [SEP] context`` of the chosen questions, the context truncated."""
    questions = [record.questions[i] for i in chosen]
    contexts = [record.contexts[i] for i in chosen]
    try:
        return tokenizer(
            questions,
            contexts,
            truncation="only_second",
            max_length=max_length,
            padding="longest",
            return_tensors="pt",
        )
    except Exception as error:  # the Rust tokenizers raise a bare Exception on truncation
        for i, question, context in zip(chosen, questions, contexts, strict=True):
            try:
                tokenizer(question, context, truncation="only_second", max_length=max_length)
            except Exception:
                raise PaperRunError(
                    f"{record.dataset}/{record.split} question {record.ids[i]!r}: no context "
                    f"token is left after truncation to {max_length} tokens (the question "
                    f"alone fills them: {error}); raise run.max_length."
                ) from error
        raise


def extract_text_pair(
    network,
    tokenizer,
    record,
    indices: np.ndarray,
    path,
    meta: dict[str, Any],
    cfg: RunConfig,
    device,
    *,
    desc: str = "",
) -> None:
    """Context-mean features of one (model, dataset) pair, streamed and cached at
    ``path``; nothing is left behind if it fails (the partial file is removed)."""
    import torch
    from tqdm.auto import tqdm

    writer = _BlockWriter(path, len(indices), np.float32)
    writer.discard()  # never trust a leftover of an interrupted run
    accepted = set(tokenizer.model_input_names)
    truncated = 0
    try:
        with torch.inference_mode():
            for first, last in tqdm(
                list(_batches(len(indices), cfg.batch_size)),
                desc=desc,
                disable=not cfg.progress,
                unit="batch",
            ):
                chosen = [int(i) for i in indices[first:last]]
                encoded = _encode(tokenizer, record, chosen, cfg.max_length)
                # the Rust encodings keep what truncation cut: no second tokenisation
                truncated += sum(bool(e.overflowing) for e in encoded.encodings)
                context = torch.tensor(
                    [[s == 1 for s in encoded.sequence_ids(b)] for b in range(len(chosen))]
                )
                empty = [chosen[b] for b in range(len(chosen)) if not context[b].any()]
                if empty:  # the mean over no token would be a silent row of zeros
                    raise PaperRunError(
                        f"{record.dataset}/{record.split} question {record.ids[empty[0]]!r}: "
                        f"{tokenizer.name_or_path} gives its context no token (is the "
                        "tokenizer's vocabulary in the model folder?); check the tokenizer "
                        "files."
                    )
                inputs = {k: v.to(device) for k, v in encoded.items() if k in accepted}
                with _autocast(device, cfg.precision):
                    hidden = network(**inputs).last_hidden_state
                block = context_mean(hidden.float(), context.to(device)).cpu().numpy()
                _check_range(block, desc, device, cfg.precision)
                writer.write(block)
        writer.finish({**meta, "truncated": truncated})
    finally:
        writer.discard()
