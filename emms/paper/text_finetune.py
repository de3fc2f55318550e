"""Ground truth of the paper-scale text-QA experiment: every zoo model fine-tuned for
SQuAD span extraction, scored on the dev split with the official metric.

The output is the truth table ``python -m emms.paper run --task textqa --truth CSV``
reads: one row per (dataset, model, seed) with ``f1`` and ``exact_match`` (percent,
:func:`emms.datasets.squad.squad_scores`, the definitions of the official v2.0 script).
Each row is cached on its own (``CACHE/paper/textqa/truth/DATASET/MODEL-seedS.json``,
written atomically), so a run that stops resumes at the next unfinished fine-tune.

Recipe (``finetune:`` in ``params/paper/textqa.yaml``). The EMMS paper does not state its
QA fine-tuning recipe; this is BERT's (Devlin et al., NAACL 2019, §4.2 and §4.3) and the
defaults of its ``run_squad.py``:

* SQuAD 1.1: 3 epochs, batch 32; SQuAD 2.0: 2 epochs, batch 48; learning rate 5e-5,
  AdamW (weight decay 0.01, not on biases and LayerNorm weights), linear warm-up over the
  first 10 % of the steps then linear decay to 0, gradients clipped at norm 1;
* windows of ``max_length`` 384 tokens over ``question [SEP] context``, consecutive
  windows of one context overlapping by ``doc_stride`` 128 tokens (the Hugging Face
  tokenizer's ``stride``, as its SQuAD example uses it);
* training target: the answer's first and last token when the answer lies inside the
  window, else the first token ([CLS], also for unanswerable questions);
* prediction: over all windows of a question the valid span (start <= end, both context
  tokens, at most ``max_answer_tokens`` 30 tokens) with the largest start + end logit;
  on SQuAD 2.0 the answer is "" when the null score (the smallest [CLS] start + end logit
  over the question's windows) exceeds that span's score by more than
  ``null_threshold`` (0.0).

Deviations, stated: the best span is the exact argmax over every valid (start, end) pair
of a window rather than over the top-20 starts and ends of ``run_squad.py`` (never a
worse span); BERT tuned the null threshold on the dev set, here it is fixed (a truth must
not be tuned on what it scores); a question longer than the window stops the run with
its id (``run_squad.py`` truncates questions to 64 tokens).

Determinism: the head's initialisation, the dropout masks and the data order are seeded
(``seed``, :func:`emms.paper.finetune.seeded`), torch's deterministic algorithms are on;
on CUDA the model trains under ``torch.autocast`` in ``run.precision`` (bfloat16 by
default; float16 is refused: it would need loss scaling).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .config import PaperRunError, RunConfig
from .finetune import (
    adamw_warmup_linear,
    check_precision,
    deterministic,
    finetune_rows,
    load_finetune_block,
    seeded,
    write_truth,
)

__all__ = [
    "FinetuneRecipe",
    "load_recipe",
    "encode_windows",
    "best_spans",
    "predict_answers",
    "score_answers",
    "finetune_model",
    "run_finetuning",
]


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: PositiveInt
    batch_size: PositiveInt


class FinetuneRecipe(BaseModel):
    """The ``finetune:`` block of ``params/paper/textqa.yaml`` (module docstring)."""

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of steps")
    max_grad_norm: float = Field(1.0, gt=0)
    doc_stride: PositiveInt = 128
    max_answer_tokens: PositiveInt = 30
    null_threshold: float = 0.0
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    schedule: dict[str, _Schedule] = Field(
        default_factory=lambda: {
            "squad1.1": _Schedule(epochs=3, batch_size=32),
            "squad2.0": _Schedule(epochs=2, batch_size=48),
        }
    )


def load_recipe(cfg: RunConfig) -> FinetuneRecipe:
    """The config's ``finetune:`` block, checked (defaults: BERT's recipe)."""
    recipe = load_finetune_block(cfg, FinetuneRecipe, "emms/paper/text_finetune.py")
    missing = [d for d in cfg.datasets if d not in recipe.schedule]
    if missing:
        raise PaperRunError(
            f"{cfg.config_path}: finetune.schedule has no epochs/batch_size for {missing}; "
            "add e.g. `schedule: {squad1.1: {epochs: 3, batch_size: 32}}`."
        )
    return recipe


# --------------------------------------------------------------------------- windows


def encode_windows(tokenizer, record, indices, max_length: int, doc_stride: int) -> dict:
    """Every question's windows, tokenised once.

    Returns a dict of tensors ``input_ids``, ``attention_mask`` (and ``token_type_ids``
    where the model takes them), each (W, max_length), plus ``question`` (W,) the index
    into ``indices`` of each window's question, ``context`` (W, T) bool, the context
    tokens, ``offsets`` (W, T, 2) character offsets, ``start``/``end`` (W,) the training
    target (0, the [CLS] position, when the answer is not inside the window)."""
    import torch

    if tokenizer.padding_side != "right":
        raise PaperRunError(
            f"the tokenizer pads on the {tokenizer.padding_side}; span fine-tuning expects "
            "right padding (the [CLS] token first)."
        )
    chosen = [int(i) for i in indices]
    questions = [record.questions[i] for i in chosen]
    contexts = [record.contexts[i] for i in chosen]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    # one batched call for every question (not one call each)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False).input_ids]
    for i, length in zip(chosen, lengths, strict=True):
        room = max_length - specials - length
        if room <= doc_stride:  # the Rust tokenizer panics instead of failing
            raise PaperRunError(
                f"{record.dataset}/{record.split} question {record.ids[i]!r}: the question "
                f"leaves {max(room, 0)} context tokens in a {max_length}-token window, not "
                f"more than finetune.doc_stride {doc_stride}; raise run.max_length or lower "
                "finetune.doc_stride."
            )
    encoded = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    owner = encoded["overflow_to_sample_mapping"]
    context = np.array(
        [[s == 1 for s in encoded.sequence_ids(w)] for w in range(len(owner))], dtype=bool
    )
    offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64)
    start = np.zeros(len(owner), dtype=np.int64)
    end = np.zeros(len(owner), dtype=np.int64)
    for w, q in enumerate(owner):
        answers = record.answers[chosen[q]]
        if not answers:
            continue
        first, last = answers[0].start, answers[0].end
        tokens, window = np.flatnonzero(context[w]), offsets[w]
        if window[tokens[0], 0] > first or window[tokens[-1], 1] < last:
            continue  # the answer is not (wholly) in this window
        start[w] = tokens[window[tokens, 0] <= first][-1]
        end[w] = tokens[window[tokens, 1] >= last][0]
    out = {
        name: torch.tensor(encoded[name]) for name in tokenizer.model_input_names if name in encoded
    }
    out |= {
        "question": torch.tensor(owner),
        "context": torch.from_numpy(context),
        "offsets": torch.from_numpy(offsets),
        "start": torch.from_numpy(start),
        "end": torch.from_numpy(end),
    }
    return out


def best_spans(start_logits, end_logits, context, max_answer_tokens: int):
    """Per window the best valid span and the null score.

    Args:
        start_logits, end_logits: (W, T) float tensors.
        context: (W, T) bool, the context tokens.
    Returns:
        ``(score, start, end, null)``, each (W,): the largest start + end logit over pairs
        of context tokens with start <= end < start + ``max_answer_tokens``, its token
        positions, and the [CLS] pair's logit sum (position 0)."""
    import torch

    masked_start = start_logits.float().masked_fill(~context, -torch.inf)
    masked_end = end_logits.float().masked_fill(~context, -torch.inf)
    pair = masked_start[:, :, None] + masked_end[:, None, :]
    width = pair.shape[1]
    s = torch.arange(width)[:, None]
    e = torch.arange(width)[None, :]
    valid = (e >= s) & (e - s < max_answer_tokens)
    pair = pair.masked_fill(~valid.to(pair.device), -torch.inf)
    score, flat = pair.flatten(1).max(dim=1)
    null = start_logits[:, 0].float() + end_logits[:, 0].float()
    return score, flat // width, flat % width, null


# --------------------------------------------------------------------------- training


def _inputs(windows: dict, rows, accepted, device) -> dict:
    return {k: windows[k][rows].to(device) for k in accepted if k in windows}


def finetune_model(
    entry,
    cfg: RunConfig,
    recipe: FinetuneRecipe,
    train,
    dev,
    *,
    dataset: str,
    seed: int,
    device,
    tokenizer=None,
) -> dict[str, float]:
    """Fine-tune one zoo model on ``train`` (a :class:`TextQASplit`) with ``seed`` and
    return its SQuAD scores on ``dev``."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForQuestionAnswering

    from emms.models.paper_zoo import model_folder

    from .extract import _autocast
    from .text_extract import load_tokenizer

    tokenizer = tokenizer or load_tokenizer(entry, cfg)
    schedule = recipe.schedule[dataset]
    train_windows = encode_windows(
        tokenizer, train, np.arange(len(train.ids)), cfg.max_length, recipe.doc_stride
    )
    accepted = set(tokenizer.model_input_names)
    generator = torch.Generator().manual_seed(seed)
    n = len(train_windows["question"])
    per_epoch = math.ceil(n / schedule.batch_size)
    steps = per_epoch * schedule.epochs
    with seeded(seed, device):  # the new span head's initial weights, the dropout masks
        model = AutoModelForQuestionAnswering.from_pretrained(
            model_folder(entry, cfg.weights), local_files_only=True
        ).to(device)
        optimizer, scheduler = adamw_warmup_linear(
            [(model.parameters(), recipe.lr)],
            weight_decay=recipe.weight_decay,
            warmup=recipe.warmup,
            steps=steps,
        )
        model.train()
        progress = tqdm(
            total=steps, desc=f"{entry.name} {dataset} seed {seed}", disable=not cfg.progress
        )
        for _ in range(schedule.epochs):
            order = torch.randperm(n, generator=generator)
            for first in range(0, n, schedule.batch_size):
                rows = order[first : first + schedule.batch_size]
                with _autocast(device, cfg.precision):
                    loss = model(
                        **_inputs(train_windows, rows, accepted, device),
                        start_positions=train_windows["start"][rows].to(device),
                        end_positions=train_windows["end"][rows].to(device),
                    ).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
                optimizer.step()
                scheduler.step()
                progress.update()
        progress.close()

    windows = encode_windows(
        tokenizer, dev, np.arange(len(dev.ids)), cfg.max_length, recipe.doc_stride
    )
    predictions = predict_answers(
        model, windows, dev, recipe, accepted, device,
        batch_size=cfg.batch_size, precision=cfg.precision,
        with_null=bool(train.is_impossible.any() or dev.is_impossible.any()),
    )  # fmt: skip
    return score_answers(dev, predictions)


def predict_answers(
    model, windows: dict, dev, recipe: FinetuneRecipe, accepted, device, *,
    batch_size: int, precision: str = "float32", with_null: bool,
) -> dict[str, str]:  # fmt: skip
    """``{question id: answer}`` over every window of ``dev`` (:func:`encode_windows` of
    all its questions, in order): the best span of any window; "" when ``with_null`` and
    the smallest null score beats it by more than ``recipe.null_threshold``."""
    import torch

    from .extract import _autocast

    model.eval()
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    total = len(windows["question"])
    with torch.inference_mode():
        for first in range(0, total, batch_size):
            rows = torch.arange(first, min(first + batch_size, total))
            with _autocast(device, precision):
                out = model(**_inputs(windows, rows, accepted, device))
            score, start, end, null_score = (
                t.cpu()
                for t in best_spans(
                    out.start_logits,
                    out.end_logits,
                    windows["context"][rows].to(device),
                    recipe.max_answer_tokens,
                )
            )
            for j, w in enumerate(rows.tolist()):
                q = int(windows["question"][w])  # the dev index: every question is encoded
                null[q] = min(null.get(q, math.inf), float(null_score[j]))
                if q not in best or float(score[j]) > best[q][0]:
                    offsets = windows["offsets"][w]
                    text = dev.contexts[q][int(offsets[start[j], 0]) : int(offsets[end[j], 1])]
                    best[q] = (float(score[j]), text)
    return {
        question_id: ""
        if with_null and null[q] - best[q][0] > recipe.null_threshold
        else best[q][1]
        for q, question_id in enumerate(dev.ids)
    }


def score_answers(dev, predictions) -> dict[str, float]:
    """SQuAD F1 and exact match (percent) of ``predictions`` on a :class:`TextQASplit`."""
    from emms.datasets.squad import QAExample, squad_scores

    examples = [
        QAExample(
            dev.ids[i],
            dev.titles[i],
            dev.contexts[i],
            dev.questions[i],
            tuple((a.text, a.start) for a in dev.answers[i]),
            bool(dev.is_impossible[i]),
        )
        for i in range(len(dev.ids))
    ]
    return squad_scores(examples, predictions)


def run_finetuning(cfg: RunConfig, out: str | Path) -> pd.DataFrame:
    """Fine-tune every (dataset, model, seed) not cached yet; write the truth table
    ``out`` (CSV, the embedded text-QA truth table's columns) and return it."""

    from emms.datasets.paper import read_paper_dataset
    from emms.models.paper_zoo import check_weights

    from .extract import resolve_device
    from .text_extract import load_tokenizer

    if cfg.task != "textqa":
        raise PaperRunError(f"text_finetune fine-tunes textqa, not {cfg.task}.")
    recipe = load_recipe(cfg)
    device = resolve_device(cfg.device)
    check_precision(device, cfg.precision)
    tokenizers = {}
    for name in cfg.models:  # pre-flight: weights and tokenizers, before any training
        check_weights(cfg.zoo.models[name], cfg.weights)
        tokenizers[name] = load_tokenizer(cfg.zoo.models[name], cfg)
    splits = {
        name: {
            split: read_paper_dataset(
                name, cfg.data, split=split, **cfg.dataset_options.get(name, {})
            )
            for split in ("train", "dev")
        }
        for name in cfg.datasets
    }

    def finetune_one(dataset: str, name: str, seed: int) -> dict[str, float]:
        return finetune_model(
            cfg.zoo.models[name],
            cfg,
            recipe,
            splits[dataset]["train"],
            splits[dataset]["dev"],
            dataset=dataset,
            seed=seed,
            device=device,
            tokenizer=tokenizers[name],
        )

    with deterministic(device):
        rows = finetune_rows(
            cfg,
            recipe,
            recipe.seeds,
            finetune_one,
            device=device,
            settings={"max_length": cfg.max_length, "precision": cfg.precision},
        )
    return write_truth(rows, "textqa", out)
