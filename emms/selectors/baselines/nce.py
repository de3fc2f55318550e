"""NCE: Negative Conditional Entropy (Tran, Nguyen & Hassner, ICCV 2019).

With hard source labels z_i (the source model's argmax on the target data) and target
labels y_i, the empirical joint P(y, z) = #{i: y_i = y, z_i = z} / N gives

    NCE = -H(Y | Z) = sum_{y, z} P(y, z) log( P(y, z) / P(z) )   (<= 0; 0 iff y is a
    function of z on the sample).
"""

from __future__ import annotations

import numpy as np

from emms._validation import InputError, check_labels

__all__ = ["nce"]


def nce(source_labels, labels) -> float:
    """Negative conditional entropy -H(Y | Z) (Tran et al., "Transferability and Hardness
    of Supervised Classification Tasks", ICCV 2019).

    Args:
        source_labels: (N,) hard source-class ids z_i (e.g. argmax of the source head);
            any number of distinct values (one is allowed: then NCE = -H(Y)).
        labels: (N,) target class ids (C >= 2 distinct values).

    Returns:
        NCE = sum_{y,z} P(y, z) log P(y | z) <= 0 (higher is better), in nats.

    Cost: O(N + C Z).
    """
    z_array = np.asarray(source_labels)
    if z_array.ndim == 2 and z_array.shape[1] > 1:
        raise InputError(
            "source_labels must be (N,) hard source-class ids, got shape "
            f"{z_array.shape}; for source probabilities use leep() or take argmax(axis=1)."
        )
    y_ids, y_classes = check_labels(labels, len(z_array))
    z_ids, z_classes = check_labels(source_labels, len(y_ids), name="source_labels", min_classes=1)
    n, n_z = len(y_ids), len(z_classes)
    joint = np.bincount(y_ids * n_z + z_ids, minlength=len(y_classes) * n_z).reshape(-1, n_z)
    joint = joint / n
    marginal = joint.sum(axis=0)
    nonzero = joint > 0
    ratio = joint[nonzero] / np.broadcast_to(marginal, joint.shape)[nonzero]
    return float(np.sum(joint[nonzero] * np.log(ratio)))
