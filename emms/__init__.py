"""EMMS: Foundation Model is Efficient Multimodal Multitask Model Selector (NeurIPS 2023).

Arrays in, numbers out::

    import emms
    result = emms.emms(features, label_embeddings)      # (N, D), (N, L, K)
    result.score, result.weights                        # float, (K,) on the simplex
    emms.logme(features, labels)                        # classification LogME
    emms.logme_flabel(features, label_embeddings)       # LogME on the F-labels
    emms.weighted_tau(scores, truth)                    # the paper's evaluation
    emms.SELECTORS["leep"](source_probs, labels)        # every baseline, by name
"""

from ._validation import HighDimensionWarning, InputError
from .evaluation import (
    Estimate,
    evaluate_ranking,
    kendall_tau,
    pearson,
    rel_at_k,
    weighted_tau,
)
from .selectors.baselines import (
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
from .selectors.emms_selector import EMMSResult, emms, emms_zoo
from .selectors.logme import logme, logme_evidence, logme_flabel, logme_flabel_zoo
from .selectors.registry import SELECTORS, SelectorSpec
from .selectors.streaming import emms_streaming

__version__ = "0.1.0"

__all__ = [
    "SELECTORS",
    "SelectorSpec",
    "gbc",
    "hscore",
    "leep",
    "nce",
    "nleep",
    "pactran",
    "parc",
    "sfda",
    "transrate",
    "transrate_flabel",
    "EMMSResult",
    "Estimate",
    "HighDimensionWarning",
    "InputError",
    "emms",
    "emms_zoo",
    "emms_streaming",
    "evaluate_ranking",
    "kendall_tau",
    "logme",
    "logme_evidence",
    "logme_flabel",
    "logme_flabel_zoo",
    "pearson",
    "rel_at_k",
    "weighted_tau",
]
