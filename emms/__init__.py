"""EMMS: Foundation Model is Efficient Multimodal Multitask Model Selector (NeurIPS 2023).

Arrays in, numbers out::

    import emms
    result = emms.emms(features, label_embeddings)      # (N, D), (N, L, K)
    result.score, result.weights                        # float, (K,) on the simplex
    emms.emms_evidence(features, label_embeddings)      # ridge by max evidence (D >= N ok)
    emms.logme(features, labels)                        # classification LogME
    emms.logme_flabel(features, label_embeddings)       # LogME on the F-labels
    emms.weighted_tau(scores, truth)                    # the paper's evaluation
    emms.paired_tau_difference(a, b, truth)             # A vs B, paired bootstrap
    emms.SELECTORS["leep"](source_probs, labels)        # every baseline, by name
"""

from ._validation import HighDimensionWarning, InputError
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
from .evaluation import (
    Estimate,
    PairedDifference,
    WinSummary,
    align_scores_and_truth,
    evaluate_ranking,
    kendall_tau,
    paired_tau_difference,
    pearson,
    rel_at_k,
    summarise_wins,
    weighted_tau,
)
from .selectors.logme import logme, logme_evidence, logme_flabel
from .selectors.registry import SELECTORS, SelectorSpec
from .selectors.emms_selector import EMMSResult, emms
from .selectors.emms_evidence import EMMSEvidenceResult, emms_evidence

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
    "EMMSEvidenceResult",
    "Estimate",
    "PairedDifference",
    "WinSummary",
    "align_scores_and_truth",
    "paired_tau_difference",
    "summarise_wins",
    "HighDimensionWarning",
    "InputError",
    "emms",
    "emms_evidence",
    "evaluate_ranking",
    "kendall_tau",
    "logme",
    "logme_evidence",
    "logme_flabel",
    "pearson",
    "rel_at_k",
    "weighted_tau",
]
