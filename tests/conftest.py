"""Shared fixtures. Nothing in the test suite may reach the network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def generative_problem(n=400, d=12, width=6, noise=(0.2, 1.0, 3.0), feature_noise=0.0, seed=0):
    """The paper's model (§3.2): z = W^T x + e, F-label k = z + e_k with std noise[k].

    Returns features (N, D) and F-labels (N, L, K); ``feature_noise`` corrupts the
    features the selector sees (a worse model of the same data)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    z = x @ rng.normal(size=(d, width)) + 0.1 * rng.normal(size=(n, width))
    f_labels = np.stack([z + s * rng.normal(size=z.shape) for s in noise], axis=2)
    observed = x + feature_noise * rng.normal(size=x.shape)
    return observed, f_labels


@pytest.fixture
def problem():
    return generative_problem()
