"""Caches: round trip, and every way a cache file can be wrong stops with CacheError."""

import json
import os

import numpy as np
import pytest

from emms import cache
from emms.cache import CacheError, load_array, save_array


def test_round_trip_keeps_bytes_and_metadata(tmp_path):
    array = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    path = save_array(tmp_path / "f" / "m.npy", array, model="m", dataset="d", split="train")
    loaded, meta = load_array(path, expect={"dataset": "d"})
    np.testing.assert_array_equal(loaded, array)
    assert loaded.dtype == np.float32
    assert meta["shape"] == [5, 3] and meta["model"] == "m" and meta["split"] == "train"
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.json", "m.npy"]


def test_truncated_or_edited_files_are_refused(tmp_path):
    path = save_array(tmp_path / "a.npy", np.arange(100.0))
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(CacheError, match="does not match its sidecar"):
        load_array(path)
    path.write_bytes(data)
    load_array(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["cache_format"] = 0
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="format"):
        load_array(path)


def test_missing_files_and_wrong_expectations(tmp_path):
    with pytest.raises(CacheError, match="missing; run `dvc repro`"):
        load_array(tmp_path / "nothing.npy")
    path = save_array(tmp_path / "a.npy", np.zeros(3), dataset="digits10")
    with pytest.raises(CacheError, match="made for dataset='digits10'"):
        load_array(path, expect={"dataset": "shapes3"})
    path.with_suffix(".json").unlink()
    with pytest.raises(CacheError, match="sidecar|missing"):
        load_array(path)


def test_no_pickles_are_written(tmp_path):
    with pytest.raises(ValueError, match="pickles"):
        save_array(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))


def test_an_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        save_array(tmp_path / "x.npy", np.ones(4))
    assert os.listdir(tmp_path) == []
