"""Ground truth of the paper-scale VQA experiment: every zoo model fine-tuned as an
answer classifier, scored by exact-match accuracy on the evaluation split.

The output is the truth table ``python -m emms.paper run --task vqa --truth CSV`` reads:
one row per (dataset, model, seed) with ``vqa_accuracy`` (a fraction, as in the embedded
experiment), cached row by row (:mod:`emms.paper.finetune`).

The model is the one the features describe (:mod:`emms.paper.vqa_extract`): the joint
representation of (image, question) that ``joint_features`` returns (ViLT's pooler, BLIP's
fused question ``[CLS]``, CLIP's and SigLIP's concatenated normalised embeddings), read
by a new answer classifier, with every weight of the model trained. Recipe (``finetune:``
in ``params/paper/vqa.yaml``). The EMMS paper does not state its VQA recipe; this is
ViLT's VQAv2 fine-tuning (Kim et al., ICML 2021; its ``task_finetune_vqa`` config):

* the classifier is ViLT's VQA head: Linear(D, 2D), LayerNorm, GELU, Linear(2D, A);
* AdamW, learning rate 1e-4 and 10x that for the new head (``lr_mult``), weight decay
  0.01 (not on biases and normalisation weights), linear warm-up over the first 10 % of
  the steps then linear decay to 0; 10 epochs of batches of 256 questions.

Deviations, stated: the answers are every distinct answer of the training split (ViLT
keeps VQAv2's 3,129 most frequent; COCO-QA, DAQUAR and CLEVR have fewer, and
``max_answers`` keeps the K most frequent where one wants a cap); the loss is the
cross-entropy of the one gold answer (these datasets have one answer per question, not
VQAv2's ten annotators' soft scores, for which ViLT uses a binary cross-entropy); no image
augmentation (ViLT's RandAugment variant is a separate config). A question whose gold
answer is outside the vocabulary is left out of training and counts as wrong at
evaluation (it cannot be predicted), so the accuracy is over every evaluation question.
Answers are compared as distributed, after stripping and lower-casing.

Evaluation split: ``eval_split`` per dataset (COCO-QA and DAQUAR ``test``, CLEVR ``val``:
CLEVR's test answers are not public).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .config import PaperRunError, RunConfig
from .finetune import (
    adamw_warmup_linear,
    load_finetune_block,
    run_image_text_finetuning,
    seeded,
)

__all__ = [
    "VQARecipe",
    "load_recipe",
    "answer_vocabulary",
    "AnswerHead",
    "accuracy",
    "finetune_vqa_model",
    "run_finetuning",
]


class VQARecipe(BaseModel):
    """The ``finetune:`` block of ``params/paper/vqa.yaml`` (module docstring)."""

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-4, gt=0)
    head_lr_mult: float = Field(10.0, gt=0, description="the new head's lr / lr")
    weight_decay: float = Field(0.01, ge=0)
    warmup: float = Field(0.1, ge=0, lt=1, description="fraction of steps")
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 256
    max_answers: PositiveInt | None = None
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    eval_split: dict[str, str] = Field(
        default_factory=lambda: {"cocoqa": "test", "daquar": "test", "clevr": "val"}
    )


def load_recipe(cfg: RunConfig) -> VQARecipe:
    """The config's ``finetune:`` block, checked (defaults: ViLT's VQA recipe)."""
    recipe = load_finetune_block(cfg, VQARecipe, "emms/paper/vqa_finetune.py")
    missing = [d for d in cfg.datasets if d not in recipe.eval_split]
    if missing:
        raise PaperRunError(
            f"{cfg.config_path}: finetune.eval_split names no evaluation split for "
            f"{missing}; add e.g. `eval_split: {{{missing[0]}: test}}`."
        )
    return recipe


def _normalise(answer: str) -> str:
    return str(answer).strip().lower()


def answer_vocabulary(answers, max_answers: int | None = None) -> list[str]:
    """The classifier's answers: the distinct normalised training answers, most frequent
    first (ties in order of first appearance), the first ``max_answers`` of them."""
    counts = Counter(_normalise(a) for a in answers)
    return [a for a, _ in counts.most_common(max_answers)]


def accuracy(predicted, gold) -> float:
    """Exact-match accuracy of answer strings (stripped, lower-cased)."""
    pairs = list(zip(predicted, gold, strict=True))
    if not pairs:
        raise PaperRunError("no evaluation questions to score.")
    return float(np.mean([_normalise(p) == _normalise(g) for p, g in pairs]))


def AnswerHead(width: int, answers: int):  # noqa: N802 (a module factory, named as a class)
    """ViLT's VQA classifier: Linear(D, 2D), LayerNorm, GELU, Linear(2D, A)."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(width, 2 * width),
        nn.LayerNorm(2 * width),
        nn.GELU(),
        nn.Linear(2 * width, answers),
    )


def _batches(n: int, size: int, generator=None):
    import torch

    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [order[first : first + size].tolist() for first in range(0, n, size)]


def finetune_vqa_model(
    entry, cfg: RunConfig, recipe: VQARecipe, train, dev, *, seed: int, device
) -> dict[str, float]:
    """Fine-tune one zoo model on ``train`` (a :class:`VQASplit`) with ``seed`` and
    return ``{"vqa_accuracy": ...}`` on ``dev``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from .extract import _autocast
    from .vqa_extract import encode_batch, joint_features, load_image_text_model

    model = load_image_text_model(entry, cfg, device)
    network = model.network
    answers = answer_vocabulary(train.answers, recipe.max_answers)
    index = {a: i for i, a in enumerate(answers)}
    rows = [i for i, a in enumerate(train.answers) if _normalise(a) in index]
    targets = torch.tensor([index[_normalise(train.answers[i])] for i in rows])

    def features(record, chosen):
        images, text = encode_batch(
            model.model_type, model.processor, model.tokenizer, record, chosen, model.length,
            device,
        )  # fmt: skip
        with _autocast(device, cfg.precision):
            return joint_features(network, model.model_type, images, text).float()

    with seeded(seed, device):
        with torch.no_grad():
            width = features(train, rows[:1]).shape[1]
        head = AnswerHead(width, len(answers)).to(device)
        generator = torch.Generator().manual_seed(seed)
        steps = recipe.epochs * -(-len(rows) // recipe.batch_size)
        optimizer, scheduler = adamw_warmup_linear(
            [
                (network.parameters(), recipe.lr),
                (head.parameters(), recipe.lr * recipe.head_lr_mult),
            ],
            weight_decay=recipe.weight_decay,
            warmup=recipe.warmup,
            steps=steps,
        )
        network.train()
        head.train()
        progress = tqdm(total=steps, desc=f"{entry.name} {train.dataset} seed {seed}",
                        disable=not cfg.progress)  # fmt: skip
        for _ in range(recipe.epochs):
            for batch in _batches(len(rows), recipe.batch_size, generator):
                chosen = [rows[b] for b in batch]
                loss = F.cross_entropy(head(features(train, chosen)), targets[batch].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                progress.update()
        progress.close()

    network.eval()
    head.eval()
    predicted = []
    with torch.inference_mode():
        for chosen in _batches(len(dev.questions), cfg.batch_size):
            predicted += [answers[k] for k in head(features(dev, chosen)).argmax(1).tolist()]
    return {"vqa_accuracy": accuracy(predicted, dev.answers)}


def run_finetuning(cfg: RunConfig, out: str | Path) -> pd.DataFrame:
    """Fine-tune every (dataset, model, seed) not cached yet; write the truth table
    ``out`` (CSV, the embedded VQA truth table's columns) and return it."""
    from . import vqa_extract

    return run_image_text_finetuning(
        cfg,
        out,
        load_recipe(cfg),
        model_kind=vqa_extract.model_kind,
        # looked up at each call: a patched module attribute is the one that runs
        finetune_model=lambda *args, **kwargs: finetune_vqa_model(*args, **kwargs),
    )
