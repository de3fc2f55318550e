"""One registry of the paper's 24 datasets: task, reader, expected layout, split used,
source. Names match the rows of ``data/reference/*.csv`` where the dataset has one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import captioning, recognition, referring, textqa, vqa

__all__ = [
    "DatasetSpec",
    "PAPER_DATASETS",
    "TASKS",
    "read_paper_dataset",
    "render_layout_table",
    "write_layout_table",
]

TASKS = ("recognition", "captioning", "vqa", "textqa", "referring")


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one paper dataset.

    Attributes:
        task: one of :data:`TASKS`.
        reader: ``reader(root, split, **options) -> record`` (see ``types``).
        layout: the files the reader expects under the root folder.
        split: the split read by default (the paper scores transferability on the
            target's training data).
        source: where the data comes from (official page or release).
    """

    task: str
    reader: Callable[..., Any]
    layout: str
    split: str
    source: str


_COCO = "coco/train2014/COCO_train2014_<id:012d>.jpg"

PAPER_DATASETS: dict[str, DatasetSpec] = {
    # ---------------------------------------------------------------- recognition
    "aircraft": DatasetSpec(
        "recognition",
        recognition.read_aircraft,
        "fgvc-aircraft-2013b/data/{variants.txt, images_variant_<split>.txt, images/<id>.jpg}",
        "trainval",
        "FGVC-Aircraft 2013b (Maji et al., VGG Oxford), read by torchvision.datasets.FGVCAircraft",
    ),
    "caltech101": DatasetSpec(
        "recognition",
        recognition.read_caltech101,
        "caltech101/101_ObjectCategories/<category>/image_<0001>.jpg",
        "all",
        "Caltech 101 (Fei-Fei et al., Caltech data repository), read by "
        "torchvision.datasets.Caltech101",
    ),
    "cars": DatasetSpec(
        "recognition",
        recognition.read_cars,
        "stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, "
        "cars_test_annos_withlabels.mat, cars_test/}",
        "train",
        "Stanford Cars (Krause et al., 3DRR 2013), read by torchvision.datasets.StanfordCars",
    ),
    "cifar10": DatasetSpec(
        "recognition",
        recognition.read_cifar10,
        "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (official MD5s)",
        "train",
        "CIFAR-10 python version (Krizhevsky, University of Toronto), read by "
        "torchvision.datasets.CIFAR10",
    ),
    "cifar100": DatasetSpec(
        "recognition",
        recognition.read_cifar100,
        "cifar-100-python/{train, test, meta} (official MD5s)",
        "train",
        "CIFAR-100 python version (Krizhevsky, University of Toronto), read by "
        "torchvision.datasets.CIFAR100",
    ),
    "dtd": DatasetSpec(
        "recognition",
        recognition.read_dtd,
        "dtd/dtd/{labels/<split><partition>.txt, images/<class>/<file>.jpg}",
        "train",
        "Describable Textures Dataset (Cimpoi et al., VGG Oxford), read by "
        "torchvision.datasets.DTD",
    ),
    "flowers": DatasetSpec(
        "recognition",
        recognition.read_flowers102,
        "flowers-102/{jpg/image_<00001>.jpg, imagelabels.mat, setid.mat} (official MD5s)",
        "train",
        "Oxford 102 Flowers (Nilsback & Zisserman, VGG Oxford), read by "
        "torchvision.datasets.Flowers102",
    ),
    "food": DatasetSpec(
        "recognition",
        recognition.read_food101,
        "food-101/{meta/<split>.json, images/<class>/<id>.jpg}",
        "train",
        "Food-101 (Bossard et al., ETH Zurich), read by torchvision.datasets.Food101",
    ),
    "pets": DatasetSpec(
        "recognition",
        recognition.read_pets,
        "oxford-iiit-pet/{annotations/<split>.txt, images/<Breed_n>.jpg}",
        "trainval",
        "Oxford-IIIT Pet (Parkhi et al., VGG Oxford), read by torchvision.datasets.OxfordIIITPet",
    ),
    "sun397": DatasetSpec(
        "recognition",
        recognition.read_sun397,
        "SUN397/{ClassName.txt, <l>/<class>[/<sub>]/sun_<id>.jpg}",
        "all",
        "SUN397 (Xiao et al., Princeton/MIT), read by torchvision.datasets.SUN397",
    ),
    "voc2007": DatasetSpec(
        "recognition",
        recognition.read_voc2007,
        "VOCdevkit/VOC2007/{ImageSets/Main/<split>.txt, Annotations/<id>.xml, JPEGImages/<id>.jpg}",
        "trainval",
        "PASCAL VOC 2007 (Everingham et al.), XML parsed by "
        "torchvision.datasets.VOCDetection; labels: multi-hot + first non-difficult object",
    ),
    # ---------------------------------------------------------------- captioning
    "flickr8k": DatasetSpec(
        "captioning",
        captioning.read_flickr8k,
        "flickr8k/{dataset_flickr8k.json | Flickr8k.token.txt + Flickr_8k.<train|dev|test>"
        "Images.txt, Flicker8k_Dataset/<file>.jpg}",
        "train",
        "Flickr8k (Hodosh et al., JAIR 2013); Karpathy split JSON (Karpathy & Fei-Fei, CVPR 2015)",
    ),
    "flickr30k": DatasetSpec(
        "captioning",
        captioning.read_flickr30k,
        "flickr30k/{dataset_flickr30k.json | results_20130124.token, flickr30k-images/}",
        "train",
        "Flickr30k (Young et al., TACL 2014); Karpathy split JSON",
    ),
    "RSICD": DatasetSpec(
        "captioning",
        captioning.read_rsicd,
        "rsicd/{dataset_rsicd.json, RSICD_images/<file>.jpg}",
        "train",
        "RSICD (Lu et al., IEEE TGRS 2018), its release's dataset_rsicd.json",
    ),
    "flickr10kH": DatasetSpec(
        "captioning",
        captioning.read_flickrstyle_humor,
        "FlickrStyle_v0.9/humor/{funny_train.txt, train_images.txt | train.p}, "
        "flickr30k/flickr30k-images/",
        "train",
        "FlickrStyle10K humor (Gan et al., StyleNet, CVPR 2017), images from Flickr30k",
    ),
    "flickr10kR": DatasetSpec(
        "captioning",
        captioning.read_flickrstyle_romantic,
        "FlickrStyle_v0.9/romantic/{romantic_train.txt, train_images.txt | train.p}, "
        "flickr30k/flickr30k-images/",
        "train",
        "FlickrStyle10K romantic (Gan et al., StyleNet, CVPR 2017), images from Flickr30k",
    ),
    # ---------------------------------------------------------------- VQA
    "cocoqa": DatasetSpec(
        "vqa",
        vqa.read_cocoqa,
        "cocoqa/<train|test>/{img_ids.txt, questions.txt, answers.txt, types.txt}, "
        "coco/<train2014|val2014>/",
        "train",
        "COCO-QA (Ren et al., NeurIPS 2015, University of Toronto) on MS-COCO 2014",
    ),
    "daquar": DatasetSpec(
        "vqa",
        vqa.read_daquar,
        "daquar/{qa.894.raw.<train|test>.txt, nyu_depth_images/image<N>.png}",
        "train",
        "DAQUAR (Malinowski & Fritz, NeurIPS 2014, MPI Informatics) on NYU-Depth V2",
    ),
    "clevr": DatasetSpec(
        "vqa",
        vqa.read_clevr,
        "CLEVR_v1.0/{questions/CLEVR_<split>_questions.json, images/<split>/*.png}",
        "train",
        "CLEVR v1.0 (Johnson et al., CVPR 2017, Stanford)",
    ),
    # ---------------------------------------------------------------- text QA
    "squad1.1": DatasetSpec(
        "textqa",
        textqa.read_squad11,
        "squad/<train|dev>-v1.1.json",
        "train",
        "SQuAD 1.1 official JSON (Rajpurkar et al., EMNLP 2016)",
    ),
    "squad2.0": DatasetSpec(
        "textqa",
        textqa.read_squad20,
        "squad/<train|dev>-v2.0.json",
        "train",
        "SQuAD 2.0 official JSON (Rajpurkar et al., ACL 2018)",
    ),
    # ---------------------------------------------------------------- referring
    "refcoco": DatasetSpec(
        "referring",
        referring.read_refcoco,
        f"refcoco/{{refs(unc).json | refs(unc).p, instances.json}}, {_COCO}",
        "train",
        "RefCOCO (Yu et al., ECCV 2016), refer API release (UNC)",
    ),
    "refcoco+": DatasetSpec(
        "referring",
        referring.read_refcoco_plus,
        f"refcoco+/{{refs(unc).json | refs(unc).p, instances.json}}, {_COCO}",
        "train",
        "RefCOCO+ (Yu et al., ECCV 2016), refer API release (UNC)",
    ),
    "refcocog": DatasetSpec(
        "referring",
        referring.read_refcocog,
        f"refcocog/{{refs(umd).json | refs(umd).p, instances.json}}, {_COCO}",
        "train",
        "RefCOCOg (Mao et al., CVPR 2016; UMD split of Nagaraja et al., ECCV 2016)",
    ),
}


def read_paper_dataset(name: str, root: str | Path, split: str | None = None, **options):
    """Read one split of a paper dataset from local files (default: the split used).

    Args:
        name: a key of :data:`PAPER_DATASETS`.
        root: the folder holding the dataset's layout (see the spec).
        split: defaults to ``PAPER_DATASETS[name].split``.
        **options: reader options (``allow_pickle``, ``verify_checksums``, ...).
    """
    if name not in PAPER_DATASETS:
        raise KeyError(f"unknown paper dataset {name!r}; choose one of {sorted(PAPER_DATASETS)}.")
    spec = PAPER_DATASETS[name]
    return spec.reader(root, spec.split if split is None else split, **options)


def render_layout_table() -> str:
    """The Markdown table (dataset, task, expected layout, split used, source)."""
    rows = [
        "| dataset | task | expected layout under the data root | split used | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, spec in PAPER_DATASETS.items():
        layout = spec.layout.replace("|", "\\|")
        rows.append(f"| `{name}` | {spec.task} | `{layout}` | {spec.split} | {spec.source} |")
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- BEGIN paper-datasets table -->", "<!-- END paper-datasets table -->"


def write_layout_table(path: str | Path) -> bool:
    """Replace the text between the table markers of ``path`` by :func:`render_layout_table`.

    Returns:
        True if the file changed.
    """
    from emms.cache import atomic_write_text

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no {BEGIN} ... {END} markers.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{render_layout_table()}{END}{tail}"
    if new != text:
        atomic_write_text(path, new)
    return new != text
