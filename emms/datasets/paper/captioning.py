"""Readers of the 5 captioning datasets of the paper (EMMS §4.2).

Two distributions are read:

* Karpathy-split JSON (``dataset_flickr8k.json``, ``dataset_flickr30k.json`` from
  Karpathy & Fei-Fei's "Deep Visual-Semantic Alignments" release, and RSICD's
  ``dataset_rsicd.json`` in the same schema): ``{"images": [{"filename": ...,
  "split": "train"|"val"|"test"|"restval", "sentences": [{"raw": ...}, ...]}, ...]}``.
* The original token files: ``Flickr8k.token.txt`` (with ``Flickr_8k.{train,dev,test}
  Images.txt``) and Flickr30k's ``results_20130124.token``; lines
  ``<image file>#<k>\\t<caption>``.

FlickrStyle10K (Gan et al., "StyleNet", CVPR 2017) is distributed as
``FlickrStyle_v0.9/{humor,romantic}/`` with ``funny_train.txt`` / ``romantic_train.txt``
(one stylised caption per line, 7,000 lines) and ``train.p``, a pickled list of the 7,000
Flickr30k image file names aligned line by line with the captions. The images are
Flickr30k's. Since ``train.p`` is a pickle, it is read only with ``allow_pickle=True``;
a plain-text export ``train_images.txt`` (one file name per line, same order) beside it is
preferred when present.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from pathlib import Path

from ._common import (
    PICKLE_WARNING,
    fail,
    key,
    need_dir,
    need_file,
    need_split,
    nonempty,
    read_json,
    read_lines,
)
from .types import CaptioningSplit

__all__ = [
    "read_flickr8k",
    "read_flickr30k",
    "read_rsicd",
    "read_flickrstyle_humor",
    "read_flickrstyle_romantic",
    "read_karpathy_json",
    "read_token_file",
]

KARPATHY_SPLITS = ("train", "val", "test", "restval")


def read_karpathy_json(name: str, json_path: Path, images_dir: Path, split: str):
    """One split of a Karpathy-style caption JSON; captions are ``sentences[].raw``."""
    need_split(name, split, KARPATHY_SPLITS)
    need_dir(name, images_dir)
    data = read_json(name, json_path)
    images, ids, captions = [], [], []
    for k, entry in enumerate(key(name, json_path, data, "images")):
        where = f"images[{k}]"
        if key(name, json_path, entry, "split", where) != split:
            continue
        filename = key(name, json_path, entry, "filename", where)
        sentences = key(name, json_path, entry, "sentences", where)
        raws = tuple(key(name, json_path, s, "raw", f"{where}.sentences") for s in sentences)
        if not raws:
            fail(name, json_path, f"{where} ({filename}) has no sentences")
        images.append(images_dir / filename)
        ids.append(filename)
        captions.append(raws)
    nonempty(name, json_path, split, len(images))
    return CaptioningSplit(name, split, tuple(images), tuple(ids), tuple(captions))


def read_token_file(
    name: str, token_path: Path, images_dir: Path, split: str, split_list: Path | None = None
):
    """Captions from a ``<file>#<k>\\t<caption>`` token file, optionally restricted to the
    image names listed in ``split_list`` (one per line), in that file's order."""
    need_dir(name, images_dir)
    by_image: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(read_lines(name, token_path), 1):
        head, tab, caption = line.partition("\t")
        filename, hash_, _ = head.partition("#")
        if not tab or not hash_ or not caption.strip():
            fail(name, token_path, f"line {number} is not '<image>#<k><TAB><caption>'")
        by_image[filename].append(caption.strip())
    if split_list is None:
        order = list(by_image)
    else:
        order = read_lines(name, split_list)
        missing = [f for f in order if f not in by_image]
        if missing:
            fail(
                name, split_list, f"{len(missing)} listed images have no caption, e.g. {missing[0]}"
            )
    nonempty(name, token_path, split, len(order))
    return CaptioningSplit(
        name,
        split,
        tuple(images_dir / f for f in order),
        tuple(order),
        tuple(tuple(by_image[f]) for f in order),
    )


def read_flickr8k(root, split: str = "train", *, source: str = "auto"):
    """Flickr8k from ``flickr8k/``: Karpathy JSON (``source="karpathy"``) or the original
    token file with its split lists (``source="token"``); ``"auto"`` prefers the JSON."""
    name, base = "flickr8k", Path(root) / "flickr8k"
    need_dir(name, base)
    images = base / "Flicker8k_Dataset"  # sic: the official archive's folder name
    if source == "auto":
        source = "karpathy" if (base / "dataset_flickr8k.json").is_file() else "token"
    if source == "karpathy":
        return read_karpathy_json(name, base / "dataset_flickr8k.json", images, split)
    lists = {
        "train": "Flickr_8k.trainImages.txt",
        "val": "Flickr_8k.devImages.txt",
        "test": "Flickr_8k.testImages.txt",
    }
    need_split(name, split, lists)
    return read_token_file(
        name, base / "Flickr8k.token.txt", images, split, need_file(name, base / lists[split])
    )


def read_flickr30k(root, split: str = "train", *, source: str = "auto"):
    """Flickr30k from ``flickr30k/``: Karpathy JSON, or ``results_20130124.token`` (which
    has no split: ``split="all"``)."""
    name, base = "flickr30k", Path(root) / "flickr30k"
    need_dir(name, base)
    images = base / "flickr30k-images"
    if source == "auto":
        source = "karpathy" if (base / "dataset_flickr30k.json").is_file() else "token"
    if source == "karpathy":
        return read_karpathy_json(name, base / "dataset_flickr30k.json", images, split)
    need_split(name, split, ("all",))
    return read_token_file(name, base / "results_20130124.token", images, split)


def read_rsicd(root, split: str = "train"):
    """RSICD (remote sensing captions) from ``rsicd/dataset_rsicd.json`` + ``RSICD_images/``."""
    base = Path(root) / "rsicd"
    need_dir("RSICD", base)
    return read_karpathy_json("RSICD", base / "dataset_rsicd.json", base / "RSICD_images", split)


def _read_flickrstyle(
    name: str, style: str, caption_file: str, root, split: str, allow_pickle: bool
):
    need_split(name, split, ("train",))
    root = Path(root)
    folder = need_dir(name, root / "FlickrStyle_v0.9" / style)
    images_dir = root / "flickr30k" / "flickr30k-images"
    need_dir(name, images_dir)
    captions = read_lines(name, folder / caption_file)
    text_list = folder / "train_images.txt"
    if text_list.is_file():
        files = read_lines(name, text_list)
        list_path = text_list
    else:
        list_path = folder / "train.p"
        need_file(name, list_path)
        if not allow_pickle:
            fail(
                name,
                list_path,
                f"the image list is a pickle. {PICKLE_WARNING} Or write "
                "its names, one per line, to train_images.txt",
            )
        try:
            with open(list_path, "rb") as stream:
                files = [str(f).strip() for f in pickle.load(stream, encoding="latin1")]
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError) as error:
            fail(name, list_path, f"not a pickled list of file names ({error!r})")
    if len(files) != len(captions):
        fail(
            name,
            folder,
            f"{len(captions)} captions in {caption_file} but {len(files)} "
            f"image names in {list_path.name}; they must align line by line",
        )
    nonempty(name, folder, split, len(files))
    return CaptioningSplit(
        name,
        split,
        tuple(images_dir / f for f in files),
        tuple(files),
        tuple((c,) for c in captions),
    )


def read_flickrstyle_humor(root, split: str = "train", *, allow_pickle: bool = False):
    """FlickrStyle10K humorous captions (``humor/funny_train.txt``), one per image."""
    return _read_flickrstyle("flickr10kH", "humor", "funny_train.txt", root, split, allow_pickle)


def read_flickrstyle_romantic(root, split: str = "train", *, allow_pickle: bool = False):
    """FlickrStyle10K romantic captions (``romantic/romantic_train.txt``), one per image."""
    return _read_flickrstyle(
        "flickr10kR", "romantic", "romantic_train.txt", root, split, allow_pickle
    )
