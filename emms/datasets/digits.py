"""The image side of the embedded benchmark: scikit-learn's handwritten digits.

The embedded image data (README, "Embedded benchmark"). Nothing here downloads anything:
the 1,797 8x8 digits ship inside scikit-learn. The data flow is

    load_digits() --materialize_raw--> raw/images.npy, raw/targets.npy   (the DVC data)
    raw --split_pools--> SOURCE pool (pre-training) | TARGET pool (transfer targets)
    SOURCE pool --load_source--> SourceDataset (10-way digit classification)
    TARGET pool --load_target--> TargetDataset for each name in TARGETS

The two pools are disjoint and stratified by digit; the pool split uses a fixed seed
(:data:`POOL_SEED`) that is deliberately *not* a parameter of :func:`load_target`, so no
target image can ever have been seen during pre-training, whatever target seed is used.

Images fed to the models are float32 arrays of shape (N, 1, S, S): pixels scaled to [0, 1]
(raw values are 0..16), upscaled bilinearly from 8x8 to S x S (:data:`IMAGE_SIZE`), then
standardised with the fixed constants :data:`PIXEL_MEAN` and :data:`PIXEL_STD` (the mean
and standard deviation of all 1,797 upscaled digits, 0.305 and 0.32 at S = 16 or 32).

Targets (see :data:`TARGETS`):

``digits10``
    The ten digits, class names "zero" .. "nine"; the target pool split 50/50 into
    train/test, stratified by digit.
``shapes3``
    The same images grouped by stroke shape into three classes:
    "digit with a closed loop" = {0, 6, 8, 9} (the stroke encloses a hole),
    "digit of straight strokes" = {1, 4, 7} (drawn with straight lines: the sklearn 4 is
    the open, straight-stroke form), "open curved digit" = {2, 3, 5} (curved strokes that
    never close). Same 50/50 split, stratified by digit (hence also by group).
``noisy_lowshot``
    The ten digits under corruption: additive Gaussian noise (sigma
    :data:`NOISE_SIGMA` in [0, 1] pixel units) and one occluding square of side S/4 at a
    random position, with only :data:`LOWSHOT_SHOTS` training images per class; every
    other target-pool image is a test image. Corruption and shots are drawn from the
    target seed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emms.cache import atomic_write_bytes

__all__ = [
    "RAW_FILES",
    "N_DIGITS",
    "IMAGE_SIZE",
    "POOL_SEED",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "DIGIT_NAMES",
    "SHAPE_GROUPS",
    "LOWSHOT_SHOTS",
    "NOISE_SIGMA",
    "RawDataError",
    "UnknownTargetError",
    "SourceDataset",
    "TargetDataset",
    "TargetSpec",
    "TARGETS",
    "materialize_raw",
    "load_raw",
    "split_pools",
    "to_model_input",
    "load_source",
    "load_target",
    "target_names",
]

RAW_FILES = ("images.npy", "targets.npy")
#: The pin of the raw data, reviewed in git: SHA-256 of each file written by
#: :func:`materialize_raw` from scikit-learn 1.9.1's digits. ``data.dvc`` pins the same
#: bytes for DVC, but DVC may rewrite that file; this one only a commit changes, and
#: :func:`load_raw` refuses any other bytes.
RAW_SHA256 = {
    "images.npy": "88e52eb3e11cb9cc0130dc8fc4b6256aa919b3275fec17e6c2f880e1ae8d34ae",
    "targets.npy": "0e1c5e26d7ec59f910975e2cd61b6b76bc67b4bfaa8a4233726a6038d8e62a2c",
}
#: The hash DVC gives the same folder (``data.dvc``, out ``data/raw/digits``).
RAW_DVC_MD5 = "4f2a13eba068a88c31761cb7183c5a08.dir"
N_DIGITS = 1797
IMAGE_SIZE = 32
POOL_SEED = 0
SOURCE_FRACTION = 0.5
PIXEL_MEAN = 0.305
PIXEL_STD = 0.32
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHAPE_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("digit with a closed loop", (0, 6, 8, 9)),
    ("digit of straight strokes", (1, 4, 7)),
    ("open curved digit", (2, 3, 5)),
)
LOWSHOT_SHOTS = 10
NOISE_SIGMA = 0.25
_FIX = "run `python -m emms materialize-data` (or `dvc pull`) to recreate it"


class RawDataError(FileNotFoundError):
    """The raw digits files are missing or corrupt; the message names the file and fix."""


class UnknownTargetError(KeyError):
    """An unknown target dataset name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- raw data


def _atomic_save_npy(array: np.ndarray, path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def materialize_raw(out_dir: str | os.PathLike) -> list[Path]:
    """Write scikit-learn's digits as ``images.npy`` and ``targets.npy`` in ``out_dir``.

    ``images.npy``: uint8, shape (1797, 8, 8), values 0..16. ``targets.npy``: int64,
    shape (1797,), values 0..9. Plain ``np.save`` (no zip, no timestamps), so the bytes
    are identical on every run; each file is written to a temporary file and renamed.

    Returns:
        The two written paths, in the order of :data:`RAW_FILES`.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images).astype(np.uint8)
    targets = np.asarray(digits.target, dtype=np.int64)
    _validate(images, targets, "sklearn.datasets.load_digits()", require_full=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / RAW_FILES[0], out / RAW_FILES[1]]
    _atomic_save_npy(np.ascontiguousarray(images), paths[0])
    _atomic_save_npy(np.ascontiguousarray(targets), paths[1])
    return paths


def _validate(images: np.ndarray, targets: np.ndarray, where: str, *, require_full: bool):
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise RawDataError(f"{where}: images must have shape (N, 8, 8), got {images.shape}.")
    if targets.ndim != 1 or len(targets) != len(images):
        raise RawDataError(
            f"{where}: targets must have shape ({len(images)},), got {targets.shape}."
        )
    if require_full and len(images) != N_DIGITS:
        raise RawDataError(f"{where}: expected {N_DIGITS} digits, found {len(images)}.")
    if len(images) and (images.min() < 0 or images.max() > 16):
        raise RawDataError(f"{where}: pixel values must lie in 0..16.")
    if len(targets) and (targets.min() < 0 or targets.max() > 9):
        raise RawDataError(f"{where}: digit labels must lie in 0..9.")


def load_raw(raw_dir: str | os.PathLike, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate the files written by :func:`materialize_raw`.

    ``verify`` (default) checks each file's SHA-256 against :data:`RAW_SHA256`; only tests
    of the validation itself turn it off.

    Returns:
        ``(images, targets)``: uint8 (1797, 8, 8) with values 0..16, int64 (1797,).

    Raises:
        RawDataError: a file is missing, truncated, not a .npy array, or has the wrong
            dtype, shape or value range. The message names the file and the fix.
    """
    import hashlib

    raw = Path(raw_dir)
    arrays = []
    for name, dtype in zip(RAW_FILES, (np.uint8, np.int64), strict=True):
        path = raw / name
        if not path.is_file():
            raise RawDataError(f"Raw digits file {path} is missing; {_FIX}.")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if verify and digest != RAW_SHA256[name]:
            raise RawDataError(
                f"Raw digits file {path} has SHA-256 {digest[:12]}..., not the pinned "
                f"{RAW_SHA256[name][:12]}... (emms/datasets/digits.py RAW_SHA256): the bytes "
                f"were edited or come from another scikit-learn. Delete {raw} and {_FIX}."
            )
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # truncated, not a .npy, a pickled object array...
            raise RawDataError(
                f"Raw digits file {path} is corrupt or truncated ({exc}); delete it and {_FIX}."
            ) from exc
        if array.dtype != dtype:
            raise RawDataError(
                f"Raw digits file {path} has dtype {array.dtype}, expected "
                f"{np.dtype(dtype)}; {_FIX}."
            )
        arrays.append(array)
    images, targets = arrays
    try:
        _validate(images, targets, f"Raw digits in {raw}", require_full=True)
    except RawDataError as exc:
        raise RawDataError(f"{exc} The files are corrupt; {_FIX}.") from None
    return images, targets


def _as_arrays(raw_dir_or_arrays) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(raw_dir_or_arrays, str | os.PathLike):
        return load_raw(raw_dir_or_arrays)
    try:
        images, targets = raw_dir_or_arrays
    except (TypeError, ValueError):
        raise TypeError(
            "Pass the raw directory (a path) or an (images, targets) pair of arrays, got "
            f"{type(raw_dir_or_arrays).__name__}."
        ) from None
    images, targets = np.asarray(images), np.asarray(targets)
    _validate(images, targets, "The (images, targets) arrays", require_full=False)
    return images, targets.astype(np.int64)


# --------------------------------------------------------------------------- splits


def _stratified_split(
    labels: np.ndarray, first_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class: round(first_fraction * n_c) go first; both sorted."""
    first, second = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(first_fraction * len(idx)))
        first.append(idx[:k])
        second.append(idx[k:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def split_pools(
    targets: np.ndarray, seed: int = POOL_SEED, source_fraction: float = SOURCE_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint SOURCE and TARGET pools of indices into the raw digits, stratified by digit.

    Returns:
        ``(source_idx, target_idx)``: sorted int64 index arrays that together cover
        every image exactly once.
    """
    targets = np.asarray(targets)
    rng = np.random.default_rng([seed, 7001])
    return _stratified_split(targets, source_fraction, rng)


def to_model_input(images: np.ndarray, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Raw digits (N, 8, 8) in 0..16 -> model input float32 (N, 1, S, S), standardised."""
    return _standardise(_upscale(images, image_size))


def _upscale(images: np.ndarray, image_size: int) -> np.ndarray:
    """(N, 8, 8) in 0..16 -> float32 (N, 1, S, S) in [0, 1], bilinear."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 16.0)[:, None]
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.numpy().astype(np.float32, copy=False)


def _standardise(unit_images: np.ndarray) -> np.ndarray:
    return ((unit_images - PIXEL_MEAN) / PIXEL_STD).astype(np.float32)


# --------------------------------------------------------------------------- datasets


@dataclass
class SourceDataset:
    """The pre-training task: the SOURCE pool, 10-way digit classification.

    ``images``: float32 (N, 1, S, S); ``labels``: int64 (N,); ``class_names``: 10 names.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class TargetDataset:
    """One transfer target built from the TARGET pool.

    ``train_images``/``test_images``: float32 (N, 1, S, S); ``train_labels``/``test_labels``:
    int64 class ids into ``class_names`` (human-readable, used as F-label text).
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_source(raw_dir_or_arrays, image_size: int = IMAGE_SIZE) -> SourceDataset:
    """The pre-training dataset: every SOURCE-pool digit, labelled with its digit."""
    images, targets = _as_arrays(raw_dir_or_arrays)
    source_idx, _ = split_pools(targets)
    return SourceDataset(
        images=to_model_input(images[source_idx], image_size),
        labels=targets[source_idx].copy(),
        class_names=list(DIGIT_NAMES),
        description=(
            f"Source task: 10-way classification of the {len(source_idx)} SOURCE-pool "
            "handwritten digits (disjoint from every target)."
        ),
    )


@dataclass(frozen=True)
class TargetSpec:
    """A registered target: its class names, a description and how it is built."""

    name: str
    class_names: tuple[str, ...]
    description: str
    build: Callable[[np.ndarray, np.ndarray, int, int], TargetDataset]


def _build_digits10(images, digits, seed, image_size) -> TargetDataset:
    rng = np.random.default_rng([seed, 101])
    train, test = _stratified_split(digits, 0.5, rng)
    spec = TARGETS["digits10"]
    return TargetDataset(
        name=spec.name,
        train_images=to_model_input(images[train], image_size),
        train_labels=digits[train].copy(),
        test_images=to_model_input(images[test], image_size),
        test_labels=digits[test].copy(),
        class_names=list(spec.class_names),
        description=spec.description,
    )


_SHAPE_OF_DIGIT = np.empty(10, dtype=np.int64)
for _group, (_name, _members) in enumerate(SHAPE_GROUPS):
    _SHAPE_OF_DIGIT[list(_members)] = _group


def _build_shapes3(images, digits, seed, image_size) -> TargetDataset:
    rng = np.random.default_rng([seed, 103])
    train, test = _stratified_split(digits, 0.5, rng)
    spec = TARGETS["shapes3"]
    return TargetDataset(
        name=spec.name,
        train_images=to_model_input(images[train], image_size),
        train_labels=_SHAPE_OF_DIGIT[digits[train]],
        test_images=to_model_input(images[test], image_size),
        test_labels=_SHAPE_OF_DIGIT[digits[test]],
        class_names=list(spec.class_names),
        description=spec.description,
    )


def _corrupt(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise plus one random occluding square (side S/4), in [0, 1]."""
    n, _, s, _ = unit.shape
    out = unit + rng.normal(0.0, NOISE_SIGMA, size=unit.shape).astype(np.float32)
    side = max(1, s // 4)
    rows = rng.integers(0, s - side + 1, size=n)
    cols = rng.integers(0, s - side + 1, size=n)
    for i in range(n):
        out[i, :, rows[i] : rows[i] + side, cols[i] : cols[i] + side] = 0.0
    return np.clip(out, 0.0, 1.0)


def _build_noisy_lowshot(images, digits, seed, image_size) -> TargetDataset:
    rng = np.random.default_rng([seed, 107])
    train_parts = []
    for digit in np.unique(digits):
        idx = np.flatnonzero(digits == digit)
        train_parts.append(rng.choice(idx, size=min(LOWSHOT_SHOTS, len(idx) - 1), replace=False))
    train = np.sort(np.concatenate(train_parts))
    test = np.setdiff1d(np.arange(len(digits)), train)
    corrupted = _standardise(_corrupt(_upscale(images, image_size), rng))
    spec = TARGETS["noisy_lowshot"]
    return TargetDataset(
        name=spec.name,
        train_images=corrupted[train],
        train_labels=digits[train].copy(),
        test_images=corrupted[test],
        test_labels=digits[test].copy(),
        class_names=list(spec.class_names),
        description=spec.description,
    )


TARGETS: dict[str, TargetSpec] = {
    "digits10": TargetSpec(
        "digits10",
        DIGIT_NAMES,
        "Ten handwritten digits (TARGET pool), 50/50 stratified train/test split.",
        _build_digits10,
    ),
    "shapes3": TargetSpec(
        "shapes3",
        tuple(name for name, _ in SHAPE_GROUPS),
        "Digits grouped by stroke shape: closed loop {0,6,8,9}, straight strokes {1,4,7}, "
        "open curve {2,3,5} (TARGET pool), 50/50 split stratified by digit.",
        _build_shapes3,
    ),
    "noisy_lowshot": TargetSpec(
        "noisy_lowshot",
        DIGIT_NAMES,
        f"Ten digits with Gaussian noise (sigma {NOISE_SIGMA}) and a random occluding "
        f"square, {LOWSHOT_SHOTS} training shots per class; the rest of the TARGET pool "
        "is the test set.",
        _build_noisy_lowshot,
    ),
}


def load_target(
    name: str, raw_dir_or_arrays, seed: int = 0, image_size: int = IMAGE_SIZE
) -> TargetDataset:
    """Build the target dataset ``name`` from the TARGET pool.

    Args:
        name: a key of :data:`TARGETS`.
        raw_dir_or_arrays: the raw directory (see :func:`materialize_raw`) or an
            ``(images, targets)`` pair as returned by :func:`load_raw`.
        seed: seeds the train/test split (and, for ``noisy_lowshot``, the shots and the
            corruption). The SOURCE/TARGET pool split does not depend on it.
        image_size: side S of the model input.

    Returns:
        A :class:`TargetDataset` with float32 (N, 1, S, S) images.
    """
    if name not in TARGETS:
        raise UnknownTargetError(
            f"Unknown target dataset {name!r}; valid names: {', '.join(TARGETS)}."
        )
    images, targets = _as_arrays(raw_dir_or_arrays)
    _, target_idx = split_pools(targets)
    return TARGETS[name].build(images[target_idx], targets[target_idx], int(seed), image_size)


def target_names() -> Sequence[str]:
    """The registered target names, in registry order."""
    return tuple(TARGETS)
