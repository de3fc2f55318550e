"""Feature extraction from zoo backbones (the X of every selector).

The features of an image are the input of the model's final classifier: timm's pooled
pre-logits, ``model.forward_head(model.forward_features(x), pre_logits=True)``. For every
timm classifier ``model(x) == model.get_classifier()(features)`` in eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(model: nn.Module, images, batch_size: int = 256) -> np.ndarray:
    """Pooled pre-logit features of ``images``.

    Args:
        model: a timm classifier (any head: the source head or a fine-tuned one).
        images: float32 array or tensor of shape (N, 1, S, S), as built by
            :mod:`emms.datasets.digits`.
        batch_size: images per forward pass; the result does not depend on it beyond
            floating-point rounding, and is bit-identical for a fixed batch size.

    Returns:
        float32 array of shape (N, D). The model is run in eval mode without gradients
        and is left in the mode it was in.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    x = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32)
    if x.ndim != 4:
        raise ValueError(
            f"images must have shape (N, C, S, S), got {tuple(x.shape)}; build them with "
            "emms.datasets.digits.load_target / load_source."
        )
    if len(x) == 0:
        raise ValueError("images is empty: there is nothing to extract features from.")
    was_training = model.training
    model.eval()
    try:
        parts = [
            model.forward_head(model.forward_features(x[i : i + batch_size]), pre_logits=True)
            for i in range(0, len(x), batch_size)
        ]
    finally:
        model.train(was_training)
    features = torch.cat(parts).reshape(len(x), -1)
    return features.numpy().astype(np.float32, copy=False)
