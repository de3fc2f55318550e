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

The names below are imported on first use, so a pipeline stage that imports
``emms.stages.zoo`` does not load the selectors (and ``dvc.yaml`` need not list them).
"""

from importlib import import_module

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "HighDimensionWarning": "emms._validation",
    "InputError": "emms._validation",
    "Estimate": "emms.evaluation",
    "PairedDifference": "emms.evaluation",
    "WinSummary": "emms.evaluation",
    "align_scores_and_truth": "emms.evaluation",
    "paired_tau_difference": "emms.evaluation",
    "summarise_wins": "emms.evaluation",
    "evaluate_ranking": "emms.evaluation",
    "kendall_tau": "emms.evaluation",
    "pearson": "emms.evaluation",
    "rel_at_k": "emms.evaluation",
    "weighted_tau": "emms.evaluation",
    "logme": "emms.selectors.logme",
    "logme_evidence": "emms.selectors.logme",
    "logme_flabel": "emms.selectors.logme",
    "SELECTORS": "emms.selectors.registry",
    "SelectorSpec": "emms.selectors.registry",
    "EMMSResult": "emms.selectors.emms_selector",
    "emms": "emms.selectors.emms_selector",
    "emms_zoo": "emms.selectors.emms_selector",
    "emms_streaming": "emms.selectors.streaming",
    "logme_flabel_zoo": "emms.selectors.logme",
    "EMMSEvidenceResult": "emms.selectors.emms_evidence",
    "emms_evidence": "emms.selectors.emms_evidence",
}

_BASELINES = "emms.selectors.baselines"  # its __all__ lists the baseline functions


def __getattr__(name):
    if name == "__all__":
        return sorted([*_EXPORTS, *import_module(_BASELINES).__all__])
    module = _EXPORTS.get(name)
    if module is None and name in import_module(_BASELINES).__all__:
        module = _BASELINES
    if module is None:
        raise AttributeError(f"module 'emms' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))
