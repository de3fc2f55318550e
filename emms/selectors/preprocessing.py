"""Column standardisation and the shaping of label embeddings (README, "The method"; paper §3.2).

The authors' release z-scores every column of the features and of each F-label with the
population standard deviation and adds 1e-8 to it; :func:`standardize` does the same,
into a fresh array (the input is never written), for NumPy arrays and torch tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from emms._validation import InputError, _as_real_array, _check_finite

__all__ = ["EPS", "standardize", "label_moments", "as_label_embedding_stack", "reduce_width"]

#: Added to the population standard deviation, as in the authors' release.
EPS = 1e-8


def standardize(x, eps: float = EPS, *, name: str = "features"):
    """Column z-scores ``(x - mean) / (std + eps)`` with the population std.

    Args:
        x: (N, D) ndarray or torch tensor.
        name: how the input is called in the error raised when its squares overflow.

    Returns:
        A new array (same type, dtype and device) of shape (N, D).

    Raises:
        InputError: a column's sum of squares overflows the working dtype (e.g. features
            scaled by 1e155 in float64): the z-scores would silently be 0.
    """
    n = x.shape[0]
    if isinstance(x, np.ndarray):
        mean = x.mean(axis=0, dtype=np.float64).astype(x.dtype)
        out = np.subtract(x, mean)
        with np.errstate(over="ignore", invalid="ignore"):
            std = np.sqrt(np.einsum("ij,ij->j", out, out) / n)
        check_scale(std, name)
        out /= std + x.dtype.type(eps)
        return out
    out = x - x.mean(dim=0)
    std = (out * out).sum(dim=0).div_(n).sqrt_()
    check_scale(std.detach().cpu().numpy(), name)
    return out.div_(std + eps)


def check_scale(std, name: str) -> None:
    """Refuse an input whose column standard deviations (or sums of squares) overflowed.

    A float64 square overflows past ~1.3e154, a float32 one past ~1.8e19; the z-scores
    of such a column would silently be 0 (x / inf), so every model would fit nothing.
    """
    std = np.asarray(std)
    if not np.isfinite(std).all():
        bad = int((~np.isfinite(std)).sum())
        raise InputError(
            f"{name}: the squares of {bad} column(s) overflow {std.dtype} while "
            "standardising (values too large, e.g. 1e155); rescale the input first, e.g. "
            "divide it by its largest absolute value (the score is scale-invariant)."
        )


def label_moments(
    blocks: list[np.ndarray], *, standardize: bool = True, eps: float = EPS, chunk: int = 1 << 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means and scales of K label blocks and the Gram of their standardised forms,
    in float64, streaming over row chunks (no standardised copy of the labels is made).

    Args:
        blocks: K arrays of shape (N, L).
        standardize: if False, means are 0, scales 1 and the Gram is of the raw blocks.
        chunk: entries per block converted to float64 at a time.

    Returns:
        ``(mean, scale, gram)``: (K, L), (K, L) and (K, K) with
        ``gram[k, l] = <(Z_k - mean_k) / scale_k, (Z_l - mean_l) / scale_l>``, where
        ``scale = population std + eps``.
    """
    k, (n, width) = len(blocks), blocks[0].shape
    if not isinstance(blocks[0], np.ndarray):
        return _label_moments_torch(blocks, standardize, eps, chunk)
    if standardize:
        mean = np.stack([block.mean(axis=0, dtype=np.float64) for block in blocks])
        check_scale(mean, "label_embeddings")
    else:
        mean = np.zeros((k, width))
    cross = np.zeros((k, k, width))
    step = max(1, chunk // width)
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, step):
            centred = [
                block[start : start + step].astype(np.float64) - mean[i]
                for i, block in enumerate(blocks)
            ]
            for i in range(k):
                for j in range(i + 1):
                    cross[i, j] += np.einsum("ij,ij->j", centred[i], centred[j])
    for i in range(k):
        for j in range(i):
            cross[j, i] = cross[i, j]
    check_scale(cross, "label_embeddings")
    if standardize:
        scale = np.sqrt(cross[np.arange(k), np.arange(k)] / n) + eps
    else:
        scale = np.ones((k, width))
    gram = (cross / (scale[:, None, :] * scale[None, :, :])).sum(axis=2)
    return mean, scale, gram


def _label_moments_torch(blocks, standardize, eps, chunk):
    """:func:`label_moments` for torch tensors, on their device (float64 accumulation);
    returns NumPy arrays. Used by the torch backend so that the N L K pass over the
    labels runs on the accelerator rather than on the host."""
    import torch

    k, (n, width) = len(blocks), blocks[0].shape
    device = blocks[0].device
    if standardize:
        mean = torch.stack([block.sum(dim=0, dtype=torch.float64) / n for block in blocks])
    else:
        mean = torch.zeros((k, width), dtype=torch.float64, device=device)
    check_scale(mean.cpu().numpy(), "label_embeddings")
    cross = torch.zeros((k, k, width), dtype=torch.float64, device=device)
    step = max(1, chunk // width)
    for start in range(0, n, step):
        centred = [block[start : start + step].double() - mean[i] for i, block in enumerate(blocks)]
        for i in range(k):
            for j in range(i + 1):
                cross[i, j] += (centred[i] * centred[j]).sum(dim=0)
    cross, mean = cross.cpu().numpy(), mean.cpu().numpy()
    for i in range(k):
        for j in range(i):
            cross[j, i] = cross[i, j]
    check_scale(cross, "label_embeddings")
    if standardize:
        scale = np.sqrt(cross[np.arange(k), np.arange(k)] / n) + eps
    else:
        scale = np.ones((k, width))
    gram = (cross / (scale[:, None, :] * scale[None, :, :])).sum(axis=2)
    return mean, scale, gram


def reduce_width(z: np.ndarray, width: int) -> np.ndarray:
    """Reduce (N, L) to (N, width) by PCA, deterministically.

    The columns are centred, the top ``width`` principal components are kept (scores
    ``U_m S_m`` of the thin SVD), and each component's sign is fixed so that its loading
    vector's largest-magnitude entry is positive. SVD is unique up to these signs (for
    distinct singular values), so the output depends on the data only.

    Args:
        z: (N, L) array with L >= width.

    Returns:
        (N, width) float64 array.
    """
    z = np.asarray(z, dtype=np.float64)
    if width > z.shape[1]:
        raise ValueError(f"cannot reduce width {z.shape[1]} to a larger width {width}.")
    centred = z - z.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    u, s, vt = u[:, :width], s[:width], vt[:width]
    signs = np.sign(vt[np.arange(width), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return u * (s * signs)


#: The most F-labels an (N, L, K) stack may have before its layout is doubted.
MAX_PLAUSIBLE_K = 32

LAYOUTS = ("NLK", "NKL")


def stack_layout(shape, layout, name: str = "label_embeddings") -> str:
    """The axis order of a 3-D F-label stack: ``layout`` if given, else ``"NLK"`` when the
    K axis is plausible; an implausible K (K > L or K > 32) is an :class:`InputError`."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise InputError(f"layout={layout!r} is unknown; pass 'NLK' or 'NKL'.")
        return layout
    _, width, k = shape
    if k > width or k > MAX_PLAUSIBLE_K:
        raise InputError(
            f"{name} has shape {tuple(shape)}, read as (N, L, K): K={k} F-labels of width "
            f"L={width} is implausible (K > L or K > {MAX_PLAUSIBLE_K}); an (N, K, L) stack "
            "is probably meant. Pass layout='NKL' for an (N, K, L) array, layout='NLK' to "
            "confirm (N, L, K), or the list form [Z_1, ..., Z_K] of (N, L) arrays."
        )
    return "NLK"


def as_label_embedding_stack(
    label_embeddings, n_samples: int, *, name: str = "label_embeddings", layout=None
) -> list[np.ndarray]:
    """Validate F-labels and return them as a list of K arrays of shape (N, L).

    Accepted forms:
      * an (N, L, K) array: K foundation models, one common width L (the release's layout);
        ``layout="NKL"`` takes an (N, K, L) array instead. Without ``layout`` an array
        whose last axis looks like a width rather than a count of foundation models
        (K > L, or K > ``MAX_PLAUSIBLE_K`` = 32) is refused: an (N, K, L) stack read as
        (N, L, K) would silently mix unrelated embedding coordinates.
      * an (N, L) array: K = 1;
      * a sequence of K arrays of shapes (N, L_k). Unequal widths are reduced to the
        smallest, L = min_k L_k, by :func:`reduce_width` (deterministic PCA), so that the
        K embeddings can be mixed entry by entry.

    The returned arrays are views of the input where no reduction was needed: callers must
    not write into them.
    """
    if isinstance(label_embeddings, Sequence) and not isinstance(label_embeddings, str):
        blocks = [_as_real_array(block, f"{name}[{k}]") for k, block in enumerate(label_embeddings)]
        if not blocks:
            raise InputError(f"{name} is an empty sequence; pass K >= 1 arrays of shape (N, L).")
    else:
        array = _as_real_array(label_embeddings, name)
        if layout is not None and layout not in LAYOUTS:
            raise InputError(f"layout={layout!r} is unknown; pass 'NLK' or 'NKL'.")
        if array.ndim == 2:
            blocks = [array]
        elif array.ndim == 3 and stack_layout(array.shape, layout, name) == "NKL":
            blocks = [array[:, k, :] for k in range(array.shape[1])]
        elif array.ndim == 3:
            blocks = [array[:, :, k] for k in range(array.shape[2])]
        else:
            raise InputError(
                f"{name} must be (N, L, K), (N, L) or a list of K (N, L_k) arrays; got "
                f"shape {array.shape}."
            )
    for k, block in enumerate(blocks):
        label = f"{name}[{k}]" if len(blocks) > 1 else name
        if block.ndim != 2:
            raise InputError(f"{label} must be 2-D (N, L), got shape {block.shape}.")
        if block.shape[0] != n_samples:
            raise InputError(
                f"{label} has {block.shape[0]} rows but the features have N={n_samples}; "
                "embed the label of every feature row, in the same order."
            )
        if block.shape[1] < 1:
            raise InputError(f"{label} has no columns.")
        _check_finite(block, label)
        if np.ptp(block, axis=0).max() == 0:
            raise InputError(
                f"{label} is the same for every sample (one distinct label text?); "
                "transferability needs at least 2 distinct labels."
            )
    widths = {block.shape[1] for block in blocks}
    if len(widths) > 1:
        width = min(widths)
        warnings.warn(
            f"{name} have unequal widths {sorted(widths)}; each is reduced to L={width} "
            "by PCA (emms.preprocessing.reduce_width).",
            stacklevel=3,
        )
        blocks = [
            block if block.shape[1] == width else reduce_width(block, width) for block in blocks
        ]
    return blocks
