"""Readers of RefCOCO, RefCOCO+ and RefCOCOg (EMMS §4.3).

Layout (as the "refer" API of Licheng Yu distributes it): ``<dataset>/instances.json``
(COCO-style ``images[].id, file_name, width, height``, ``annotations[].id, image_id,
bbox [x, y, w, h], category_id``, ``categories[].id, name``) and the refs file
``<dataset>/refs(<split_by>).p``: a pickled list of refs, each ``{"ref_id", "ann_id",
"image_id", "split", "sentences": [{"sent", ...}], ...}``. Images: COCO ``train2014/``.

Pickles can run code when loaded, so the refs pickle is read only with
``allow_pickle=True``. A JSON export ``refs(<split_by>).json`` beside it, a list of objects
with the same fields (``ref_id``, ``ann_id``, ``image_id``, ``split``,
``sentences[].sent``; extra fields ignored), is preferred when present, e.g. written once by
``json.dump(pickle.load(open("refs(unc).p", "rb")), open("refs(unc).json", "w"))``.

One sample per (ref, sentence); the box is the referred annotation's COCO box converted
to ``[x1, y1, x2, y2] = [x, y, x + w, y + h]`` in pixels.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from ._common import PICKLE_WARNING, fail, key, need_dir, need_file, nonempty, read_json
from .types import DatasetLayoutError, ReferringSplit

__all__ = ["read_refcoco", "read_refcoco_plus", "read_refcocog", "export_refs_json", "REF_SPLITS"]

#: splits of each (dataset, split_by) pair in the refer API's files
REF_SPLITS = {
    ("refcoco", "unc"): ("train", "val", "testA", "testB"),
    ("refcoco+", "unc"): ("train", "val", "testA", "testB"),
    ("refcocog", "umd"): ("train", "val", "test"),
    ("refcocog", "google"): ("train", "val"),
}


def _load_refs(name: str, base: Path, split_by: str, allow_pickle: bool):
    json_path = base / f"refs({split_by}).json"
    if json_path.is_file():
        return json_path, read_json(name, json_path)
    pickle_path = base / f"refs({split_by}).p"
    need_file(name, pickle_path)
    if not allow_pickle:
        fail(
            name,
            pickle_path,
            f"the refs file is a pickle. {PICKLE_WARNING} Or export it "
            f"once to {json_path.name} (same fields), which is read without this option",
        )
    try:
        with open(pickle_path, "rb") as stream:
            return pickle_path, pickle.load(stream)
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        fail(name, pickle_path, f"not a readable pickle ({error!r})")


def _read_refer(name, folder, root, split, split_by, allow_pickle, coco_dir):
    root = Path(root)
    if (folder, split_by) not in REF_SPLITS:
        raise DatasetLayoutError(
            f"{name}: unknown split_by {split_by!r}; choose one of "
            f"{[s for d, s in REF_SPLITS if d == folder]}."
        )
    allowed = REF_SPLITS[(folder, split_by)]
    if split not in allowed:
        raise DatasetLayoutError(
            f"{name}: unknown split {split!r}; refs({split_by}) has {list(allowed)}."
        )
    base = need_dir(name, root / folder)
    images_dir = need_dir(name, Path(coco_dir or root / "coco") / "train2014")
    refs_path, refs = _load_refs(name, base, split_by, allow_pickle)
    inst_path = base / "instances.json"
    instances = read_json(name, inst_path)
    images = {
        key(name, inst_path, im, "id", "images"): im
        for im in key(name, inst_path, instances, "images")
    }
    anns = {
        key(name, inst_path, a, "id", "annotations"): a
        for a in key(name, inst_path, instances, "annotations")
    }
    cats = {
        c["id"]: c.get("name", str(c["id"])) for c in instances.get("categories", []) if "id" in c
    }
    if not isinstance(refs, list):
        fail(name, refs_path, "the refs file must hold a list of refs")
    columns = {c: [] for c in ("images", "sents", "boxes", "sizes", "refs", "anns", "ims", "cats")}
    for k, ref in enumerate(refs):
        where = f"refs[{k}]"
        if key(name, refs_path, ref, "split", where) != split:
            continue
        ann_id = key(name, refs_path, ref, "ann_id", where)
        image_id = key(name, refs_path, ref, "image_id", where)
        if ann_id not in anns or image_id not in images:
            fail(
                name,
                inst_path,
                f"{where}: ann_id {ann_id} or image_id {image_id} not in instances.json",
            )
        x, y, w, h = (
            float(v) for v in key(name, inst_path, anns[ann_id], "bbox", f"annotation {ann_id}")
        )
        image = images[image_id]
        for sentence in key(name, refs_path, ref, "sentences", where):
            columns["images"].append(
                images_dir / key(name, inst_path, image, "file_name", f"image {image_id}")
            )
            columns["sents"].append(key(name, refs_path, sentence, "sent", where))
            columns["boxes"].append((x, y, x + w, y + h))
            columns["sizes"].append((image.get("width", 0), image.get("height", 0)))
            columns["refs"].append(key(name, refs_path, ref, "ref_id", where))
            columns["anns"].append(ann_id)
            columns["ims"].append(image_id)
            columns["cats"].append(cats.get(anns[ann_id].get("category_id"), ""))
    nonempty(name, refs_path, split, len(columns["images"]))
    return ReferringSplit(
        name,
        split,
        tuple(columns["images"]),
        tuple(columns["sents"]),
        np.asarray(columns["boxes"], dtype=np.float64).reshape(-1, 4),
        np.asarray(columns["sizes"], dtype=np.int64).reshape(-1, 2),
        np.asarray(columns["refs"], dtype=np.int64),
        np.asarray(columns["anns"], dtype=np.int64),
        np.asarray(columns["ims"], dtype=np.int64),
        tuple(columns["cats"]),
    )


def read_refcoco(
    root, split: str = "train", *, allow_pickle: bool = False, coco_dir: str | Path | None = None
):
    """RefCOCO, UNC split (train, val, testA, testB)."""
    return _read_refer("refcoco", "refcoco", root, split, "unc", allow_pickle, coco_dir)


def read_refcoco_plus(
    root, split: str = "train", *, allow_pickle: bool = False, coco_dir: str | Path | None = None
):
    """RefCOCO+, UNC split (train, val, testA, testB)."""
    return _read_refer("refcoco+", "refcoco+", root, split, "unc", allow_pickle, coco_dir)


def read_refcocog(
    root,
    split: str = "train",
    *,
    split_by: str = "umd",
    allow_pickle: bool = False,
    coco_dir: str | Path | None = None,
):
    """RefCOCOg, UMD split (train, val, test) by default, or Google's (train, val)."""
    return _read_refer("refcocog", "refcocog", root, split, split_by, allow_pickle, coco_dir)


def export_refs_json(pickle_path: str | Path, json_path: str | Path | None = None) -> Path:
    """Convert a trusted refs pickle to the JSON export once (this unpickles it)."""
    from emms.cache import atomic_write_text

    pickle_path = Path(pickle_path)
    json_path = Path(json_path or pickle_path.with_suffix(".json"))
    with open(pickle_path, "rb") as stream:
        refs = pickle.load(stream)
    atomic_write_text(json_path, json.dumps(refs))
    return json_path
