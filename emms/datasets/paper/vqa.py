"""Readers of the 3 visual-question-answering datasets (EMMS §4.4).

* COCO-QA (Ren et al., NeurIPS 2015): ``cocoqa/{train,test}/`` each with four aligned text
  files ``img_ids.txt``, ``questions.txt``, ``answers.txt``, ``types.txt`` (0 object,
  1 number, 2 color, 3 location). Images are MS-COCO 2014: train from ``train2014``, test
  from ``val2014``, named ``COCO_<set>_<id:012d>.jpg``.
* DAQUAR (Malinowski & Fritz, NeurIPS 2014): ``daquar/qa.894.raw.{train,test}.txt`` (full,
  894 answers) or ``qa.37.raw.reduced.{train,test}.txt`` (reduced), question and answer
  on alternating lines, the image named at the end of the question ("... in the
  image123 ?"); images ``daquar/nyu_depth_images/image123.png``.
* CLEVR v1.0 (Johnson et al., CVPR 2017): ``CLEVR_v1.0/questions/CLEVR_<split>_questions.json``
  (``questions[].image_filename, question, answer``) and ``CLEVR_v1.0/images/<split>/``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import fail, key, need_dir, need_split, nonempty, read_json, read_lines
from .types import VQASplit

__all__ = ["read_cocoqa", "read_daquar", "read_clevr", "COCOQA_TYPES"]

COCOQA_TYPES = ("object", "number", "color", "location")
_DAQUAR_IMAGE = re.compile(r"\b(image\d+)\s*\?*\s*$")


def read_cocoqa(root, split: str = "train", *, coco_dir: str | Path | None = None):
    """COCO-QA; ``coco_dir`` (default ``<root>/coco``) holds ``train2014/`` and ``val2014/``."""
    name, root = "cocoqa", Path(root)
    need_split(name, split, ("train", "test"))
    folder = need_dir(name, root / "cocoqa" / split)
    coco_set = "train2014" if split == "train" else "val2014"
    images_dir = need_dir(name, Path(coco_dir or root / "coco") / coco_set)
    columns = {
        f: read_lines(name, folder / f"{f}.txt")
        for f in ("img_ids", "questions", "answers", "types")
    }
    lengths = {f: len(v) for f, v in columns.items()}
    if len(set(lengths.values())) != 1:
        fail(name, folder, f"the four files must have one line per question; got {lengths}")
    nonempty(name, folder, split, lengths["img_ids"])
    try:
        images = tuple(
            images_dir / f"COCO_{coco_set}_{int(i):012d}.jpg" for i in columns["img_ids"]
        )
        types = tuple(COCOQA_TYPES[int(t)] for t in columns["types"])
    except (ValueError, IndexError) as error:
        fail(name, folder, f"img_ids.txt must hold integers and types.txt 0-3 ({error})")
    return VQASplit(
        name, split, images, tuple(columns["questions"]), tuple(columns["answers"]), types
    )


def read_daquar(root, split: str = "train", *, reduced: bool = False):
    """DAQUAR, full (894 answers, default) or reduced (37 answers)."""
    name, root = "daquar", Path(root)
    need_split(name, split, ("train", "test"))
    base = need_dir(name, root / "daquar")
    images_dir = need_dir(name, base / "nyu_depth_images")
    path = base / (f"qa.37.raw.reduced.{split}.txt" if reduced else f"qa.894.raw.{split}.txt")
    lines = read_lines(name, path)
    if len(lines) % 2:
        fail(name, path, f"{len(lines)} lines: questions and answers must alternate")
    images, questions, answers = [], [], []
    for k in range(0, len(lines), 2):
        match = _DAQUAR_IMAGE.search(lines[k])
        if match is None:
            fail(name, path, f"line {k + 1} names no image ('... in the image<N> ?'): {lines[k]!r}")
        images.append(images_dir / f"{match.group(1)}.png")
        questions.append(lines[k])
        answers.append(lines[k + 1])
    nonempty(name, path, split, len(images))
    return VQASplit(name, split, tuple(images), tuple(questions), tuple(answers))


def read_clevr(root, split: str = "train"):
    """CLEVR v1.0 (train or val; the test questions have no answers)."""
    name, root = "clevr", Path(root)
    need_split(name, split, ("train", "val"))
    base = need_dir(name, root / "CLEVR_v1.0")
    images_dir = need_dir(name, base / "images" / split)
    path = base / "questions" / f"CLEVR_{split}_questions.json"
    data = read_json(name, path)
    images, questions, answers, types = [], [], [], []
    for k, q in enumerate(key(name, path, data, "questions")):
        where = f"questions[{k}]"
        images.append(images_dir / key(name, path, q, "image_filename", where))
        questions.append(key(name, path, q, "question", where))
        answers.append(str(key(name, path, q, "answer", where)))
        program = q.get("program") or [{}]
        types.append(str(program[-1].get("function", program[-1].get("type", ""))))
    nonempty(name, path, split, len(images))
    return VQASplit(name, split, tuple(images), tuple(questions), tuple(answers), tuple(types))
