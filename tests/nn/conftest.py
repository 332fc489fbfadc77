"""Fixtures of the API tests: small seeded data sets.

Helpers are fixtures (factories) rather than importable functions: with several
conftest.py files and no __init__.py, ``import conftest`` would pick whichever
conftest pytest loaded last.
"""
import numpy as np
import pytest


def _blobs(n=60, n_features=3, n_classes=3, seed=0, spread=0.3, dtype=np.float64):
    """Gaussian clusters around well separated centres, classes balanced and interleaved."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((n_classes, n_features))
    # push the centres apart so the classes are separable by a small network
    centres += 3.0 * np.eye(n_classes, n_features)
    y = np.arange(n) % n_classes
    X = centres[y] + spread * rng.standard_normal((n, n_features))
    return X.astype(dtype), y.astype(np.int64)


@pytest.fixture
def make_blobs():
    """``make_blobs(n=60, n_features=3, n_classes=3, seed=0, spread=0.3, dtype=float64)``
    -> (X, y): a separable classification problem with integer labels."""
    return _blobs


@pytest.fixture
def blobs():
    """60 rows, 3 features, 3 separable classes (float64 X, int64 y)."""
    return _blobs()
