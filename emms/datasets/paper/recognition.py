"""Readers of the 11 image-classification datasets of the paper (EMMS §4.1).

Each reader wraps the torchvision dataset class that reads the official layout
(``download=False``: nothing is fetched) and returns a :class:`RecognitionSplit` of image
paths, class ids and class names. Paths come from the torchvision class itself, by
passing an identity ``loader`` (so no image is decoded while reading a split), or from
its documented attributes where the class has no ``loader`` argument (Caltech-101,
Oxford-IIIT Pets). Only Pascal VOC 2007 classification has no torchvision class: it is
derived from :class:`torchvision.datasets.VOCDetection`'s parsed XML annotations.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torchvision.datasets as tvd
from PIL import Image

from ._common import PICKLE_WARNING, fail, need_dir, need_file, need_split, nonempty
from .types import RecognitionSplit

__all__ = [
    "read_aircraft",
    "read_caltech101",
    "read_cars",
    "read_cifar10",
    "read_cifar100",
    "read_dtd",
    "read_flowers102",
    "read_food101",
    "read_pets",
    "read_sun397",
    "read_voc2007",
    "VOC_CLASSES",
]

#: The 20 Pascal VOC classes in the devkit's order (class id = index).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def _identity(path):
    return path


def _construct(name: str, path: Path, factory):
    """Build a torchvision dataset, turning its errors into a layout error."""
    try:
        return factory()
    except (RuntimeError, OSError, KeyError, ValueError, IndexError) as error:
        fail(name, path, f"torchvision could not read it: {type(error).__name__}: {error}")


def _from_loader_dataset(name: str, split: str, path: Path, ds) -> RecognitionSplit:
    """A torchvision dataset built with the identity loader: ds[i] = (path, class id)."""
    nonempty(name, path, split, len(ds))
    items = [ds[i] for i in range(len(ds))]
    return RecognitionSplit(
        dataset=name,
        split=split,
        images=tuple(Path(p) for p, _ in items),
        class_ids=np.asarray([int(c) for _, c in items], dtype=np.int64),
        class_names=tuple(str(c) for c in ds.classes),
    )


def read_aircraft(root, split: str = "trainval", *, annotation_level: str = "variant"):
    """FGVC-Aircraft 2013b (100 variants by default), via ``torchvision.FGVCAircraft``."""
    name, root = "aircraft", Path(root)
    need_split(name, split, ("train", "val", "trainval", "test"))
    need_dir(name, root / "fgvc-aircraft-2013b")
    ds = _construct(
        name,
        root / "fgvc-aircraft-2013b",
        lambda: tvd.FGVCAircraft(
            root, split=split, annotation_level=annotation_level, loader=_identity
        ),
    )
    return _from_loader_dataset(name, split, root / "fgvc-aircraft-2013b", ds)


def read_caltech101(root, split: str = "all"):
    """Caltech-101 (101 categories, ``BACKGROUND_Google`` excluded as torchvision does).

    The dataset has no official split; the paper's benchmark samples its own, so the whole
    set is returned (``split="all"``) and sampling is left to the pipeline.
    """
    name, root = "caltech101", Path(root)
    need_split(name, split, ("all",))
    base = root / "caltech101" / "101_ObjectCategories"
    need_dir(name, base)  # checked first: torchvision would create root/caltech101
    ds = _construct(name, base, lambda: tvd.Caltech101(root, target_type="category"))
    nonempty(name, base, split, len(ds))
    images = tuple(
        base / ds.categories[y] / f"image_{i:04d}.jpg" for i, y in zip(ds.index, ds.y, strict=True)
    )
    return RecognitionSplit(
        name, split, images, np.asarray(ds.y, dtype=np.int64), tuple(ds.categories)
    )


def read_cars(root, split: str = "train"):
    """Stanford Cars (196 classes), via ``torchvision.StanfordCars``."""
    name, root = "cars", Path(root)
    need_split(name, split, ("train", "test"))
    need_dir(name, root / "stanford_cars")
    ds = _construct(
        name, root / "stanford_cars", lambda: tvd.StanfordCars(root, split=split, loader=_identity)
    )
    return _from_loader_dataset(name, split, root / "stanford_cars", ds)


def read_dtd(root, split: str = "train", *, partition: int = 1):
    """Describable Textures (47 classes), split ``train``/``val``/``test`` of ``partition``."""
    name, root = "dtd", Path(root)
    need_split(name, split, ("train", "val", "test"))
    need_dir(name, root / "dtd" / "dtd")
    ds = _construct(
        name,
        root / "dtd" / "dtd",
        lambda: tvd.DTD(root, split=split, partition=partition, loader=_identity),
    )
    return _from_loader_dataset(name, split, root / "dtd" / "dtd", ds)


class _Flowers102NoChecksum(tvd.Flowers102):
    def _check_integrity(self):
        return self._images_folder.is_dir() and all(
            (self._base_folder / self._file_dict[k][0]).is_file() for k in ("label", "setid")
        )


def read_flowers102(root, split: str = "train", *, verify_checksums: bool = True):
    """Oxford Flowers-102, via ``torchvision.Flowers102``.

    Class names: the official files hold numbers only (``imagelabels.mat``); the names are
    torchvision's ``Flowers102.classes`` (102 names, class 1 first).

    Args:
        verify_checksums: check the MD5 of ``imagelabels.mat`` and ``setid.mat`` against
            the official files, as torchvision does; pass False only for re-packed copies.
    """
    name, root = "flowers", Path(root)
    need_split(name, split, ("train", "val", "test"))
    base = need_dir(name, root / "flowers-102")
    cls = tvd.Flowers102 if verify_checksums else _Flowers102NoChecksum
    ds = _construct(name, base, lambda: cls(root, split=split, loader=_identity))
    nonempty(name, base, split, len(ds))
    items = [ds[i] for i in range(len(ds))]
    ids = np.asarray([c for _, c in items], dtype=np.int64)
    names = tuple(str(c) for c in ds.classes)  # torchvision's 102 flower names
    return RecognitionSplit(name, split, tuple(Path(p) for p, _ in items), ids, names)


def read_food101(root, split: str = "train"):
    """Food-101, via ``torchvision.Food101`` (``meta/{train,test}.json``)."""
    name, root = "food", Path(root)
    need_split(name, split, ("train", "test"))
    need_dir(name, root / "food-101")
    ds = _construct(
        name, root / "food-101", lambda: tvd.Food101(root, split=split, loader=_identity)
    )
    return _from_loader_dataset(name, split, root / "food-101", ds)


def read_pets(root, split: str = "trainval"):
    """Oxford-IIIT Pets (37 breeds), via ``torchvision.OxfordIIITPet``."""
    name, root = "pets", Path(root)
    need_split(name, split, ("trainval", "test"))
    base = need_dir(name, root / "oxford-iiit-pet")
    ds = _construct(name, base, lambda: tvd.OxfordIIITPet(root, split=split))
    nonempty(name, base, split, len(ds))
    return RecognitionSplit(
        name,
        split,
        tuple(Path(p) for p in ds._images),
        np.asarray(ds._labels, dtype=np.int64),
        tuple(ds.classes),
    )


def read_sun397(root, split: str = "all"):
    """SUN397, via ``torchvision.SUN397`` (every ``sun_*.jpg``; no official split is read,
    the paper's benchmark samples its own)."""
    name, root = "sun397", Path(root)
    need_split(name, split, ("all",))
    base = need_dir(name, root / "SUN397")
    need_file(name, base / "ClassName.txt")
    ds = _construct(name, base, lambda: tvd.SUN397(root, loader=_identity))
    split_record = _from_loader_dataset(name, split, base, ds)
    order = np.argsort([str(p) for p in split_record.images], kind="stable")  # rglob order
    return RecognitionSplit(
        name,
        split,
        tuple(split_record.images[i] for i in order),
        split_record.class_ids[order],
        split_record.class_names,
    )


def read_voc2007(root, split: str = "trainval"):
    """Pascal VOC 2007 classification from the detection XML annotations.

    Parsed by :class:`torchvision.datasets.VOCDetection` (``year="2007"``). Labels:

    * ``multi_hot`` (N, 20): the classes of the image's objects not marked ``difficult``
      (the devkit's classification ground truth ignores difficult-only classes);
    * ``class_ids`` (N,): the class of the first non-difficult object in XML order (the
      first object if all are difficult), the single label that class-id selectors need.
    """
    name, root = "voc2007", Path(root)
    need_split(name, split, ("train", "val", "trainval", "test"))
    base = need_dir(name, root / "VOCdevkit" / "VOC2007")
    ds = _construct(name, base, lambda: tvd.VOCDetection(root, year="2007", image_set=split))
    nonempty(name, base, split, len(ds))
    import xml.etree.ElementTree as ET

    index = {c: k for k, c in enumerate(VOC_CLASSES)}
    multi_hot = np.zeros((len(ds), len(VOC_CLASSES)), dtype=np.uint8)
    first = np.zeros(len(ds), dtype=np.int64)
    for i, target in enumerate(ds.targets):
        try:
            annotation = ds.parse_voc_xml(ET.parse(target).getroot())["annotation"]
            objects = annotation["object"]
            names = [(o["name"], o.get("difficult", "0") == "1") for o in objects]
            if not names:
                raise KeyError("object")
            ids = [(index[n], hard) for n, hard in names]
        except (OSError, ET.ParseError, KeyError, TypeError) as error:
            fail(name, target, f"annotation unreadable or without objects ({error!r})")
        easy = [k for k, hard in ids if not hard]
        multi_hot[i, easy] = 1
        first[i] = easy[0] if easy else ids[0][0]
    return RecognitionSplit(
        name, split, tuple(Path(p) for p in ds.images), first, VOC_CLASSES, multi_hot
    )


_CIFAR = {
    "cifar10": ("cifar-10-batches-py", tvd.CIFAR10, "labels", "batches.meta", "label_names"),
    "cifar100": ("cifar-100-python", tvd.CIFAR100, "fine_labels", "meta", "fine_label_names"),
}


def _pixel_loader(array: np.ndarray):
    return lambda: Image.fromarray(array)


def _read_cifar(name: str, root, split: str, verify_checksums: bool, allow_pickle: bool):
    folder, cls, label_key, meta_file, meta_key = _CIFAR[name]
    root = Path(root)
    need_split(name, split, ("train", "test"))
    base = need_dir(name, root / folder)
    if verify_checksums:
        # torchvision checks every batch's MD5 against the official archive before it
        # unpickles it: only the official files are ever unpickled.
        ds = _construct(name, base, lambda: cls(root, train=split == "train"))
        pixels, labels, classes = ds.data, np.asarray(ds.targets), list(ds.classes)
    else:
        if not allow_pickle:
            fail(
                name,
                base,
                "verify_checksums=False unpickles files whose checksum is not "
                f"checked. {PICKLE_WARNING}",
            )
        files = [f for f, _ in (cls.train_list if split == "train" else cls.test_list)]
        batches = [_unpickle(name, need_file(name, base / f)) for f in files]
        meta = _unpickle(name, need_file(name, base / meta_file))
        try:
            pixels = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
            pixels = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.concatenate([np.asarray(b[label_key]) for b in batches])
            classes = list(meta[meta_key])
        except (KeyError, ValueError) as error:
            fail(name, base, f"batch files malformed ({error!r})")
    nonempty(name, base, split, len(labels))
    return RecognitionSplit(
        name,
        split,
        tuple(_pixel_loader(p) for p in pixels),
        labels.astype(np.int64),
        tuple(classes),
    )


def _unpickle(name: str, path: Path):
    try:
        with open(path, "rb") as stream:
            return pickle.load(stream, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        fail(name, path, f"not a readable pickle ({error!r})")


def read_cifar10(
    root, split: str = "train", *, verify_checksums: bool = True, allow_pickle: bool = False
):
    """CIFAR-10 (python version), via ``torchvision.CIFAR10``; images are loaders over the
    in-memory (32, 32, 3) uint8 pixels.

    Args:
        verify_checksums: torchvision's MD5 check of the official batches (default). The
            batches are pickles: without the check they are read only with
            ``allow_pickle=True``.
    """
    return _read_cifar("cifar10", root, split, verify_checksums, allow_pickle)


def read_cifar100(
    root, split: str = "train", *, verify_checksums: bool = True, allow_pickle: bool = False
):
    """CIFAR-100 (python version, 100 fine labels), via ``torchvision.CIFAR100``; see
    :func:`read_cifar10`."""
    return _read_cifar("cifar100", root, split, verify_checksums, allow_pickle)
