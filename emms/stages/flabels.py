"""``flabels``: label -> text -> embedding by every encoder -> ``cache/TASK/flabels``."""

from __future__ import annotations

import numpy as np

from emms.cache import save_array
from emms.params import SHUFFLED_PREFIX
from emms.paths import TaskPaths

from . import record_time


def run(task, params, root=".") -> None:
    from emms.models.flabels import embed_texts, load_encoder

    paths = TaskPaths(task.name, root)
    block = params.task(task.name)
    with record_time(paths, "flabels"):
        targets = {name: task.load_target(paths, name) for name in block.data.targets}
        for encoder_name in params.check_encoders():
            base = encoder_name.removeprefix(SHUFFLED_PREFIX)
            encoder = load_encoder(base)
            description = encoder.description
            if base != encoder_name:
                description = (
                    f"{description}, embedding the labels of a random permutation of the "
                    "samples (seed 0): a label-noise control, independent of the true labels"
                )
            for name, target in targets.items():
                texts = task.label_texts(block, target)
                if base != encoder_name:
                    texts = list(np.asarray(texts, dtype=object)[_shuffle(len(texts))])
                save_array(
                    paths.flabels(name, encoder_name),
                    embed_texts(encoder, texts),
                    task=task.name,
                    encoder=encoder_name,
                    description=description,
                    dataset=name,
                    split="train",
                    template=task.flabel_template(block),
                )


def _shuffle(n: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(n)
