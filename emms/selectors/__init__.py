"""Transferability selectors: EMMS, LogME and every baseline, one registry.

``SELECTORS[name]`` (:mod:`emms.selectors.registry`) is the only list of selector names;
:mod:`emms` re-exports the functions.
"""

from .registry import SELECTORS, SelectorSpec, selectors_for

__all__ = ["SELECTORS", "SelectorSpec", "selectors_for"]
