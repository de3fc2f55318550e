"""Every transferability selector of the artifact, with what it needs.

``SELECTORS[name]`` is a :class:`SelectorSpec`; calling it scores one model::

    from emms.selectors.registry import SELECTORS, selectors_for
    spec = SELECTORS["sfda"]
    spec(features, labels)                           # -> float, higher is better
    for spec in selectors_for(needs=FEATURES_LABEL_EMBEDDINGS, label_format="text"):
        spec(features, label_embeddings)

``needs`` says what the positional arguments are:

- ``"features+labels"``: features (N, D) and class ids (N,);
- ``"source_probs+labels"``: the source head's softmax (N, Z) and class ids;
- ``"source_labels+labels"``: the source head's hard predictions (N,) and class ids;
- ``"features+label_embeddings"``: features and F-labels (N, L, K).

``label_formats`` lists the label formats of the five experiments a selector can score:
``"class"`` (class ids), ``"text"`` (captions, answers, text spans: anything embedded as
text) and ``"box"`` (bounding boxes written as text). Class-only selectors need class ids.

LogME, LogME (F-label) and EMMS live in :mod:`emms.logme` and :mod:`emms.selector`; they are
imported when their entry is called, not when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .baselines import (
    gbc,
    hscore,
    leep,
    nce,
    nleep,
    pactran,
    parc,
    sfda,
    transrate,
    transrate_flabel,
)

__all__ = [
    "FEATURES_LABELS",
    "FEATURES_LABEL_EMBEDDINGS",
    "LABEL_FORMATS",
    "NEEDS",
    "SELECTORS",
    "SOURCE_LABELS_LABELS",
    "SOURCE_PROBS_LABELS",
    "SelectorSpec",
    "selectors_for",
]

FEATURES_LABELS = "features+labels"
SOURCE_PROBS_LABELS = "source_probs+labels"
SOURCE_LABELS_LABELS = "source_labels+labels"
FEATURES_LABEL_EMBEDDINGS = "features+label_embeddings"
NEEDS = (FEATURES_LABELS, SOURCE_PROBS_LABELS, SOURCE_LABELS_LABELS, FEATURES_LABEL_EMBEDDINGS)
LABEL_FORMATS = ("class", "text", "box")

CLASS_ONLY = ("class",)
ANY_FORMAT = ("class", "text", "box")


@dataclass(frozen=True)
class SelectorSpec:
    """One selector: ``function(first, second) -> float`` (higher = more transferable).

    Attributes:
        name: registry key.
        function: the scoring callable, taking the two inputs named by ``needs``.
        needs: one of :data:`NEEDS`.
        label: display name for tables and figures.
        reference: authors, year, venue.
        label_formats: the label formats it applies to (subset of :data:`LABEL_FORMATS`).
    """

    name: str
    function: Callable[..., float]
    needs: str
    label: str
    reference: str
    label_formats: tuple[str, ...]

    def __post_init__(self):
        if self.needs not in NEEDS:
            raise ValueError(f"{self.name}: needs={self.needs!r} is not one of {NEEDS}.")
        unknown = set(self.label_formats) - set(LABEL_FORMATS)
        if unknown or not self.label_formats:
            raise ValueError(
                f"{self.name}: label_formats {self.label_formats} not in {LABEL_FORMATS}."
            )

    def __call__(self, first, second) -> float:
        return float(self.function(first, second))


def _logme(features, labels) -> float:
    from .logme import logme

    return logme(features, labels)


def _logme_flabel(features, label_embeddings) -> float:
    from .logme import logme_flabel

    return logme_flabel(features, label_embeddings)


def _emms_solver(solver: str):
    def score(features, label_embeddings) -> float:
        from .emms_selector import emms

        return emms(features, label_embeddings, solver=solver).score

    score.__name__ = f"emms_{solver}"
    return score


def _emms_evidence(features, label_embeddings) -> float:
    from .emms_evidence import emms_evidence

    return emms_evidence(features, label_embeddings).score


def _spec(name, function, needs, label, reference, label_formats=CLASS_ONLY) -> SelectorSpec:
    return SelectorSpec(name, function, needs, label, reference, tuple(label_formats))


SELECTORS: dict[str, SelectorSpec] = {
    spec.name: spec
    for spec in (
        _spec("leep", leep, SOURCE_PROBS_LABELS, "LEEP", "Nguyen et al., 2020, ICML"),
        _spec("nce", nce, SOURCE_LABELS_LABELS, "NCE", "Tran et al., 2019, ICCV"),
        _spec("nleep", nleep, FEATURES_LABELS, "NLEEP", "Li et al., 2021, CVPR"),
        _spec("hscore", hscore, FEATURES_LABELS, "H-score", "Bao et al., 2019, ICIP"),
        _spec(
            "hscore_reg",
            partial(hscore, shrinkage="ledoit-wolf"),
            FEATURES_LABELS,
            "H-score (shrinkage)",
            "Ibrahim et al., 2022, ECML-PKDD",
        ),
        _spec("transrate", transrate, FEATURES_LABELS, "TransRate", "Huang et al., 2022, ICML"),
        _spec("sfda", sfda, FEATURES_LABELS, "SFDA", "Shao et al., 2022, ECCV"),
        _spec("gbc", gbc, FEATURES_LABELS, "GBC", "Pandy et al., 2022, CVPR"),
        _spec(
            "pactran_dirichlet",
            partial(pactran, prior="dirichlet"),
            FEATURES_LABELS,
            "PACTran-Dir",
            "Ding et al., 2022, ECCV",
        ),
        _spec(
            "pactran_gamma",
            partial(pactran, prior="gamma"),
            FEATURES_LABELS,
            "PACTran-Gam",
            "Ding et al., 2022, ECCV",
        ),
        _spec(
            "pactran_gaussian",
            partial(pactran, prior="gaussian"),
            FEATURES_LABELS,
            "PACTran-Gauss",
            "Ding et al., 2022, ECCV",
        ),
        _spec("parc", parc, FEATURES_LABELS, "PARC", "Bolya et al., 2021, NeurIPS"),
        _spec("logme", _logme, FEATURES_LABELS, "LogME", "You et al., 2021, ICML"),
        _spec(
            "transrate_flabel",
            # every one of the L K columns costs a full TransRate: 128 seeded columns give
            # an unbiased estimate of the same average at a bounded cost
            partial(transrate_flabel, max_dims=128),
            FEATURES_LABEL_EMBEDDINGS,
            "TransRate (F-label)",
            "Huang et al., 2022, ICML (value-binned F-labels, 128 sampled columns)",
            ANY_FORMAT,
        ),
        _spec(
            "logme_flabel",
            _logme_flabel,
            FEATURES_LABEL_EMBEDDINGS,
            "LogME (F-label)",
            "You et al., 2021, ICML; as used by Meng et al., 2023, NeurIPS",
            ANY_FORMAT,
        ),
        _spec(
            "emms",
            _emms_solver("exact"),
            FEATURES_LABEL_EMBEDDINGS,
            "EMMS (exact)",
            "Meng et al., 2023, NeurIPS (closed-form solver of the same objective)",
            ANY_FORMAT,
        ),
        _spec(
            "emms_paper",
            _emms_solver("paper"),
            FEATURES_LABEL_EMBEDDINGS,
            "EMMS (paper)",
            "Meng et al., 2023, NeurIPS (the paper's alternating minimisation)",
            ANY_FORMAT,
        ),
        _spec(
            "emms_released",
            _emms_solver("released"),
            FEATURES_LABEL_EMBEDDINGS,
            "EMMS (released)",
            "Meng et al., 2023, NeurIPS (one pass, as the public code)",
            ANY_FORMAT,
        ),
        _spec(
            "emms_evidence",
            _emms_evidence,
            FEATURES_LABEL_EMBEDDINGS,
            "EMMS (evidence)",
            "Meng et al., 2023, NeurIPS; ridge by maximum evidence as in You et al., 2021, ICML",
            ANY_FORMAT,
        ),
    )
}


def selectors_for(
    *, needs: str | None = None, label_format: str | None = None
) -> list[SelectorSpec]:
    """The registered selectors with these ``needs`` and applying to ``label_format``."""
    if needs is not None and needs not in NEEDS:
        raise ValueError(f"needs={needs!r} is not one of {NEEDS}.")
    if label_format is not None and label_format not in LABEL_FORMATS:
        raise ValueError(f"label_format={label_format!r} is not one of {LABEL_FORMATS}.")
    return [
        spec
        for spec in SELECTORS.values()
        if (needs is None or spec.needs == needs)
        and (label_format is None or label_format in spec.label_formats)
    ]
