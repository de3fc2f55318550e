"""Ground truth for the embedded image benchmark: fine-tune a zoo model on a target.

README, "Embedded benchmark": each zoo model is fine-tuned on each target with ONE fixed
recipe (``params.yaml``, ``recognition.finetune``: AdamW with cosine decay, the new head at
a 10x learning rate, at least ``min_steps`` steps) and several seeds; the test accuracy is
the truth the selectors are ranked against. All layers are trained; the source head is
replaced by a freshly initialised head for the target classes. Fine-tuning is short on
purpose, so what the backbone learnt in pre-training decides the result.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
from torch import nn

from emms.datasets.digits import TargetDataset
from emms.models.zoo import load_checkpoint, predict_logits, train_classifier

__all__ = ["finetune"]


def finetune(
    model_or_checkpoint: nn.Module | str | os.PathLike,
    target: TargetDataset,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    weight_decay: float,
    head_lr: float | None,
    min_steps: int,
    progress: bool = False,
) -> float:
    """Fine-tune all layers on ``target.train_*`` and return the accuracy on ``target.test_*``.

    Args:
        model_or_checkpoint: a pre-trained zoo model (left untouched: a copy is trained)
            or a checkpoint path for :func:`emms.zoo.load_checkpoint`.
        target: the target dataset (:func:`emms.digits.load_target`).
        epochs, lr, batch_size, weight_decay: the recipe (AdamW, cosine decay to 0).
        head_lr: learning rate of the new head (``None``: ``lr``).
        min_steps: train whole epochs until at least this many optimizer steps.
        seed: seeds the new head's initialisation and the data order. The result is
            bit-identical for the same seed, model and thread count
            (``torch.set_num_threads`` is left to the caller). The global torch RNG of
            the caller is not disturbed.
        progress: show a tqdm bar.

    Returns:
        Top-1 test accuracy in [0, 1].
    """
    if isinstance(model_or_checkpoint, str | os.PathLike):
        model, _ = load_checkpoint(model_or_checkpoint)
    else:
        model = copy.deepcopy(model_or_checkpoint)
    if epochs < 0 or lr <= 0 or batch_size < 1:
        raise ValueError(
            f"Bad fine-tuning recipe epochs={epochs}, lr={lr}, batch_size={batch_size}: "
            "need epochs >= 0, lr > 0, batch_size >= 1."
        )
    train_x = torch.as_tensor(np.ascontiguousarray(target.train_images), dtype=torch.float32)
    train_y = torch.as_tensor(np.asarray(target.train_labels), dtype=torch.long)
    if len(train_x) < 2 or len(target.test_labels) < 1:
        raise ValueError(
            f"Target {target.name!r} has {len(train_x)} training and "
            f"{len(target.test_labels)} test images; fine-tuning needs >= 2 and >= 1."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.reset_classifier(target.num_classes)
        generator = torch.Generator().manual_seed(seed)
        train_classifier(
            model,
            train_x,
            train_y,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            weight_decay=weight_decay,
            generator=generator,
            augment=False,
            head_lr=head_lr,
            min_steps=min_steps,
            progress_desc=f"finetune {target.name} seed {seed}" if progress else None,
        )
    predictions = predict_logits(model, target.test_images).argmax(axis=1)
    return float(np.mean(predictions == np.asarray(target.test_labels)))
