"""EMMS on a dask cluster: the blocked sums of :mod:`emms.selectors.streaming`, one task
per row block, on ``dask.array`` views of the (memory-mapped) inputs.

The maths is that of :func:`emms.emms_streaming` (see its module docstring): every row
block yields additive shifted sums (``Moments``: n, sums, X^T X, X^T Z_k, label
cross-moments, column ranges), all with the same shifts (the first block's column
means, computed on the client), which a tree of additions reduces to one; the D x D and
K x K algebra then runs on the client. The result equals the in-memory ``exact`` solver
to rounding.

Inputs: paths to ``.npy`` files are opened *inside each task* with
``np.load(mmap_mode="r")`` (so a task ships a file name and a row range, never data; on a
real cluster the files must be visible to every worker at the same path), and wrapped as
a ``dask.array`` of row chunks; ndarrays/memmaps are wrapped with ``da.from_array``
(fine for threads; with worker processes they are pickled, so prefer paths); a
``dask.array`` is used as given (its row chunks are the blocks; features and F-labels
must share them).

Scheduler: ``client`` if given; else ``address`` (a ``dask.distributed`` scheduler,
"tcp://host:8786"); else a ``LocalCluster`` started for the call and closed after.

Requires ``dask[array]`` and ``distributed`` (``pip install "dask[distributed]"``).
"""

from __future__ import annotations

import os

import numpy as np

from emms._validation import InputError

from .preprocessing import stack_layout
from .streaming import Moments, block_moments, moments_to_result

__all__ = ["emms_dask"]


def _require_dask():
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError as error:  # pragma: no cover - exercised only without dask
        raise ImportError(
            "emms.selectors.distributed needs dask and distributed "
            f'({error}); install them with pip install "dask[array,distributed]", or use '
            "emms.emms_streaming (no dask) on one machine."
        ) from None
    return dask, da, distributed


def _read_rows(path, start, stop, dtype):
    return np.asarray(np.load(path, mmap_mode="r")[start:stop], dtype=dtype)


def _as_dask(value, name, block_rows, da, dask):
    if isinstance(value, da.Array):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        header = np.load(path, mmap_mode="r")
        shape, dtype = header.shape, header.dtype
        del header
        chunks = []
        for start in range(0, shape[0], block_rows):
            stop = min(start + block_rows, shape[0])
            chunks.append(
                da.from_delayed(
                    dask.delayed(_read_rows)(path, start, stop, dtype),
                    shape=(stop - start, *shape[1:]),
                    dtype=dtype,
                )
            )
        return da.concatenate(chunks, axis=0)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return da.from_array(value, chunks=(block_rows, *value.shape[1:]))
    raise InputError(f"{name}: pass a path to an .npy file, an array or a dask array.")


def _partial(x_block, z_block, x_shift, z_shift, order, start) -> Moments:
    x_block = np.asarray(x_block, dtype=np.float64)
    z_block = np.asarray(z_block, dtype=np.float64)
    if z_block.ndim == 2:
        z_block = z_block[:, None, :]
    elif order == "NLK":
        z_block = np.ascontiguousarray(np.moveaxis(z_block, 2, 1))
    return block_moments(x_block, z_block, x_shift, z_shift, start)


def _total(parts):
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def emms_dask(
    features,
    label_embeddings,
    *,
    block_rows: int = 8192,
    client=None,
    address: str | None = None,
    n_workers: int = 2,
    processes: bool = False,
    ridge: float = 0.0,
    standardize: bool = True,
    layout: str | None = None,
    split_every: int = 8,
):
    """EMMS (``solver="exact"``) with the row-block sums computed by dask.

    Args:
        features: (N, D) ``.npy`` path, array or ``dask.array``.
        label_embeddings: (N, L, K) (or (N, K, L) with ``layout="NKL"``, or (N, L))
            ``.npy`` path, array or ``dask.array`` with the features' row chunks.
        block_rows: rows per task (paths and arrays; a dask array keeps its chunks).
        client: a ``distributed.Client`` to use (not closed).
        address: scheduler address of a running cluster, used when ``client`` is None.
        n_workers, processes: of the ``LocalCluster`` started when neither is given.
        ridge, standardize: as :func:`emms.emms`.
        split_every: fan-in of the tree that adds the partial sums.

    Returns:
        :class:`emms.EMMSResult`, equal to ``emms.emms(..., solver="exact")`` to rounding.
    """
    dask, da, distributed = _require_dask()
    if block_rows < 1:
        raise InputError(f"block_rows={block_rows} must be >= 1.")
    x = _as_dask(features, "features", block_rows, da, dask)
    z = _as_dask(label_embeddings, "label_embeddings", block_rows, da, dask)
    if x.ndim != 2:
        raise InputError(f"features must be 2-D (N, D), got shape {x.shape}.")
    if z.ndim not in (2, 3):
        raise InputError(f"label_embeddings must be (N, L, K) or (N, L), got {z.shape}.")
    if z.shape[0] != x.shape[0]:
        raise InputError(
            f"label_embeddings have {z.shape[0]} rows but the features have N={x.shape[0]}."
        )
    order = stack_layout(z.shape, layout) if z.ndim == 3 else "NLK"
    x = x.rechunk({1: -1})
    z = z.rechunk({0: x.chunks[0], **{axis: -1 for axis in range(1, z.ndim)}})

    def run(client):
        first = x.chunks[0][0]
        x0 = np.asarray(x[:first].compute(), dtype=np.float64)
        z0 = _partial(x0, z[:first].compute(), 0.0, 0.0, order, 0)
        x_shift, z_shift = z0.x_sum / z0.n, z0.z_sum / z0.n
        starts = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]])
        parts = [
            dask.delayed(_partial)(xb, zb, x_shift, z_shift, order, int(start))
            for xb, zb, start in zip(
                x.to_delayed().ravel(), z.to_delayed().ravel(), starts, strict=True
            )
        ]
        while len(parts) > 1:
            parts = [
                dask.delayed(_total)(parts[i : i + split_every])
                for i in range(0, len(parts), split_every)
            ]
        return client.compute(parts[0]).result()

    if client is not None:
        total = run(client)
    elif address is not None:
        with distributed.Client(address) as own:
            total = run(own)
    else:
        with (
            distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as own,
        ):
            total = run(own)
    return moments_to_result(total, ridge=ridge, standardize=standardize)
