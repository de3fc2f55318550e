"""Paper-scale dataset readers: tiny fixtures in each dataset's real distributed format
(real folder and file names, real JSON keys, real .mat / pickle / XML files) are written
to tmp_path and read back to known values; broken layouts fail with a named error."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from emms.datasets.paper import (
    PAPER_DATASETS,
    DatasetLayoutError,
    ImageDecodeError,
    read_paper_dataset,
    render_layout_table,
)
from emms.datasets.paper.registry import BEGIN, END

REPO = Path(__file__).resolve().parents[1]


def image(path: Path, color=(200, 10, 10), size=(5, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix == ".png" else "JPEG"
    Image.new("RGB", size, color).save(path, fmt)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def dump(path: Path, obj) -> Path:
    return text(path, json.dumps(obj))


# ----------------------------------------------------------------- fixture builders
# Each builder writes one dataset under root and returns (reader options, check(record)).


def build_aircraft(root):
    base = root / "fgvc-aircraft-2013b" / "data"
    text(base / "variants.txt", "707-320\nCessna 172\nA300B4\n")
    text(base / "images_variant_trainval.txt", "0034309 Cessna 172\n0034958 707-320\n")
    for i in ("0034309", "0034958"):
        image(base / "images" / f"{i}.jpg")

    def check(r):
        assert r.class_names == ("707-320", "Cessna 172", "A300B4")
        assert r.class_ids.tolist() == [1, 0]
        assert [p.name for p in r.images] == ["0034309.jpg", "0034958.jpg"]

    return {}, check


def build_caltech101(root):
    base = root / "caltech101" / "101_ObjectCategories"
    image(base / "BACKGROUND_Google" / "image_0001.jpg")
    image(base / "accordion" / "image_0001.jpg")
    image(base / "accordion" / "image_0002.jpg")
    image(base / "airplanes" / "image_0001.jpg")

    def check(r):
        assert r.class_names == ("accordion", "airplanes")  # background is not a class
        assert r.class_ids.tolist() == [0, 0, 1]
        assert r.images[1] == base / "accordion" / "image_0002.jpg"
        assert r.load_image(2).size == (5, 4)

    return {}, check


def build_cars(root):
    base = root / "stanford_cars"
    annotations = np.zeros(2, dtype=[("bbox_x1", "O"), ("class", "O"), ("fname", "O")])
    annotations[0] = (1, 2, "00001.jpg")
    annotations[1] = (1, 1, "00002.jpg")
    (base / "devkit").mkdir(parents=True)
    sio.savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": annotations})
    sio.savemat(
        base / "devkit" / "cars_meta.mat",
        {
            "class_names": np.array(
                ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object
            )
        },
    )
    image(base / "cars_train" / "00001.jpg")
    image(base / "cars_train" / "00002.jpg")

    def check(r):
        assert r.class_names == ("AM General Hummer SUV 2000", "Acura RL Sedan 2012")
        assert r.class_ids.tolist() == [1, 0]  # 1-based in the .mat
        assert r.images[0] == base / "cars_train" / "00001.jpg"

    return {}, check


def build_dtd(root):
    base = root / "dtd" / "dtd"
    text(base / "labels" / "train1.txt", "zigzagged/zigzagged_0010.jpg\nbanded/banded_0002.jpg\n")
    image(base / "images" / "banded" / "banded_0002.jpg")
    image(base / "images" / "zigzagged" / "zigzagged_0010.jpg")

    def check(r):
        assert r.class_names == ("banded", "zigzagged")
        assert r.class_ids.tolist() == [1, 0]

    return {}, check


def build_flowers(root):
    base = root / "flowers-102"
    for i in (1, 2, 3):
        image(base / "jpg" / f"image_{i:05d}.jpg")
    sio.savemat(base / "imagelabels.mat", {"labels": np.array([[3, 1, 3]])})
    sio.savemat(
        base / "setid.mat",
        {"trnid": np.array([[3, 2]]), "valid": np.array([[1]]), "tstid": np.array([[1]])},
    )

    def check(r):
        assert [p.name for p in r.images] == ["image_00003.jpg", "image_00002.jpg"]
        assert r.class_ids.tolist() == [2, 0]
        assert len(r.class_names) == 102
        assert [r.class_names[c] for c in r.class_ids] == ["canterbury bells", "pink primrose"]

    return {"verify_checksums": False}, check


def build_food(root):
    base = root / "food-101"
    dump(
        base / "meta" / "train.json",
        {"baby_back_ribs": ["baby_back_ribs/7"], "apple_pie": ["apple_pie/1", "apple_pie/2"]},
    )
    for rel in ("baby_back_ribs/7", "apple_pie/1", "apple_pie/2"):
        image(base / "images" / f"{rel}.jpg")

    def check(r):
        assert r.class_names == ("apple_pie", "baby_back_ribs")
        assert sorted(zip([p.stem for p in r.images], r.class_ids.tolist(), strict=True)) == [
            ("1", 0),
            ("2", 0),
            ("7", 1),
        ]

    return {}, check


def build_pets(root):
    base = root / "oxford-iiit-pet"
    text(
        base / "annotations" / "trainval.txt",
        "Abyssinian_1 1 1 1\nbasset_hound_2 2 2 1\nAbyssinian_3 1 1 1\n",
    )
    for name in ("Abyssinian_1", "basset_hound_2", "Abyssinian_3"):
        image(base / "images" / f"{name}.jpg")

    def check(r):
        assert r.class_names == ("Abyssinian", "Basset Hound")
        assert r.class_ids.tolist() == [0, 1, 0]
        assert r.images[1] == base / "images" / "basset_hound_2.jpg"

    return {}, check


def build_sun397(root):
    base = root / "SUN397"
    text(base / "ClassName.txt", "/a/abbey\n/a/apartment_building/outdoor\n")
    image(base / "a" / "apartment_building" / "outdoor" / "sun_bbb.jpg")
    image(base / "a" / "abbey" / "sun_aaa.jpg")

    def check(r):
        assert r.class_names == ("abbey", "apartment_building/outdoor")
        assert [p.name for p in r.images] == ["sun_aaa.jpg", "sun_bbb.jpg"]
        assert r.class_ids.tolist() == [0, 1]

    return {}, check


def _voc_xml(objects):
    body = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox>"
        "</object>"
        for n, d in objects
    )
    return f"<annotation><filename>x.jpg</filename>{body}</annotation>"


def build_voc2007(root):
    base = root / "VOCdevkit" / "VOC2007"
    text(base / "ImageSets" / "Main" / "trainval.txt", "000005\n000007\n000009\n")
    text(base / "Annotations" / "000005.xml", _voc_xml([("chair", 1), ("person", 0), ("dog", 0)]))
    text(base / "Annotations" / "000007.xml", _voc_xml([("car", 0)]))
    text(base / "Annotations" / "000009.xml", _voc_xml([("bird", 1)]))
    for i in ("000005", "000007", "000009"):
        image(base / "JPEGImages" / f"{i}.jpg")

    def check(r):
        names = list(r.class_names)
        assert len(names) == 20
        assert [names[c] for c in r.class_ids] == ["person", "car", "bird"]
        hot = [sorted(names[k] for k in np.flatnonzero(row)) for row in r.multi_hot]
        assert hot == [["dog", "person"], ["car"], []]  # difficult objects not counted

    return {}, check


def _cifar(root, folder, files, label_key, meta_file, meta_key, names):
    base = root / folder
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = {}
    for f in files:
        data = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        pixels[f] = data
        with open(base / f, "wb") as stream:
            pickle.dump({"data": data, label_key: [1, 0]}, stream)
    with open(base / meta_file, "wb") as stream:
        pickle.dump({meta_key: names}, stream)
    return pixels


def build_cifar10(root):
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    pixels = _cifar(
        root,
        "cifar-10-batches-py",
        files,
        "labels",
        "batches.meta",
        "label_names",
        ["airplane", "automobile"],
    )

    def check(r):
        assert len(r) == 10 and r.class_ids.tolist() == [1, 0] * 5
        assert r.class_names == ("airplane", "automobile")
        first = pixels["data_batch_1"][0].reshape(3, 32, 32).transpose(1, 2, 0)
        np.testing.assert_array_equal(np.asarray(r.load_image(0)), first)

    return {"verify_checksums": False, "allow_pickle": True}, check


def build_cifar100(root):
    pixels = _cifar(
        root,
        "cifar-100-python",
        ["train", "test"],
        "fine_labels",
        "meta",
        "fine_label_names",
        ["apple", "aquarium_fish"],
    )

    def check(r):
        assert r.class_ids.tolist() == [1, 0] and r.class_names == ("apple", "aquarium_fish")
        last = pixels["train"][1].reshape(3, 32, 32).transpose(1, 2, 0)
        np.testing.assert_array_equal(np.asarray(r.load_image(1)), last)

    return {"verify_checksums": False, "allow_pickle": True}, check


def _karpathy(path, images):
    dump(
        path,
        {
            "dataset": "x",
            "images": [
                {
                    "filename": f,
                    "imgid": i,
                    "split": s,
                    "sentences": [
                        {"raw": c, "tokens": c.lower().split(), "imgid": i} for c in caps
                    ],
                }
                for i, (f, s, caps) in enumerate(images)
            ],
        },
    )


def build_flickr8k(root):
    base = root / "flickr8k"
    _karpathy(
        base / "dataset_flickr8k.json",
        [
            ("1000268201_693b08cb0e.jpg", "train", ["A child in pink.", "A girl climbs."]),
            ("1001773457_577c3a7d70.jpg", "test", ["Two dogs."]),
            ("1002674143_1b742ab4b8.jpg", "train", ["A painted child."]),
        ],
    )
    for f in ("1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg"):
        image(base / "Flicker8k_Dataset" / f)

    def check(r):
        assert r.image_ids == ("1000268201_693b08cb0e.jpg", "1002674143_1b742ab4b8.jpg")
        assert r.captions == (("A child in pink.", "A girl climbs."), ("A painted child.",))
        assert r.images[0].parent.name == "Flicker8k_Dataset"

    return {}, check


def build_flickr30k(root):
    base = root / "flickr30k"
    _karpathy(
        base / "dataset_flickr30k.json",
        [
            ("1000092795.jpg", "val", ["Two young guys."]),
            ("10002456.jpg", "train", ["Several men.", "Workers.", "Men on a pole."]),
        ],
    )
    image(base / "flickr30k-images" / "10002456.jpg")

    def check(r):
        assert r.image_ids == ("10002456.jpg",) and len(r.captions[0]) == 3

    return {}, check


def build_RSICD(root):
    base = root / "rsicd"
    _karpathy(
        base / "dataset_rsicd.json",
        [("airport_1.jpg", "train", ["many planes are parked near a terminal ."] * 5)],
    )
    image(base / "RSICD_images" / "airport_1.jpg")

    def check(r):
        assert r.image_ids == ("airport_1.jpg",) and len(r.captions[0]) == 5

    return {}, check


def _flickrstyle(root, style, caption_file, captions, use_pickle):
    folder = root / "FlickrStyle_v0.9" / style
    text(folder / caption_file, "\n".join(captions) + "\n")
    files = ["1000092795.jpg", "10002456.jpg"]
    if use_pickle:
        with open(folder / "train.p", "wb") as stream:
            pickle.dump(files, stream)
    else:
        text(folder / "train_images.txt", "\n".join(files) + "\n")
    for f in files:
        image(root / "flickr30k" / "flickr30k-images" / f)
    return files


def build_flickr10kH(root):
    caps = ["two guys dance to scare off the ghosts", "men climb a pole to reach heaven"]
    files = _flickrstyle(root, "humor", "funny_train.txt", caps, use_pickle=False)

    def check(r):
        assert r.image_ids == tuple(files) and r.captions == tuple((c,) for c in caps)

    return {}, check


def build_flickr10kR(root):
    caps = ["two friends in love with life", "workers dreaming of the sky"]
    files = _flickrstyle(root, "romantic", "romantic_train.txt", caps, use_pickle=True)

    def check(r):
        assert r.image_ids == tuple(files) and r.captions[1] == ("workers dreaming of the sky",)

    return {"allow_pickle": True}, check


def build_cocoqa(root):
    base = root / "cocoqa" / "train"
    text(base / "img_ids.txt", "9\n25\n")
    text(base / "questions.txt", "what is the color of the bus\nhow many cats are there\n")
    text(base / "answers.txt", "red\ntwo\n")
    text(base / "types.txt", "2\n1\n")
    image(root / "coco" / "train2014" / "COCO_train2014_000000000009.jpg")

    def check(r):
        assert r.images[0].name == "COCO_train2014_000000000009.jpg"
        assert r.answers == ("red", "two") and r.question_types == ("color", "number")

    return {}, check


def build_daquar(root):
    base = root / "daquar"
    text(
        base / "qa.894.raw.train.txt",
        "what is on the right side of the table in the image1 ?\nchair\n"
        "what are the objects in the image12 ?\nchair, table, lamp\n",
    )
    image(base / "nyu_depth_images" / "image1.png")

    def check(r):
        assert [p.name for p in r.images] == ["image1.png", "image12.png"]
        assert r.answers == ("chair", "chair, table, lamp")

    return {}, check


def build_clevr(root):
    base = root / "CLEVR_v1.0"
    dump(
        base / "questions" / "CLEVR_train_questions.json",
        {
            "info": {},
            "questions": [
                {
                    "image_index": 0,
                    "image_filename": "CLEVR_train_000000.png",
                    "split": "train",
                    "question": "Are there more big green things than large purple shiny cubes?",
                    "answer": "yes",
                    "program": [{"function": "scene"}, {"function": "greater_than"}],
                },
                {
                    "image_index": 1,
                    "image_filename": "CLEVR_train_000001.png",
                    "split": "train",
                    "question": "How many cylinders?",
                    "answer": "2",
                    "program": [{"function": "count"}],
                },
            ],
        },
    )
    image(base / "images" / "train" / "CLEVR_train_000000.png")

    def check(r):
        assert r.answers == ("yes", "2") and r.question_types == ("greater_than", "count")
        assert r.load_image(0).mode == "RGB"

    return {}, check


CONTEXT = "Architecturally, the school has a Catholic character. A golden statue stands."


def _squad(version, qas):
    return {
        "version": version,
        "data": [
            {"title": "University_of_Notre_Dame", "paragraphs": [{"context": CONTEXT, "qas": qas}]}
        ],
    }


def build_squad11(root):
    start = CONTEXT.index("Catholic")
    dump(
        root / "squad" / "train-v1.1.json",
        _squad(
            "1.1",
            [
                {
                    "id": "q1",
                    "question": "What character?",
                    "answers": [{"text": "Catholic", "answer_start": start}],
                }
            ],
        ),
    )

    def check(r):
        span = r.answers[0][0]
        assert (span.text, span.start, span.end) == ("Catholic", start, start + 8)
        assert r.contexts[0][span.start : span.end] == "Catholic"
        assert not r.is_impossible.any()

    return {}, check


def build_squad20(root):
    start = CONTEXT.index("golden statue")
    dump(
        root / "squad" / "train-v2.0.json",
        _squad(
            "v2.0",
            [
                {
                    "id": "a",
                    "question": "What stands?",
                    "is_impossible": False,
                    "answers": [{"text": "golden statue", "answer_start": start}],
                },
                {
                    "id": "b",
                    "question": "What falls?",
                    "is_impossible": True,
                    "answers": [],
                    "plausible_answers": [{"text": "statue", "answer_start": start + 7}],
                },
            ],
        ),
    )

    def check(r):
        assert r.ids == ("a", "b") and r.is_impossible.tolist() == [False, True]
        assert r.answers[1] == () and r.plausible_answers[1][0].text == "statue"
        assert r.answers[0][0].end == start + len("golden statue")

    return {}, check


def _refer(root, folder, split_by, splits, as_json):
    base = root / folder
    dump(
        base / "instances.json",
        {
            "images": [
                {
                    "id": 9,
                    "file_name": "COCO_train2014_000000000009.jpg",
                    "width": 640,
                    "height": 480,
                }
            ],
            "annotations": [
                {"id": 101, "image_id": 9, "bbox": [10.0, 20.0, 30.5, 40.0], "category_id": 1},
                {"id": 102, "image_id": 9, "bbox": [0, 0, 5, 5], "category_id": 2},
            ],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
        },
    )
    refs = [
        {
            "ref_id": 0,
            "ann_id": 101,
            "image_id": 9,
            "split": splits[0],
            "category_id": 1,
            "sentences": [
                {"sent": "man on the left", "tokens": [], "sent_id": 0},
                {"sent": "left guy", "tokens": [], "sent_id": 1},
            ],
        },
        {
            "ref_id": 1,
            "ann_id": 102,
            "image_id": 9,
            "split": splits[1],
            "category_id": 2,
            "sentences": [{"sent": "dog", "tokens": [], "sent_id": 2}],
        },
    ]
    if as_json:
        dump(base / f"refs({split_by}).json", refs)
    else:
        with open(base / f"refs({split_by}).p", "wb") as stream:
            pickle.dump(refs, stream)
    image(root / "coco" / "train2014" / "COCO_train2014_000000000009.jpg")


def _check_refer(r):
    assert r.expressions == ("man on the left", "left guy")
    np.testing.assert_array_equal(r.boxes, [[10.0, 20.0, 40.5, 60.0]] * 2)
    assert r.image_sizes.tolist() == [[640, 480]] * 2
    assert r.ref_ids.tolist() == [0, 0] and r.ann_ids.tolist() == [101, 101]
    assert r.categories == ("person", "person")


def build_refcoco(root):
    _refer(root, "refcoco", "unc", ["train", "testA"], as_json=True)
    return {}, _check_refer


def build_refcoco_plus(root):
    _refer(root, "refcoco+", "unc", ["train", "testB"], as_json=False)
    return {"allow_pickle": True}, _check_refer


def build_refcocog(root):
    _refer(root, "refcocog", "umd", ["train", "test"], as_json=True)
    return {}, _check_refer


BUILDERS = {
    name: globals()["build_" + re.sub(r"\W", "", name.replace("+", "_plus").replace(".", ""))]
    for name in PAPER_DATASETS
}


# ----------------------------------------------------------------- tests


def test_every_dataset_has_a_fixture_and_the_registry_is_complete():
    assert len(PAPER_DATASETS) == 24
    tasks = [spec.task for spec in PAPER_DATASETS.values()]
    assert {t: tasks.count(t) for t in set(tasks)} == {
        "recognition": 11,
        "captioning": 5,
        "vqa": 3,
        "textqa": 2,
        "referring": 3,
    }
    import pandas as pd

    reference = REPO / "data" / "reference"
    for csv in ("finetune_cnn_classification.csv", "finetune_captioning_bleu4.csv"):
        for name in pd.read_csv(reference / csv)["dataset"]:
            assert name in PAPER_DATASETS, name


@pytest.mark.parametrize("name", list(PAPER_DATASETS))
def test_reader_reads_fixture_in_real_format(name, tmp_path):
    options, check = BUILDERS[name](tmp_path)
    record = read_paper_dataset(name, tmp_path, **options)
    assert record.dataset == name and record.split == PAPER_DATASETS[name].split
    assert len(record) > 0
    check(record)


@pytest.mark.parametrize("name", list(PAPER_DATASETS))
def test_empty_root_names_dataset_path_layout_and_source(name, tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        read_paper_dataset(name, tmp_path)
    message = str(info.value)
    spec = PAPER_DATASETS[name]
    assert message.startswith(f"{name}:") and str(tmp_path) in message
    assert spec.layout in message and spec.source in message


@pytest.mark.parametrize("name", ["aircraft", "flickr8k", "squad1.1", "refcoco", "daquar"])
def test_missing_split_is_named(name, tmp_path):
    options, _ = BUILDERS[name](tmp_path)
    with pytest.raises(DatasetLayoutError, match="split"):
        read_paper_dataset(name, tmp_path, split="no_such_split", **options)


def test_known_split_without_samples_or_files(tmp_path):
    build_flickr8k(tmp_path)
    with pytest.raises(DatasetLayoutError, match="split 'val' has no samples"):
        read_paper_dataset("flickr8k", tmp_path, split="val")
    build_squad11(tmp_path)
    with pytest.raises(DatasetLayoutError, match=r"file not found.*dev-v1\.1\.json"):
        read_paper_dataset("squad1.1", tmp_path, split="dev")
    build_refcoco(tmp_path)
    with pytest.raises(DatasetLayoutError, match="split 'val' has no samples"):
        read_paper_dataset("refcoco", tmp_path, split="val")


def test_image_that_does_not_decode_fails_only_when_opened(tmp_path):
    options, _ = build_caltech101(tmp_path)
    bad = tmp_path / "caltech101" / "101_ObjectCategories" / "airplanes" / "image_0001.jpg"
    bad.write_bytes(b"not a jpeg")
    record = read_paper_dataset("caltech101", tmp_path)  # reading the split decodes nothing
    assert record.load_image(0).size == (5, 4)
    with pytest.raises(ImageDecodeError, match=re.escape(str(bad))):
        record.load_image(2)
    (tmp_path / "caltech101" / "101_ObjectCategories" / "accordion" / "image_0001.jpg").unlink()
    assert record.undecodable() == [0, 2]  # a missing file and a broken one


@pytest.mark.parametrize(
    ("name", "path", "drop"),
    [
        ("flickr8k", "flickr8k/dataset_flickr8k.json", ("images", 0, "sentences")),
        ("RSICD", "rsicd/dataset_rsicd.json", ("images", 0, "split")),
        ("squad2.0", "squad/train-v2.0.json", ("data", 0, "paragraphs", 0, "context")),
        ("clevr", "CLEVR_v1.0/questions/CLEVR_train_questions.json", ("questions", 1, "answer")),
        ("refcoco", "refcoco/instances.json", ("annotations", 0, "bbox")),
    ],
)
def test_json_with_a_missing_key_names_it(name, path, drop, tmp_path):
    options, _ = BUILDERS[name](tmp_path)
    data = json.loads((tmp_path / path).read_text())
    node = data
    for step in drop[:-1]:
        node = node[step]
    del node[drop[-1]]
    dump(tmp_path / path, data)
    with pytest.raises(DatasetLayoutError, match=f"key '{drop[-1]}' missing"):
        read_paper_dataset(name, tmp_path, **options)


def test_invalid_json_is_a_layout_error(tmp_path):
    build_clevr(tmp_path)
    text(tmp_path / "CLEVR_v1.0/questions/CLEVR_train_questions.json", '{"questions": [')
    with pytest.raises(DatasetLayoutError, match="not valid JSON"):
        read_paper_dataset("clevr", tmp_path)


def test_squad_answer_start_must_point_at_the_answer(tmp_path):
    start = CONTEXT.index("Catholic")
    dump(
        tmp_path / "squad" / "train-v1.1.json",
        _squad(
            "1.1",
            [
                {
                    "id": "ok",
                    "question": "?",
                    "answers": [{"text": "Catholic", "answer_start": start}],
                },
                {
                    "id": "off",
                    "question": "?",
                    "answers": [{"text": "Catholic", "answer_start": 3}],
                },
            ],
        ),
    )
    with pytest.raises(DatasetLayoutError, match="question off: answer_start 3"):
        read_paper_dataset("squad1.1", tmp_path)
    record = read_paper_dataset("squad1.1", tmp_path, on_misaligned="drop")
    assert record.ids == ("ok",)


def test_squad11_rejects_a_squad20_file(tmp_path):
    build_squad20(tmp_path)
    (tmp_path / "squad" / "train-v2.0.json").rename(tmp_path / "squad" / "train-v1.1.json")
    with pytest.raises(DatasetLayoutError, match="SQuAD 2.0 file"):
        read_paper_dataset("squad1.1", tmp_path)


def test_pickles_are_read_only_when_allowed(tmp_path):
    build_refcoco_plus(tmp_path)
    with pytest.raises(DatasetLayoutError, match="Pickles can run arbitrary code") as info:
        read_paper_dataset("refcoco+", tmp_path)
    assert "refs(unc).json" in str(info.value)
    build_flickr10kR(tmp_path)
    with pytest.raises(DatasetLayoutError, match="allow_pickle=True"):
        read_paper_dataset("flickr10kR", tmp_path)
    build_cifar10(tmp_path)
    with pytest.raises(DatasetLayoutError, match="allow_pickle=True"):
        read_paper_dataset("cifar10", tmp_path, verify_checksums=False)


def test_refs_json_export_matches_the_pickle(tmp_path):
    from emms.datasets.paper.referring import export_refs_json

    build_refcoco_plus(tmp_path)
    from_pickle = read_paper_dataset("refcoco+", tmp_path, allow_pickle=True)
    export_refs_json(tmp_path / "refcoco+" / "refs(unc).p")
    from_json = read_paper_dataset("refcoco+", tmp_path)  # no pickle needed any more
    assert from_json.expressions == from_pickle.expressions
    np.testing.assert_array_equal(from_json.boxes, from_pickle.boxes)
    testb = read_paper_dataset("refcoco+", tmp_path, split="testB")
    assert testb.expressions == ("dog",) and testb.boxes.tolist() == [[0, 0, 5, 5]]


def test_checksums_of_official_files_are_verified_by_default(tmp_path):
    build_cifar10(tmp_path)
    with pytest.raises(DatasetLayoutError, match="torchvision could not read it"):
        read_paper_dataset("cifar10", tmp_path)
    build_flowers(tmp_path)
    with pytest.raises(DatasetLayoutError, match="corrupted"):
        read_paper_dataset("flowers", tmp_path)


def test_caption_and_vqa_files_must_align(tmp_path):
    build_flickr10kH(tmp_path)
    text(tmp_path / "FlickrStyle_v0.9/humor/funny_train.txt", "only one caption\n")
    with pytest.raises(DatasetLayoutError, match="1 captions in funny_train.txt but 2"):
        read_paper_dataset("flickr10kH", tmp_path)
    build_cocoqa(tmp_path)
    text(tmp_path / "cocoqa/train/answers.txt", "red\n")
    with pytest.raises(DatasetLayoutError, match="one line per question"):
        read_paper_dataset("cocoqa", tmp_path)
    build_daquar(tmp_path)
    text(tmp_path / "daquar/qa.894.raw.train.txt", "what is this ?\nchair\n")
    with pytest.raises(DatasetLayoutError, match="line 1 names no image"):
        read_paper_dataset("daquar", tmp_path)


def test_token_files_of_flickr8k_and_flickr30k(tmp_path):
    base = tmp_path / "flickr8k"
    text(
        base / "Flickr8k.token.txt",
        "1000268201_693b08cb0e.jpg#0\tA child in a pink dress .\n"
        "1000268201_693b08cb0e.jpg#1\tA girl going into a building .\n"
        "1001773457_577c3a7d70.jpg#0\tA black dog .\n",
    )
    text(base / "Flickr_8k.trainImages.txt", "1001773457_577c3a7d70.jpg\n")
    image(base / "Flicker8k_Dataset" / "1001773457_577c3a7d70.jpg")
    record = read_paper_dataset("flickr8k", tmp_path)
    assert record.image_ids == ("1001773457_577c3a7d70.jpg",)
    assert record.captions == (("A black dog .",),)
    text(
        tmp_path / "flickr30k" / "results_20130124.token",
        "1000092795.jpg#0\tTwo young guys .\n1000092795.jpg#1\tTwo friends .\n",
    )
    image(tmp_path / "flickr30k" / "flickr30k-images" / "1000092795.jpg")
    record = read_paper_dataset("flickr30k", tmp_path, split="all", source="token")
    assert record.captions == (("Two young guys .", "Two friends ."),)
    text(tmp_path / "flickr30k" / "results_20130124.token", "1000092795.jpg Two guys\n")
    with pytest.raises(DatasetLayoutError, match="line 1 is not"):
        read_paper_dataset("flickr30k", tmp_path, split="all", source="token")


def test_unknown_dataset():
    with pytest.raises(KeyError, match="unknown paper dataset 'imagenet'"):
        read_paper_dataset("imagenet", ".")


def test_docs_table_is_generated_from_the_registry(tmp_path):
    from emms.datasets.paper import write_layout_table

    table = render_layout_table()
    assert table.count("\n| `") == 24
    for name, spec in PAPER_DATASETS.items():
        assert f"| `{name}` | {spec.task} |" in table
    for doc in ("README.md", "docs/paper-scale.md"):
        assert f"{BEGIN}\n{table}{END}" in (REPO / doc).read_text(), (
            f"{doc}: run `python -m emms.datasets.paper`"
        )
    copy = text(tmp_path / "doc.md", f"intro\n{BEGIN}\nstale\n{END}\nend\n")
    assert write_layout_table(copy) is True
    assert copy.read_text() == f"intro\n{BEGIN}\n{table}{END}\nend\n"
    assert write_layout_table(copy) is False
