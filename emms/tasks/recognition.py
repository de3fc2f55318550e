"""Image recognition (paper §4.1): which pre-trained backbone to fine-tune for a new
classification target.

The embedded miniature: scikit-learn's digits (:mod:`emms.datasets.digits`), a zoo of small
timm backbones pre-trained on the SOURCE pool (:mod:`emms.models.zoo`), features from the
pooled penultimate layer (:mod:`emms.models.features`), truth = test accuracy after
fine-tuning all layers (:mod:`emms.models.finetune`). Labels are class ids; their text is
the class name through ``recognition.flabels.template``.

Imports of model code happen inside the hooks, so each stage imports (and ``dvc.yaml``
lists) only the code it runs.
"""

from __future__ import annotations

import json

import numpy as np

from emms.cache import atomic_write_text, load_array, save_array

from .base import TargetData, Task

__all__ = ["Recognition"]


def _targets() -> dict[str, str]:
    from emms.datasets.digits import TARGETS

    return {name: spec.description for name, spec in TARGETS.items()}


class Recognition(Task):
    name = "recognition"
    label_format = "class"
    truth_metric = "test_accuracy"
    truth_metric_label = "test accuracy after fine-tuning"
    paper_section = "§4.1"
    headline_task = "image_recognition"
    has_source_probs = True

    @property
    def targets(self) -> dict[str, str]:  # type: ignore[override]
        return _targets()

    # --- data -------------------------------------------------------------------------
    def build_data(self, params, paths, raw) -> None:
        from emms.datasets.digits import load_raw, load_source, load_target

        arrays = load_raw(raw)
        size = params.data.image_size
        source = load_source(arrays, image_size=size)
        save_array(paths.source / "images.npy", source.images, dataset="source", split="train")
        save_array(paths.source / "labels.npy", source.labels, dataset="source", split="train")
        atomic_write_text(
            paths.source / "meta.json",
            json.dumps({"class_names": source.class_names, "description": source.description}),
        )
        for name in params.data.targets:
            target = load_target(name, arrays, seed=params.data.seed, image_size=size)
            folder = paths.processed_target(name)
            for split in ("train", "test"):
                for kind in ("images", "labels"):
                    save_array(
                        folder / f"{split}_{kind}.npy",
                        getattr(target, f"{split}_{kind}"),
                        dataset=name,
                        split=split,
                    )
            atomic_write_text(
                folder / "meta.json",
                json.dumps(
                    {"class_names": target.class_names, "description": target.description},
                    indent=2,
                ),
            )

    def load_target(self, paths, target: str) -> TargetData:
        folder = paths.processed_target(target)
        meta = self._target_meta(paths, target)
        arrays = {
            f"{split}_{kind}": load_array(
                folder / f"{split}_{kind}.npy", expect={"dataset": target, "split": split}
            )[0]
            for split in ("train", "test")
            for kind in ("images", "labels")
        }
        return TargetData(
            name=target,
            task=self.name,
            label_format=self.label_format,
            train_inputs=arrays["train_images"],
            train_labels=arrays["train_labels"],
            test_inputs=arrays["test_images"],
            test_labels=arrays["test_labels"],
            class_names=list(meta["class_names"]),
            description=meta["description"],
        )

    def flabel_template(self, params) -> str:
        return params.flabels.template

    def label_texts(self, params, target: TargetData) -> list[str]:
        template, names = params.flabels.template, target.class_names
        return [template.format(name=names[int(label)]) for label in target.train_labels]

    # --- models -----------------------------------------------------------------------
    def _source(self, paths):
        from emms.datasets.digits import SourceDataset

        meta = json.loads((paths.source / "meta.json").read_text())
        expect = {"dataset": "source", "split": "train"}
        return SourceDataset(
            images=load_array(paths.source / "images.npy", expect=expect)[0],
            labels=load_array(paths.source / "labels.npy", expect=expect)[0],
            class_names=meta["class_names"],
            description=meta["description"],
        )

    def pretrain_zoo(self, params, paths, progress: bool = True) -> None:
        from tqdm.auto import tqdm

        from emms.models.zoo import pretrain, save_checkpoint

        source = self._source(paths)
        for recipe in tqdm(params.zoo.recipes(), desc="zoo", disable=not progress):
            model = pretrain(recipe, source, progress=False)
            save_checkpoint(model, recipe, paths.checkpoint(recipe.name))

    def model_outputs(self, params, paths, model: str, target: TargetData) -> dict:
        from emms.models.features import extract_features
        from emms.models.zoo import load_checkpoint, source_probabilities

        network, _ = load_checkpoint(paths.checkpoint(model))
        batch = params.features.batch_size
        return {
            "features": extract_features(network, target.train_inputs, batch_size=batch),
            "source_probs": source_probabilities(network, target.train_inputs, batch_size=batch),
        }

    def finetune(self, params, paths, model: str, target: TargetData, seed: int) -> float:
        from emms.datasets.digits import TargetDataset
        from emms.models.finetune import finetune

        recipe = params.finetune
        dataset = TargetDataset(
            name=target.name,
            train_images=target.train_inputs,
            train_labels=np.asarray(target.train_labels),
            test_images=target.test_inputs,
            test_labels=np.asarray(target.test_labels),
            class_names=target.class_names,
            description=target.description,
        )
        return finetune(
            paths.checkpoint(model),
            dataset,
            epochs=recipe.epochs,
            lr=recipe.lr,
            batch_size=recipe.batch_size,
            weight_decay=recipe.weight_decay,
            head_lr=recipe.head_lr,
            min_steps=recipe.min_steps,
            seed=seed,
        )
