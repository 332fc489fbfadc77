"""Parallel kernels give the same bytes with 1 and 2 Numba threads.

Inputs are above PARALLEL_MIN_SIZE, so the public kernels take their parallel variant;
BLAS threads are held at 1 for the session (tests/conftest.py), so GEMM bits are fixed
too. The serial and parallel variants of the batch reductions are also compared with
each other: a reduction split by thread would differ there first.
"""
import importlib
import os
import pkgutil

import numba
import numpy as np
import pytest

import kernels
from kernels import _reduce, augment, batchnorm, dense, dropout, losses
from thread_counts import assert_same_bits_1_and_2_threads
from thread_counts import bits

N, K, M = 1100, 48, 64  # (N, M) outputs: 70400 >= PARALLEL_MIN_SIZE; N % BLOCK_ROWS = 12

#: Every parallel variant in kernels/ and the public kernel whose test covers it here.
PARALLEL_VARIANTS = {
    "_momentum_parallel": "momentum_step",
    "_rmsprop_parallel": "rmsprop_step",
    "_adam_parallel": "adam_step",
    "_column_sums_parallel": "column_sums",
    "_forward_parallel": "activation_forward",
    "_backward_parallel": "activation_backward",
    "_bias_act_parallel": "dense_forward",
    "_grad_parallel": "dense_backward",
    "_softmax_ce_parallel": "softmax_cross_entropy",
    "_bce_parallel": "sigmoid_binary_cross_entropy",
    "_mse_parallel": "mean_squared_error",
    "_softmax_parallel": "softmax",
    "_sgd_parallel": "sgd_step",
    "_bn_train_parallel": "batchnorm_forward_train",
    "_bn_infer_parallel": "batchnorm_forward_infer",
    "_bn_backward_parallel": "batchnorm_backward",
    "_dropout_forward_parallel": "dropout_forward",
    "_dropout_backward_parallel": "dropout_backward",
    "_gaussian_noise_parallel": "add_gaussian_noise",
    "_shift_flip_parallel": "shift_flip_images",
}

#: Parallel variants whose thread-count test lives in another file (named here).
COVERED_ELSEWHERE = {"_gemm_avx512_parallel": "test_bf16.py",
                     "_csr_forward_parallel": "test_sparse.py",
                     "_weight_grad_parallel": "test_sparse.py",
                     "_zero_rows_parallel": "test_sparse.py"}


def test_every_parallel_variant_is_covered():
    found = set()
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"kernels.{info.name}")
        for name, obj in vars(module).items():
            if getattr(obj, "targetoptions", {}).get("parallel"):
                found.add(name)
    elsewhere = {name for name in found if name in COVERED_ELSEWHERE}
    assert found - elsewhere == set(PARALLEL_VARIANTS)
    source = open(__file__).read()
    for kernel in PARALLEL_VARIANTS.values():
        assert f"def test_{kernel}_same_bits_any_thread_count(" in source
    for name in elsewhere:
        other = os.path.join(os.path.dirname(__file__), COVERED_ELSEWHERE[name])
        assert name in open(other).read(), name


def test_shape_is_parallel():
    assert N * M >= kernels.PARALLEL_MIN_SIZE and N % kernels.BLOCK_ROWS != 0


def _nan(shape, dtype=np.float64):
    return np.full(shape, np.nan, dtype)


@pytest.fixture
def data(dtype):
    """Inputs for every kernel, of parallel size, in dtype (seeded)."""
    rng = np.random.default_rng(0)
    d = dict(
        X=rng.standard_normal((N, K)).astype(dtype),
        W=(rng.standard_normal((K, M)) / np.sqrt(K)).astype(dtype),
        b=rng.standard_normal(M).astype(dtype),
        Z=(3.0 * rng.standard_normal((N, M))).astype(dtype),
        dA=(rng.standard_normal((N, M)) / np.sqrt(N)).astype(dtype),
        Y=rng.random((N, M)).astype(dtype),
        y=rng.integers(0, M, N),
        params=rng.standard_normal(N * M).astype(dtype),
    )
    d["A"] = np.tanh(d["Z"])
    return d


# --- public kernels, 1 vs 2 threads -------------------------------------------------------

def test_column_sums_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        scratch, out = _nan((kernels.n_blocks(N), M)), _nan(M, dtype)
        kernels.column_sums(data["Z"], scratch, out, parallel)
        return scratch, out
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_activation_forward_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        A = _nan((N, M), dtype)
        kernels.activation_forward(data["Z"], kernels.ACT_SIGMOID, A, parallel)
        return (A,)
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_activation_backward_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        dZ = _nan((N, M), dtype)
        kernels.activation_backward(data["Z"], data["A"], data["dA"], kernels.ACT_TANH, dZ,
                                    parallel)
        return (dZ,)
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_dense_forward_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        Z, A = _nan((N, M), dtype), _nan((N, M), dtype)
        kernels.dense_forward(data["X"], data["W"], data["b"], kernels.ACT_TANH, Z, A, parallel)
        return Z, A
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_dense_backward_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        dZ, dW, db, dX = _nan((N, M), dtype), _nan((K, M), dtype), _nan(M, dtype), \
            _nan((N, K), dtype)
        scratch = _nan((kernels.n_blocks(N), M))
        cost = kernels.dense_backward(data["X"], data["W"], data["Z"], data["A"], data["dA"],
                                      kernels.ACT_TANH, 30.0, 10.0, dZ, dW, db, dX, scratch,
                                      parallel)
        return dZ, dW, db, dX, scratch, cost
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_softmax_cross_entropy_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        dZ, row_loss = _nan((N, M), dtype), _nan(N)
        loss = kernels.softmax_cross_entropy(data["Z"], data["y"], dZ, row_loss, parallel)
        return dZ, row_loss, loss
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_sigmoid_binary_cross_entropy_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        dZ, row_loss = _nan((N, M), dtype), _nan(N)
        loss = kernels.sigmoid_binary_cross_entropy(data["Z"], data["Y"], dZ, row_loss,
                                                    parallel)
        return dZ, row_loss, loss
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_mean_squared_error_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        dA, row_loss = _nan((N, M), dtype), _nan(N)
        loss = kernels.mean_squared_error(data["Z"], data["Y"], dA, row_loss, parallel)
        return dA, row_loss, loss
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_softmax_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        P = _nan((N, M), dtype)
        kernels.softmax(data["Z"], P, parallel)
        return (P,)
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_sgd_step_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        params = data["params"].copy()
        kernels.sgd_step(params, data["params"][::-1].copy(), 0.1, parallel)
        return (params,)
    assert_same_bits_1_and_2_threads(at_threads, call)


# --- serial vs parallel variants of the batch reductions ------------------------------------

def _serial_vs_parallel(at_threads, serial, parallel):
    """serial() and parallel() (the latter with 2 threads if there are 2) give the same bytes."""
    threads = min(2, numba.config.NUMBA_NUM_THREADS)
    s = serial()
    p = at_threads(threads, parallel)
    for r in s:
        assert not np.isnan(np.asarray(r, dtype=np.float64)).any()
    assert bits(s) == bits(p)


def test_column_sums_serial_and_parallel_samebits(at_threads, data, dtype):
    def run(variant):
        def call():
            scratch, out = _nan((kernels.n_blocks(N), M)), _nan(M, dtype)
            variant(data["Z"], scratch, out)
            return scratch, out
        return call
    _serial_vs_parallel(at_threads, run(_reduce._column_sums_serial),
                        run(_reduce._column_sums_parallel))


def test_dense_backward_db_serial_and_parallel_samebits(at_threads, data, dtype):
    def run(variant):
        def call():
            dZ, db = _nan((N, M), dtype), _nan(M, dtype)
            scratch = _nan((kernels.n_blocks(N), M))
            variant(data["Z"], data["A"], data["dA"], kernels.ACT_TANH, dZ, scratch, True)
            _reduce.fold_blocks(scratch, db)
            return dZ, scratch, db
        return call
    _serial_vs_parallel(at_threads, run(dense._grad_serial), run(dense._grad_parallel))


@pytest.mark.parametrize("name, target", [("_softmax_ce", "y"), ("_bce", "Y"), ("_mse", "Y")])
def test_losses_serial_and_parallel_samebits(at_threads, data, dtype, name, target):
    def run(variant):
        def call():
            dZ, row_loss = _nan((N, M), dtype), _nan(N)
            variant(data["Z"], data[target], dZ, row_loss)
            return dZ, row_loss, kernels.ordered_sum(row_loss)
        return call
    _serial_vs_parallel(at_threads, run(getattr(losses, name + "_serial")),
                        run(getattr(losses, name + "_parallel")))


# --- batch normalization and dropout ---------------------------------------------------------

def _bn_train_call(data, dtype, variant=None):
    def call(parallel=True):
        rm, rv = data["b"].copy(), np.abs(data["b"]) + dtype(0.5)
        mean, inv_std, A = _nan(M), _nan(M), _nan((N, M), dtype)
        args = (data["Z"], data["b"], data["b"][::-1].copy(), rm, rv, 0.9, 1e-5,
                kernels.ACT_TANH, mean, inv_std, A,
                _nan((batchnorm.batchnorm_scratch_rows(N), M)))
        if variant is None:
            kernels.batchnorm_forward_train(*args, parallel)
        else:
            variant(*args)
        return rm, rv, mean, inv_std, A
    return call


def _bn_backward_call(data, dtype, variant=None):
    def call(parallel=True):
        rm, rv, mean, inv_std, A = _bn_train_call(data, dtype)()
        dZ, dgamma, dbeta = _nan((N, M), dtype), _nan(M, dtype), _nan(M, dtype)
        scratch = _nan((batchnorm.batchnorm_scratch_rows(N), M))
        args = (data["Z"], A, data["dA"], data["b"], data["b"][::-1].copy(), mean, inv_std,
                kernels.ACT_TANH, dZ, dgamma, dbeta, scratch)
        if variant is None:
            kernels.batchnorm_backward(*args, parallel)
        else:
            variant(*args)
        return dZ, dgamma, dbeta
    return call


def test_batchnorm_forward_train_same_bits_any_thread_count(at_threads, data, dtype):
    assert_same_bits_1_and_2_threads(at_threads, _bn_train_call(data, dtype))


def test_batchnorm_forward_infer_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        inv_std, A = _nan(M), _nan((N, M), dtype)
        kernels.batchnorm_forward_infer(data["Z"], data["b"], data["b"], data["b"],
                                        np.abs(data["b"]), 1e-5, kernels.ACT_RELU, inv_std, A,
                                        parallel)
        return inv_std, A
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_batchnorm_backward_same_bits_any_thread_count(at_threads, data, dtype):
    assert_same_bits_1_and_2_threads(at_threads, _bn_backward_call(data, dtype))


def test_dropout_forward_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        mask, out = np.zeros((N, M), np.bool_), _nan((N, M), dtype)
        kernels.dropout_forward(data["Z"], 0.7, 99, 12, mask, out, parallel)
        return mask, out
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_dropout_backward_same_bits_any_thread_count(at_threads, data, dtype):
    def call(parallel=True):
        mask = data["Y"] < 0.6
        dX = _nan((N, M), dtype)
        kernels.dropout_backward(data["dA"], mask, 0.6, dX, parallel)
        return (dX,)
    assert_same_bits_1_and_2_threads(at_threads, call)


def test_batchnorm_serial_and_parallel_samebits(at_threads, data, dtype):
    """Each column is summed in row order in both variants: identical bytes."""
    _serial_vs_parallel(at_threads, _bn_train_call(data, dtype, batchnorm._bn_train_serial),
                        _bn_train_call(data, dtype, batchnorm._bn_train_parallel))
    _serial_vs_parallel(at_threads,
                        _bn_backward_call(data, dtype, batchnorm._bn_backward_serial),
                        _bn_backward_call(data, dtype, batchnorm._bn_backward_parallel))


def test_dropout_serial_and_parallel_samebits(at_threads, data, dtype):
    def run(variant):
        def call():
            mask, out = np.zeros((N, M), np.bool_), _nan((N, M), dtype)
            variant(data["Z"], 0.7, 99, 12, mask, out)
            return mask, out
        return call
    _serial_vs_parallel(at_threads, run(dropout._dropout_forward_serial),
                        run(dropout._dropout_forward_parallel))


# --- momentum, RMSprop, Adam ----------------------------------------------------------------

def _optim_call(name, data, dtype):
    def call(parallel=True):
        params, grads = data["params"].copy(), data["params"][::-1].copy()
        state = [np.abs(data["params"]) * dtype(0.5) for _ in range(2)]
        for t in (1, 2, 3):
            if name == "momentum":
                kernels.momentum_step(params, grads, state[0], 0.05, 0.9, parallel)
            elif name == "rmsprop":
                kernels.rmsprop_step(params, grads, state[0], 0.01, 0.9, 1e-8, parallel)
            else:
                kernels.adam_step(params, grads, state[0], state[1], 0.01, 0.9, 0.999, 1e-8,
                                  1 - 0.9 ** t, (1 - 0.999 ** t) ** 0.5, parallel)
        return params, state[0], state[1]
    return call


def test_momentum_step_same_bits_any_thread_count(at_threads, data, dtype):
    assert_same_bits_1_and_2_threads(at_threads, _optim_call("momentum", data, dtype))


def test_rmsprop_step_same_bits_any_thread_count(at_threads, data, dtype):
    assert_same_bits_1_and_2_threads(at_threads, _optim_call("rmsprop", data, dtype))


def test_adam_step_same_bits_any_thread_count(at_threads, data, dtype):
    assert_same_bits_1_and_2_threads(at_threads, _optim_call("adam", data, dtype))


# --- augmentation ---------------------------------------------------------------------------

def _noise_call(data, variant=None):
    def call(parallel=True):
        out = _nan((N, M), data["Z"].dtype)
        if variant is None:
            kernels.add_gaussian_noise(data["Z"], 0.3, 99, 2**32 + 12, out, parallel)
        else:
            variant(data["Z"], 0.3, 99, 2**32 + 12, out)
        return (out,)
    return call


def _shift_flip_call(data, variant=None):
    def call(parallel=True):  # (N, M) = (N, 8 * 8): one-channel 8x8 images
        out = _nan((N, M), data["Z"].dtype)
        if variant is None:
            kernels.shift_flip_images(data["Z"], 1, 8, 8, 2, True, 99, 12, out, parallel)
        else:
            variant(data["Z"], 1, 8, 8, 2, True, 99, 12, out)
        return (out,)
    return call


def test_add_gaussian_noise_same_bits_any_thread_count(at_threads, data):
    assert_same_bits_1_and_2_threads(at_threads, _noise_call(data))


def test_shift_flip_images_same_bits_any_thread_count(at_threads, data):
    assert_same_bits_1_and_2_threads(at_threads, _shift_flip_call(data))


def test_augment_serial_and_parallel_samebits(at_threads, data):
    _serial_vs_parallel(at_threads, _noise_call(data, augment._gaussian_noise_serial),
                        _noise_call(data, augment._gaussian_noise_parallel))
    _serial_vs_parallel(at_threads, _shift_flip_call(data, augment._shift_flip_serial),
                        _shift_flip_call(data, augment._shift_flip_parallel))
