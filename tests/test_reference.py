"""The paper's figures in data/reference are the bytes that were checked, on
2026-11-26, against the copy the project was started from (the paper and the authors'
release; provenance in data/reference/README.md); their SHA-256 is pinned here so an
edit cannot pass unnoticed, with no file outside the repository needed."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHA256 = {
    "finetune_cnn_classification.csv": "e586c1f79a924782560016bc4d33a39a8d69c61676bbf92e16366bfabb1a7f40",  # noqa: E501
    "finetune_vit_classification.csv": "843b14d18539040151a14647fd74da5ee2fb4ab1a3109fc51927492e64c4c415",  # noqa: E501
    "finetune_captioning_bleu4.csv": "03e8e8a06db1b19926b5d4ad6bef18097bd1269a193227010e864bfb32985d89",  # noqa: E501
    "headline.csv": "afe8a7215502c017052f60a5651a95ce79837fa8dbd667b42ed855daae237e99",
}


@pytest.mark.parametrize("name", sorted(SHA256))
def test_reference_files_are_the_checked_bytes(name):
    data = (ROOT / "data" / "reference" / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256[name]


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
