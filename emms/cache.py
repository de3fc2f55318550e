"""Array caches: ``.npy`` (no pickles) plus a JSON sidecar, written atomically.

Every array the pipeline caches (features, F-labels, processed datasets) is stored as
``NAME.npy`` with ``NAME.json`` beside it. The sidecar records what the array is (model,
dataset, split, ...), its shape and dtype, the code version and the SHA-256 of the
``.npy`` bytes. Both files are written to a temporary name in the same folder and renamed
into place, the array first, so a reader never sees a half-written file; :func:`load_array`
checks the hash, so a truncated or corrupted cache stops with an error instead of feeding
wrong numbers downstream.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CACHE_FORMAT",
    "fingerprint",
    "CacheError",
    "atomic_write_bytes",
    "atomic_write_text",
    "save_array",
    "load_array",
    "read_sidecar",
]

#: Bumped whenever the meaning of cached arrays changes.
CACHE_FORMAT = 1


class CacheError(RuntimeError):
    """A cache file is missing, truncated, corrupt or of another version."""


def fingerprint(value: Any) -> str:
    """A short SHA-256 of a JSON-serialisable value (keys sorted): what a recipe or an
    encoder configuration is, recorded in the sidecar of every array it produced."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_array(path: str | os.PathLike, array: np.ndarray, **meta: Any) -> Path:
    """Save ``array`` as ``path`` (``.npy``) with a JSON sidecar describing it.

    Args:
        path: target ``.npy`` path.
        array: any non-object ndarray (features and F-labels are stored as float32).
        **meta: JSON-serialisable description (model, dataset, split, encoder, ...).

    Returns:
        The ``.npy`` path.
    """
    from . import __version__

    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"cache arrays are .npy files, got {path}")
    array = np.ascontiguousarray(array)
    if array.dtype == object:
        raise ValueError("object arrays would need pickles; refusing to cache them.")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    sidecar = {
        **meta,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "sha256": hashlib.sha256(data).hexdigest(),
        "code_version": __version__,
        "cache_format": CACHE_FORMAT,
    }
    atomic_write_bytes(path, data)
    atomic_write_text(_sidecar(path), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON sidecar of a cached array."""
    sidecar = _sidecar(Path(path))
    try:
        meta = json.loads(sidecar.read_text())
    except FileNotFoundError as error:
        raise CacheError(
            f"{sidecar} is missing (an interrupted write?); rerun the stage that makes "
            f"{Path(path).name} (`dvc repro`)."
        ) from error
    except json.JSONDecodeError as error:
        raise CacheError(
            f"{sidecar} is not valid JSON; delete it and rerun `dvc repro`."
        ) from error
    missing = [
        key for key in ("shape", "dtype", "sha256") if not isinstance(meta, dict) or key not in meta
    ]
    if missing:
        raise CacheError(
            f"{sidecar} is not a cache sidecar (no {', '.join(missing)}); delete it and "
            f"{Path(path).name}, and rerun the stage that writes them (`dvc repro`)."
        )
    return meta


def load_array(
    path: str | os.PathLike, *, expect: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load a cached array and verify it against its sidecar.

    Args:
        path: the ``.npy`` path.
        expect: sidecar entries that must match (e.g. ``{"dataset": "digits10"}``).

    Returns:
        ``(array, sidecar)``.

    Raises:
        CacheError: missing, truncated or corrupt file, hash or shape mismatch, other
            cache format, or an ``expect`` entry that differs.
    """
    path = Path(path)
    fix = "delete it and rerun the stage that writes it (`dvc repro`)"
    if not path.is_file():
        raise CacheError(f"cache file {path} is missing; run `dvc repro` to create it.")
    meta = read_sidecar(path)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CacheError(f"cache file {path} does not match its sidecar (truncated?); {fix}.")
    if meta.get("cache_format") != CACHE_FORMAT:
        raise CacheError(f"cache file {path} has format {meta.get('cache_format')}; {fix}.")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        raise CacheError(f"cache file {path} cannot be read ({error}); {fix}.") from error
    if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
        raise CacheError(f"cache file {path} has shape {array.shape}, not {meta['shape']}; {fix}.")
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise CacheError(
                f"cache file {path} was made for {key}={meta.get(key)!r}, expected {value!r}; "
                f"{fix}."
            )
    return array, meta
