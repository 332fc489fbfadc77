"""A whole fit gives the same bytes with 1 or 2 Numba threads (BLAS held fixed by conftest)."""
import numba
import numpy as np
import pytest

import kernels
import nn


def _train(threads, dtype):
    numba.set_num_threads(threads)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 40))
    y = rng.integers(0, 5, 600)
    # 300 x 256 activations and 12k+ parameters: above PARALLEL_MIN_SIZE, so the
    # parallel variants run.
    model = nn.Sequential([nn.Dense(40, 256, activation="tanh"), nn.Activation("relu"),
                           nn.Dense(256, 5)], dtype=dtype, seed=3)
    assert 300 * 256 >= kernels.PARALLEL_MIN_SIZE
    history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.05),
                        epochs=2, batch_size=300, l2=0.01, validation_data=(X[:100], y[:100]))
    return model.params.tobytes(), history["loss"], history["dev_loss"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_same_bits_any_thread_count(dtype):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: nothing to compare")
    before = numba.get_num_threads()
    try:
        one = _train(1, dtype)
        two = _train(2, dtype)
    finally:
        numba.set_num_threads(before)
    assert one == two
