"""EMMS out of core: features and F-labels read in row blocks, memory independent of N.

The ``exact`` solver (see :mod:`emms.selectors.emms_selector`) needs the data only through
a few additive sums over samples. With X (N, D) and Z_k (N, L):

    n,  sum_i x_i,  sum_i z_ki,  X^T X,  X^T Z_k,  and per column l: sum_i z_kil z_jil,

so they can be accumulated over row blocks of memory-mapped ``.npy`` files (or any array
sliceable by rows) and combined afterwards; the D x D and K x K algebra then runs as in
memory. Peak memory is the accumulators (D^2 + D L K + K^2 L float64) plus one row block,
whatever N.

Numerics (a single, numerically safe pass). Raw sums of squares, X^T X - N m m^T,
cancel catastrophically when a column's mean is large against its spread (features with
an offset of 1e4 and unit spread lose 8 digits). Instead every sum is of *shifted* data,
x - c and z - c_z, with the shift c the column means of the first block; the exact
centred moments follow from

    sum (x - m)(x - m)^T = S - n d d^T,     m = c + d,   d = sum (x - c) / n,

where S = sum (x - c)(x - c)^T. d is small (the first block's mean is close to the
overall mean unless the file is sorted by a feature's value), so the correction removes
no digits. The same holds for X^T Z and the label cross-moments. Partial sums with the same
shifts simply add, which is what the dask version (:mod:`emms.selectors.distributed`)
uses.

Then, exactly as the in-memory ``exact`` solver (paper §3, closed form):
s = sqrt(diag(C_xx) / n) + 1e-8 (population std + eps, as the release), A = S^-1 C_xx S^-1
(+ r N I), B_k = S^-1 C_xz,k / s_k, <Z_k, Z_l> = sum_l C_zz,kl / (s_k s_l), and
f* = min over the simplex of t^T G t, G = (<Z, Z> - <B, A^-1 B>) / (N L).

Everything is float64 (float32 inputs are converted block by block: products of two
float32 numbers are exact in float64, so the sums equal the in-memory float64 path's to
rounding, ~1e-13 relative). Deviations from :func:`emms.emms`: only ``solver="exact"``
(the alternation and the released pass need the N-sized residuals at every step, i.e.
a pass over the files per iteration), and F-labels of unequal widths are refused (their
PCA reduction needs all rows at once; reduce them first with
:func:`emms.preprocessing.reduce_width`). Input checks are done block by block: NaN/inf
name the input and the first bad row block; constant feature columns (min == max over
all rows) are dropped with a warning; a constant label column set is refused.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from emms._validation import InputError, warn_if_high_dimensional

from .emms_selector import EMMSResult, _clean_zero, _explained_and_weights, _GramFactor
from .preprocessing import EPS, check_scale, stack_layout

__all__ = ["Moments", "emms_streaming", "open_rows", "block_moments", "moments_to_result"]


@dataclass
class Moments:
    """Additive shifted sums over a set of rows (all float64).

    Attributes:
        n: rows summed.
        x_shift, z_shift: the shifts c (D,) and c_z (K, L); equal in every partial sum
            that is added to another.
        x_sum (D,), z_sum (K, L): sum of shifted values.
        xx (D, D): sum of (x - c)(x - c)^T.
        xz (D, K, L): sum of (x - c)(z_k - c_zk)^T.
        zz (K, K, L): per label column, sum of (z_k - c_zk)(z_j - c_zj).
        x_min, x_max (D,): column ranges (constant columns are dropped).
        z_range (K,): max over columns of the column range of each F-label (0: constant).
    """

    n: int
    x_shift: np.ndarray
    z_shift: np.ndarray
    x_sum: np.ndarray
    z_sum: np.ndarray
    xx: np.ndarray
    xz: np.ndarray
    zz: np.ndarray
    x_min: np.ndarray
    x_max: np.ndarray
    z_min: np.ndarray
    z_max: np.ndarray

    def __add__(self, other: Moments) -> Moments:
        if other is None or other == 0:
            return self
        return Moments(
            self.n + other.n,
            self.x_shift,
            self.z_shift,
            self.x_sum + other.x_sum,
            self.z_sum + other.z_sum,
            self.xx + other.xx,
            self.xz + other.xz,
            self.zz + other.zz,
            np.minimum(self.x_min, other.x_min),
            np.maximum(self.x_max, other.x_max),
            np.minimum(self.z_min, other.z_min),
            np.maximum(self.z_max, other.z_max),
        )

    __radd__ = __add__

    def accumulate(self, other: Moments) -> Moments:
        """Add ``other`` in place (no temporary copies of the D x D sums)."""
        self.n += other.n
        for name in ("x_sum", "z_sum", "xx", "xz", "zz"):
            getattr(self, name).__iadd__(getattr(other, name))
        np.minimum(self.x_min, other.x_min, out=self.x_min)
        np.maximum(self.x_max, other.x_max, out=self.x_max)
        np.minimum(self.z_min, other.z_min, out=self.z_min)
        np.maximum(self.z_max, other.z_max, out=self.z_max)
        return self


def _load(value, name):
    if isinstance(value, (str, os.PathLike)):
        try:
            return np.load(value, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise InputError(f"{name}: cannot memory-map {value!s} as .npy ({error}).") from None
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    raise InputError(f"{name}: pass a path to an .npy file or an array, got {type(value)}.")


def open_rows(features, label_embeddings, *, layout=None):
    """Open the inputs (paths are memory-mapped read-only) and check their shapes.

    Returns:
        ``(x, read_labels, (n, d, k, width))`` with ``x`` sliceable by rows and
        ``read_labels(start, stop)`` -> (rows, K, L) float64 array.
    """
    x = _load(features, "features")
    if len(x.shape) != 2:
        raise InputError(f"features must be 2-D (N, D), got shape {tuple(x.shape)}.")
    n, d = x.shape
    if n < 2:
        raise InputError(f"features has N={n} samples; at least 2 are needed.")
    if isinstance(label_embeddings, (list, tuple)):
        sources = [_load(z, f"label_embeddings[{i}]") for i, z in enumerate(label_embeddings)]
        if not sources:
            raise InputError("label_embeddings is an empty sequence.")
        widths = {z.shape[1] if len(z.shape) == 2 else -1 for z in sources}
        if len(widths) != 1 or -1 in widths:
            raise InputError(
                "label_embeddings: the streaming solver needs K arrays of one common shape "
                f"(N, L); got shapes {[tuple(z.shape) for z in sources]}. Reduce unequal "
                "widths first (emms.preprocessing.reduce_width)."
            )
        k, width = len(sources), sources[0].shape[1]
        rows = [z.shape[0] for z in sources]

        def read_labels(start, stop):
            block = np.stack([np.asarray(z[start:stop], dtype=np.float64) for z in sources], 1)
            for z in sources:
                _release(z, start, stop)
            return block

    else:
        z = _load(label_embeddings, "label_embeddings")
        rows = [z.shape[0]]
        if len(z.shape) == 2:
            k, width = 1, z.shape[1]

            def read_labels(start, stop):
                block = np.asarray(z[start:stop], dtype=np.float64)[:, None, :]
                _release(z, start, stop)
                return block

        elif len(z.shape) == 3:
            order = stack_layout(z.shape, layout)
            if order == "NKL":
                k, width = z.shape[1], z.shape[2]

                def read_labels(start, stop):
                    block = np.asarray(z[start:stop], dtype=np.float64)
                    _release(z, start, stop)
                    return block

            else:
                width, k = z.shape[1], z.shape[2]

                def read_labels(start, stop):
                    block = np.ascontiguousarray(
                        np.moveaxis(np.asarray(z[start:stop], dtype=np.float64), 2, 1)
                    )
                    _release(z, start, stop)
                    return block

        else:
            raise InputError(
                f"label_embeddings must be (N, L, K), (N, L) or a list; got {tuple(z.shape)}."
            )
    if any(r != n for r in rows):
        raise InputError(
            f"label_embeddings have {rows} rows but the features have N={n}; embed the label "
            "of every feature row, in the same order."
        )
    return x, read_labels, (n, d, k, width)


def _release(array, start, stop):
    """Drop rows [start, stop) of a memory-mapped array from this process's resident set
    (``madvise(MADV_DONTNEED)``; the file's pages stay in the OS page cache). Without it
    every page read through the mapping stays counted in the process's RSS, which then
    grows with N although nothing is kept."""
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(mmap, "MADV_DONTNEED") or len(array.shape) < 1:
        return
    row_bytes = array.strides[0]
    base = getattr(array, "offset", 0)
    page = mmap.PAGESIZE
    first = -(-(base + start * row_bytes) // page) * page  # pages wholly inside the rows
    last = (base + stop * row_bytes) // page * page
    if last > first:
        try:
            handle.madvise(mmap.MADV_DONTNEED, first, last - first)
        except (OSError, ValueError):
            pass


def _finite(block, name, start):
    if not np.isfinite(block).all():
        raise InputError(
            f"{name} contains NaN or inf values in rows {start}..{start + len(block) - 1}; "
            "remove or impute those rows before scoring."
        )


def block_moments(x_block, z_block, x_shift, z_shift, start=0) -> Moments:
    """Shifted sums of one row block: x_block (b, D), z_block (b, K, L), both float64."""
    _finite(x_block, "features", start)
    _finite(z_block, "label_embeddings", start)
    b, k, width = z_block.shape
    with np.errstate(over="ignore", invalid="ignore"):
        xc = x_block - x_shift
        zc = z_block - z_shift
        xx = xc.T @ xc
        xz = (xc.T @ zc.reshape(b, k * width)).reshape(-1, k, width)
        zz = np.empty((k, k, width))
        for i in range(k):
            for j in range(i + 1):
                zz[i, j] = zz[j, i] = np.einsum("ij,ij->j", zc[:, i], zc[:, j])
    return Moments(
        b, x_shift, z_shift, xc.sum(0), zc.sum(0), xx, xz, zz,
        x_block.min(0), x_block.max(0), z_block.min(0), z_block.max(0),
    )  # fmt: skip


def first_block_shifts(x, read_labels, block_rows):
    """The shifts: column means of the first block (float64)."""
    stop = min(block_rows, x.shape[0])
    return (
        np.asarray(x[:stop], dtype=np.float64).mean(0),
        read_labels(0, stop).mean(0),
    )


def moments_to_result(m: Moments, *, ridge: float = 0.0, standardize: bool = True):
    """The exact EMMS solution from the summed moments (see the module docstring)."""
    n = m.n
    k, width = m.z_shift.shape
    dx, dz = m.x_sum / n, m.z_sum / n
    with np.errstate(over="ignore", invalid="ignore"):
        cxx = m.xx - n * np.outer(dx, dx)
        cxz = m.xz - n * dx[:, None, None] * dz[None]
        czz = m.zz - n * dz[:, None, :] * dz[None, :, :]
    check_scale(np.diagonal(cxx), "features")
    check_scale(np.diagonal(czz).T, "label_embeddings")
    if (m.z_max - m.z_min).max(axis=1).min() == 0:
        raise InputError(
            "label_embeddings: an F-label is the same for every sample (one distinct label "
            "text?); transferability needs at least 2 distinct labels."
        )
    if standardize:
        constant = m.x_max == m.x_min
        if constant.all():
            raise InputError("features: every column is constant; check the feature extraction.")
        if constant.any():
            warnings.warn(
                f"features: {int(constant.sum())} constant column(s) carry no information "
                "and are dropped.",
                stacklevel=3,
            )
            keep = ~constant
            cxx, cxz = cxx[np.ix_(keep, keep)], cxz[keep]
        sx = np.sqrt(np.maximum(np.diagonal(cxx), 0) / n) + EPS
        sz = np.sqrt(np.maximum(np.einsum("iil->il", czz), 0) / n) + EPS
        gram = cxx / np.outer(sx, sx)
        products = cxz / sx[:, None, None] / sz[None]
        zz = (czz / (sz[:, None, :] * sz[None, :, :])).sum(axis=2)
    else:
        mx, mz = m.x_shift + dx, m.z_shift + dz
        gram = cxx + n * np.outer(mx, mx)
        products = cxz + n * mx[:, None, None] * mz[None]
        zz = (czz + n * mz[:, None, :] * mz[None, :, :]).sum(axis=2)
    d = gram.shape[0]
    if ridge < 0:
        raise InputError(f"ridge={ridge} must be >= 0.")
    if ridge == 0:
        warn_if_high_dimensional(n, d)
    if ridge:
        gram[np.diag_indices_from(gram)] += ridge * n
    scale = float(n * width)
    factor = _GramFactor(gram)
    weights, objective, _ = _explained_and_weights(
        factor, products.reshape(d, k * width), zz, k, width, scale
    )
    objective = _clean_zero(objective, zz.diagonal().max() / scale)
    return EMMSResult(-objective, weights, objective, 1, True, "exact")


def emms_streaming(
    features,
    label_embeddings,
    *,
    block_rows: int = 4096,
    ridge: float = 0.0,
    standardize: bool = True,
    layout: str | None = None,
) -> EMMSResult:
    """EMMS (``solver="exact"``) over inputs that do not fit in memory, one row block at
    a time; equal to :func:`emms.emms` to rounding (float64 throughout).

    Args:
        features: path to an (N, D) ``.npy`` file (memory-mapped read-only), or any
            (N, D) array sliceable by rows (an ``np.memmap``, an ndarray, an h5py dataset).
        label_embeddings: path or array of shape (N, L, K) (or (N, K, L) with
            ``layout="NKL"``, or (N, L) for K = 1), or a list of K paths/arrays (N, L).
        block_rows: rows read per block; memory is ~8 (D + K L) block_rows bytes for the
            block plus 8 (D^2 + D K L + K^2 L) for the sums, independent of N.
        ridge, standardize, layout: as :func:`emms.emms`.

    Returns:
        :class:`emms.EMMSResult` (solver ``"exact"``).
    """
    if block_rows < 1:
        raise InputError(f"block_rows={block_rows} must be >= 1.")
    x, read_labels, (n, _, _, _) = open_rows(features, label_embeddings, layout=layout)
    x_shift, z_shift = first_block_shifts(x, read_labels, block_rows)
    total = None
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        x_block = np.asarray(x[start:stop], dtype=np.float64)
        _release(x, start, stop)
        part = block_moments(x_block, read_labels(start, stop), x_shift, z_shift, start)
        del x_block
        total = part if total is None else total.accumulate(part)
        del part
    return moments_to_result(total, ridge=ridge, standardize=standardize)
