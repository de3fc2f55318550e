"""The transferability selectors the field compares against, implemented from the papers.

Every function takes arrays and returns a float, higher = more transferable, never writes
into its inputs, and is seeded where it is random. Inputs are checked with
:mod:`emms._validation` (bad input raises :class:`emms.InputError` naming the input and
the fix).

=================  ================================  ==========================================
function           inputs                            reference
=================  ================================  ==========================================
leep               source_probs (N, Z), labels       Nguyen et al., ICML 2020
nce                source_labels (N,), labels        Tran et al., ICCV 2019
nleep              features (N, D), labels           Li et al., CVPR 2021
hscore             features, labels                  Bao et al., ICIP 2019; Ibrahim et al.,
                                                     ECML-PKDD 2022 (``shrinkage="ledoit-wolf"``)
transrate          features, labels                  Huang et al., ICML 2022
transrate_flabel   features, label_embeddings        TransRate per value-binned F-label column
sfda               features, labels                  Shao et al., ECCV 2022
gbc                features, labels                  Pandy et al., CVPR 2022
pactran            features, labels                  Ding et al., ECCV 2022
parc               features, labels                  Bolya et al., NeurIPS 2021
=================  ================================  ==========================================

:mod:`emms.registry` lists them (with LogME, LogME on F-labels and EMMS) with what each
needs and which label formats it applies to.
"""

from .gbc import gbc
from .hscore import hscore
from .leep import leep
from .nce import nce
from .nleep import nleep
from .pactran import pactran
from .parc import parc
from .sfda import sfda
from .transrate import transrate, transrate_flabel

__all__ = [
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
]
