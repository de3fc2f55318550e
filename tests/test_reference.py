"""The paper's figures are copied into data/reference byte for byte."""

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
FILES = [
    "finetune_cnn_classification.csv",
    "finetune_vit_classification.csv",
    "finetune_captioning_bleu4.csv",
    "headline.csv",
]


@pytest.mark.parametrize("name", FILES)
def test_reference_files_are_verbatim_copies(name):
    if not SHARED.is_dir():
        pytest.skip("../shared/reference is not beside this checkout")
    assert (ROOT / "data" / "reference" / name).read_bytes() == (SHARED / name).read_bytes()


def test_headline_has_the_five_tasks():
    headline = pd.read_csv(ROOT / "data" / "reference" / "headline.csv").set_index("task")
    assert set(headline.index) == {
        "image_recognition",
        "image_captioning",
        "visual_question_answering",
        "text_question_answering",
        "referring_expression_comprehension",
    }
    assert (headline["speedup_over_logme_flabel"] > 1).all()
