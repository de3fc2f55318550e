"""The embedded image data (emms.digits): raw bytes, pools, targets, bad input."""

import hashlib

import numpy as np
import pytest

from emms.datasets import digits
from emms.datasets.digits import (
    DIGIT_NAMES,
    IMAGE_SIZE,
    LOWSHOT_SHOTS,
    RAW_FILES,
    SHAPE_GROUPS,
    TARGETS,
    RawDataError,
    UnknownTargetError,
    load_raw,
    load_source,
    load_target,
    materialize_raw,
    split_pools,
    to_model_input,
)


def _digest(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in RAW_FILES}


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    materialize_raw(folder)
    return folder


@pytest.fixture(scope="module")
def raw(raw_dir):
    return load_raw(raw_dir)


def test_materialize_raw_is_byte_deterministic(tmp_path, raw_dir):
    paths = materialize_raw(tmp_path / "again")
    assert [p.name for p in paths] == list(RAW_FILES)
    assert _digest(tmp_path / "again") == _digest(raw_dir)
    materialize_raw(tmp_path / "again")  # overwriting gives the same bytes, no leftovers
    assert _digest(tmp_path / "again") == _digest(raw_dir)
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(RAW_FILES)


def test_raw_content(raw):
    images, targets = raw
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert images.min() == 0 and images.max() == 16
    assert targets.dtype == np.int64 and targets.shape == (1797,)
    assert set(np.unique(targets)) == set(range(10))


def test_load_raw_missing_names_file_and_fix(tmp_path):
    with pytest.raises(RawDataError, match=r"images\.npy.*python -m emms materialize-data"):
        load_raw(tmp_path)


@pytest.mark.parametrize("name", RAW_FILES)
def test_load_raw_truncated(tmp_path, raw_dir, name):
    for other in RAW_FILES:
        (tmp_path / other).write_bytes((raw_dir / other).read_bytes())
    data = (raw_dir / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(RawDataError, match=rf"{name}.*(corrupt|truncated).*dvc pull"):
        load_raw(tmp_path)


def test_load_raw_rejects_wrong_dtype_range_and_pickles(tmp_path, raw):
    images, targets = raw
    np.save(tmp_path / "targets.npy", targets)
    np.save(tmp_path / "images.npy", images.astype(np.float64))
    with pytest.raises(RawDataError, match="dtype float64"):
        load_raw(tmp_path, verify=False)
    bad = images.copy()
    bad[0, 0, 0] = 17
    np.save(tmp_path / "images.npy", bad)
    with pytest.raises(RawDataError, match="0..16"):
        load_raw(tmp_path, verify=False)
    np.save(tmp_path / "images.npy", images[:-1])
    with pytest.raises(RawDataError, match="corrupt"):
        load_raw(tmp_path, verify=False)
    np.save(tmp_path / "images.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RawDataError, match="images.npy"):
        load_raw(tmp_path, verify=False)


def test_load_raw_refuses_bytes_other_than_the_pinned_ones(tmp_path, raw):
    images, targets = raw
    flipped = targets.copy()
    flipped[0] = (flipped[0] + 1) % 10  # one valid label changed: passes every range check
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "targets.npy", flipped)
    with pytest.raises(RawDataError, match=r"targets\.npy has SHA-256 .* not the pinned"):
        load_raw(tmp_path)
    load_raw(tmp_path, verify=False)  # the same bytes are otherwise valid


def test_pools_disjoint_complete_stratified(raw):
    _, targets = raw
    source, target = split_pools(targets)
    assert len(np.intersect1d(source, target)) == 0
    assert np.array_equal(np.sort(np.concatenate([source, target])), np.arange(len(targets)))
    src_counts = np.bincount(targets[source], minlength=10)
    tgt_counts = np.bincount(targets[target], minlength=10)
    assert np.all(np.abs(src_counts - tgt_counts) <= 1)
    again = split_pools(targets)
    assert np.array_equal(again[0], source) and np.array_equal(again[1], target)


def test_source_dataset(raw):
    source = load_source(raw)
    idx, _ = split_pools(raw[1])
    assert source.images.shape == (len(idx), 1, IMAGE_SIZE, IMAGE_SIZE)
    assert source.images.dtype == np.float32
    assert np.array_equal(source.labels, raw[1][idx])
    assert source.class_names == list(DIGIT_NAMES) and source.num_classes == 10
    assert abs(float(source.images.mean())) < 0.2 and 0.7 < float(source.images.std()) < 1.3


def _row_set(images):
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in images}


@pytest.mark.parametrize("name", list(TARGETS))
def test_targets(raw, name):
    target = load_target(name, raw, seed=0)
    assert target.name == name
    for split in ("train", "test"):
        images = getattr(target, f"{split}_images")
        labels = getattr(target, f"{split}_labels")
        assert images.dtype == np.float32 and images.shape[1:] == (1, IMAGE_SIZE, IMAGE_SIZE)
        assert labels.dtype == np.int64 and len(labels) == len(images)
        assert np.isfinite(images).all()
        # every class appears in both splits and names match the label range
        assert set(np.unique(labels)) == set(range(len(target.class_names)))
    assert len(target.class_names) == target.num_classes == len(set(target.class_names))
    assert all(isinstance(c, str) and c for c in target.class_names)
    assert target.description
    # the TARGET pool only: no image of the source task (clean targets compare exactly)
    if name != "noisy_lowshot":
        _, target_idx = split_pools(raw[1])
        pool = _row_set(to_model_input(raw[0][target_idx]))
        assert _row_set(target.train_images) | _row_set(target.test_images) <= pool
        n = len(target.train_labels) + len(target.test_labels)
        assert n == len(target_idx)


def test_target_splits_stratified_and_seeded(raw):
    a = load_target("digits10", raw, seed=0)
    b = load_target("digits10", raw, seed=0)
    c = load_target("digits10", raw, seed=1)
    assert np.array_equal(a.train_images, b.train_images)
    assert not np.array_equal(a.train_images, c.train_images)
    train, test = np.bincount(a.train_labels), np.bincount(a.test_labels)
    assert np.all(np.abs(train - test) <= 1)
    assert a.class_names == ["zero", "one", "two", "three", "four"] + [
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ]


def test_shapes3_groups_partition_the_digits(raw):
    members = sorted(d for _, group in SHAPE_GROUPS for d in group)
    assert members == list(range(10))
    shapes3 = load_target("shapes3", raw, seed=0)
    assert shapes3.num_classes == 3
    _, target_idx = split_pools(raw[1])
    pool = to_model_input(raw[0][target_idx])
    digit_of = {}
    for row, digit in zip(pool, raw[1][target_idx], strict=True):
        digit_of.setdefault(row.tobytes(), set()).add(int(digit))
    for images, labels in (
        (shapes3.train_images, shapes3.train_labels),
        (shapes3.test_images, shapes3.test_labels),
    ):
        for group, (_, group_digits) in enumerate(SHAPE_GROUPS):
            found = set().union(*(digit_of[row.tobytes()] for row in images[labels == group]))
            assert found == set(group_digits)


def test_noisy_lowshot(raw):
    target = load_target("noisy_lowshot", raw, seed=0)
    assert np.array_equal(np.bincount(target.train_labels), np.full(10, LOWSHOT_SHOTS))
    clean = load_target("digits10", raw, seed=0)
    assert len(target.train_labels) + len(target.test_labels) == len(clean.train_labels) + len(
        clean.test_labels
    )
    # corrupted: no test image equals a clean target-pool image
    assert not (_row_set(target.test_images) & _row_set(clean.test_images))
    again = load_target("noisy_lowshot", raw, seed=0)
    assert np.array_equal(target.test_images, again.test_images)


def test_load_target_from_dir_equals_arrays(raw_dir, raw):
    a = load_target("shapes3", raw_dir, seed=3)
    b = load_target("shapes3", raw, seed=3)
    assert np.array_equal(a.test_images, b.test_images)
    assert np.array_equal(a.test_labels, b.test_labels)


def test_image_size_option(raw):
    target = load_target("digits10", raw, seed=0, image_size=16)
    assert target.train_images.shape[1:] == (1, 16, 16)


def test_unknown_target_lists_valid_names(raw):
    with pytest.raises(UnknownTargetError, match="digits10, shapes3, noisy_lowshot"):
        load_target("cifar10", raw)
    with pytest.raises(KeyError):
        load_target("cifar10", raw)


def test_bad_arrays(raw):
    images, targets = raw
    with pytest.raises(RawDataError, match="shape"):
        load_target("digits10", (images[:, :4], targets))
    with pytest.raises(RawDataError, match="targets"):
        load_target("digits10", (images, targets[:-1]))
    with pytest.raises(TypeError, match="raw directory"):
        load_target("digits10", 42)
    assert digits.target_names() == tuple(TARGETS)
