"""Text question answering, extractive spans (paper §4.4): which pre-trained text encoder
to fine-tune for SQuAD-style QA.

The embedded miniature:

* **data** (:mod:`emms.datasets.pydoc_qa`): cloze questions on short paragraphs of
  Python's bundled documentation, SQuAD JSON read by :mod:`emms.datasets.squad`; the
  prose is split by topic, so test paragraphs are unseen. Targets ``short`` (1-2 word
  answers) and ``unanswerable`` (the same kind, 15 % unanswerable as in SQuAD 2.0);
  ``textqa.data.n_train`` / ``n_test`` questions are drawn (seeded) from the pinned files.
* **zoo** (:mod:`emms.models.text_zoo`): the pre-trained all-MiniLM-L6-v2, its truncations
  to fewer layers, small BERTs pre-trained here by span selection (amount x depth) and a
  randomly initialised control.
* **truth** (:mod:`emms.models.text_finetune`): SQuAD F1 (the truth column ``f1``) and exact
  match (``exact_match``) on the test questions after fine-tuning start/end heads with one
  recipe, several seeds.
* **features** (:mod:`emms.models.text_features`): the **mean of the final hidden states
  over the context tokens** of ``[CLS] question [SEP] context [SEP]``, i.e. of the tokens
  the span head scores (question, special and padding tokens excluded).
* **F-labels**: the answer span's text with its question, ``"Q: {question} A: {answer}"``
  (:func:`emms.tasks.base.label_text` with format ``span``; an unanswerable question's
  answer is :data:`NO_ANSWER`), embedded by the shared ``encoders``;
  ``textqa.flabels.with_question: false`` embeds the answer alone.

Model code is imported inside the hooks, so each stage imports only what it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from emms.cache import CacheError, atomic_write_bytes

from .base import TargetData, Task, label_text

__all__ = ["TextQA"]

_VERSION = "emms textqa target (SQuAD 1.1 format)"
#: The F-label answer of an unanswerable question (SQuAD 2.0 has no text for it).
NO_ANSWER = "no answer"


def _targets() -> dict[str, str]:
    from emms.datasets.pydoc_qa import TARGETS

    return {name: spec.description for name, spec in TARGETS.items()}


def _draw(examples: list, n: int, rng) -> list:
    """``n`` examples drawn without replacement, kept in file order (all if fewer)."""
    if n >= len(examples):
        return list(examples)
    return [examples[i] for i in sorted(rng.choice(len(examples), n, replace=False))]


class TextQA(Task):
    name = "textqa"
    label_format = "span"
    truth_metric = "f1"
    truth_metric_label = "SQuAD F1 after fine-tuning"
    paper_section = "§4.4"
    headline_task = "text_question_answering"
    paper_scale = "paper (§4.4, SQuAD, BERT-family zoo)"
    truth_scale = 100.0  # F1 and exact match are percentages

    @property
    def targets(self) -> dict[str, str]:  # type: ignore[override]
        return _targets()

    @property
    def truth_columns(self) -> tuple[str, ...]:
        return ("dataset", "model", "seed", "f1", "exact_match")

    # --- data -------------------------------------------------------------------------
    def build_data(self, params, paths, raw) -> None:
        from emms.datasets.pydoc_qa import TARGETS, load_raw
        from emms.datasets.squad import squad_json

        files = load_raw(raw)  # every item checked before anything is written
        outputs: dict = {}
        for index, name in enumerate(params.data.targets):
            rng = np.random.default_rng([params.data.seed, index])
            train = _draw(files[f"{name}_train"], params.data.n_train, rng)
            test = _draw(files[f"{name}_test"], params.data.n_test, rng)
            folder = paths.processed_target(name)
            outputs[folder / "train.json"] = squad_json(train, _VERSION)
            outputs[folder / "test.json"] = squad_json(test, _VERSION)
            meta = {
                "description": TARGETS[name].description,
                "train": len(train),
                "test": len(test),
            }
            outputs[folder / "meta.json"] = json.dumps(meta, indent=2).encode()
        contexts = [{"title": ex.title, "context": ex.context} for ex in files["source"]]
        outputs[paths.source / "contexts.json"] = json.dumps(contexts, indent=1).encode()
        for path, data in outputs.items():
            atomic_write_bytes(path, data)

    def load_target(self, paths, target: str) -> TargetData:
        from emms.datasets.squad import read_squad

        folder = paths.processed_target(target)
        meta = self._target_meta(paths, target)
        train, test = read_squad(folder / "train.json"), read_squad(folder / "test.json")
        return TargetData(
            name=target,
            task=self.name,
            label_format=self.label_format,
            train_inputs=train,
            # an unanswerable question's label is the words SQuAD 2.0 systems print for it
            train_labels=[ex.answer_texts[0] if ex.answers else NO_ANSWER for ex in train],
            test_inputs=test,
            test_labels=[ex.answer_texts for ex in test],
            description=meta["description"],
            context={"question": [ex.question for ex in train]},
        )

    def label_texts(self, params, target: TargetData) -> list[str]:
        with_question = params.flabels.with_question
        return [
            label_text(
                self.label_format,
                label,
                question=target.context["question"][i] if with_question else "",
            )
            for i, label in enumerate(target.train_labels)
        ]

    # --- models -----------------------------------------------------------------------
    def _source(self, paths):
        from emms.datasets.squad import QAExample

        path = paths.source / "contexts.json"
        if not path.is_file():
            raise CacheError(f"{path} is missing; run `dvc repro data@{self.name}`.")
        entries = json.loads(path.read_text())
        return [
            QAExample(f"source-{i}", e["title"], e["context"], "-") for i, e in enumerate(entries)
        ]

    def pretrain_zoo(self, params, paths, progress: bool = True) -> None:
        from tqdm.auto import tqdm

        from emms.models.text_zoo import load_tokenizer, pretrain, save_checkpoint

        source, tokenizer = self._source(paths), load_tokenizer()
        for recipe in tqdm(params.zoo.recipes(), desc="zoo", disable=not progress):
            encoder = pretrain(recipe, source, tokenizer)
            save_checkpoint(encoder, recipe, paths.checkpoint(recipe.name))

    def model_outputs(self, params, paths, model: str, target: TargetData) -> dict:
        from emms.models.text_features import extract_features

        return {
            "features": extract_features(
                paths.checkpoint(model), target.train_inputs, batch_size=params.features.batch_size
            )
        }

    def truth_workers(self, params) -> int:
        return params.finetune.workers

    def finetune(self, params, paths, model: str, target: TargetData, seed: int) -> Mapping:
        from emms.models.text_finetune import finetune

        recipe = params.finetune
        return finetune(
            paths.checkpoint(model),
            target.train_inputs,
            target.test_inputs,
            steps=recipe.steps,
            lr=recipe.lr,
            head_lr=recipe.head_lr,
            batch_size=recipe.batch_size,
            weight_decay=recipe.weight_decay,
            freeze_word_embeddings=recipe.freeze_word_embeddings,
            seed=seed,
        )
