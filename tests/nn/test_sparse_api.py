"""Sparse X (scipy.sparse) in fit, predict and evaluate: the same results as the dense X
(to float32 or float64 rounding: GEMM against row sums), the same checks, no dense copy.
"""
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import kernels
import nn
from nn import _sparse, training

#: Dense vs sparse runs differ by summation order only (BLAS GEMM against row sums),
#: compounded over the steps of a short fit.
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _data(n=300, k=120, density=0.05, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, k, density=density, format="csr", random_state=rng,
                  data_rvs=lambda size: rng.uniform(0.2, 1.5, size))
    X = X.tolil()
    X[5] = 0           # an empty row
    X = X.tocsr()
    X.eliminate_zeros()
    # labels that depend on the features, so training moves the loss
    y = (np.asarray(X[:, :classes].argmax(axis=1)).ravel() + (X.getnnz(axis=1) % 2)) % classes
    return X.tocsr(), y


CONFIGS = {
    "adam-dropout": (lambda k: [nn.Dense(k, 32, activation="relu"), nn.Dropout(0.8),
                                nn.Dense(32, 4)], lambda: nn.Adam(lr=1e-2), {}),
    "rmsprop-batchnorm-l2-l1": (
        lambda k: [nn.Dense(k, 32, use_bias=False), nn.BatchNorm(32), nn.Activation("tanh"),
                   nn.Dense(32, 4)], lambda: nn.RMSprop(lr=1e-3), {"l2": 0.1, "l1": 0.01}),
    "momentum-weights": (lambda k: [nn.Dense(k, 16, activation="sigmoid"), nn.Dense(16, 4)],
                         lambda: nn.Momentum(lr=0.1),
                         {"sample_weight": True, "class_weight": "balanced"}),
    "sgd-noshuffle": (lambda k: [nn.Dense(k, 8, activation="leaky_relu"), nn.Dense(8, 4)],
                      lambda: nn.SGD(lr=0.1), {"shuffle": False}),
}


def _fit(X, y, config, dtype, validation=True, **extra):
    layers, optimizer, kwargs = CONFIGS[config]
    model = nn.Sequential(layers(X.shape[1]), dtype=dtype, seed=0)
    kwargs = dict(kwargs)
    if kwargs.get("sample_weight") is True:
        kwargs["sample_weight"] = np.linspace(0.5, 1.5, X.shape[0])
    if validation:
        kwargs["validation_data"] = (X[:60], y[:60])
    history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=optimizer(),
                        epochs=3, batch_size=64, verbose=0, **{**kwargs, **extra})
    return model, history


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_predict_evaluate_match_dense(config, dtype):
    X, y = _data()
    dense_model, dense_history = _fit(X.toarray(), y, config, dtype)
    model, history = _fit(X, y, config, dtype)
    for key in ("loss", "accuracy", "dev_loss", "dev_accuracy"):
        assert_allclose(history[key], dense_history[key], **TOL[dtype])
    assert_allclose(model.params, dense_model.params, **TOL[dtype])
    assert_allclose(model.buffers, dense_model.buffers, **TOL[dtype])
    assert_allclose(model.predict(X), dense_model.predict(X.toarray()), **TOL[dtype])
    assert_array_equal(model.predict_classes(X, batch_size=7),
                       dense_model.predict_classes(X.toarray()))
    got, want = model.evaluate(X, y), dense_model.evaluate(X.toarray(), y)
    assert got.keys() == want.keys()
    assert_allclose([got[k] for k in got], [want[k] for k in got], **TOL[dtype])
    assert_allclose(history.final["loss"], dense_history.final["loss"], **TOL[dtype])


def test_other_formats_dtypes_and_messy_indices_give_the_same_bits():
    """CSC, COO, float64 or integer data into a float32 model, and a CSR with unsorted
    and repeated column indices: each converted once to the same canonical CSR."""
    X, y = _data()
    X = X.astype(np.float32)
    messy = X.copy().tocoo()
    rows, cols, vals = messy.row, messy.col, messy.data
    half = vals / 2
    messy = sp.csr_matrix((np.concatenate([half, vals - half])[::-1],
                           (np.concatenate([rows, rows])[::-1],
                            np.concatenate([cols, cols])[::-1])), shape=X.shape)
    messy.has_canonical_format = False
    messy_before = (messy.indptr.copy(), messy.indices.copy(), messy.data.copy())
    runs = {}
    for name, Xin in {"csr": X, "csc": X.tocsc(), "coo": X.tocoo(),
                      "float64": X.astype(np.float64), "csr_array": sp.csr_array(X),
                      "messy": messy}.items():
        model, history = _fit(Xin, y, "adam-dropout", np.float32, validation=False)
        runs[name] = (model.params.tobytes(), history["loss"], model.predict(Xin).tobytes())
    assert all(run == runs["csr"] for run in runs.values()), \
        [name for name, run in runs.items() if run != runs["csr"]]
    # the caller's matrix is left as it was
    for before, after in zip(messy_before, (messy.indptr, messy.indices, messy.data)):
        assert_array_equal(before, after)
    ints = sp.csr_matrix((np.ones(X.nnz, np.int64), X.indices, X.indptr), shape=X.shape)
    model, _ = _fit(ints, y, "adam-dropout", np.float32, validation=False)
    same, _ = _fit(sp.csr_matrix((np.ones(X.nnz, np.float32), X.indices, X.indptr),
                                 shape=X.shape), y, "adam-dropout", np.float32,
                   validation=False)
    assert model.params.tobytes() == same.params.tobytes()


@pytest.mark.parametrize("use_plan", [True, False])
def test_dense_and_sparse_fits_in_turn_leave_no_stale_gradient(use_plan, monkeypatch):
    """Each fit gives the bytes it gives on a fresh copy of the model (zero gradients)
    with the same weights and optimizer state: a sparse fit after a dense one (whose dW
    is nonzero on every row) clears it first, and a dense fit after a sparse one is the
    dense fit."""
    import copy
    monkeypatch.setattr(training, "USE_PLAN", use_plan)
    X, y = _data()
    model, _ = _fit(X, y, "adam-dropout", np.float64, validation=False)
    optimizer = nn.Adam(lr=1e-2)
    for Xin in (X.toarray(), X, X.toarray(), X):
        fresh, fresh_optimizer = model.copy(), copy.deepcopy(optimizer)
        assert not fresh.grads.any()
        for m, opt in ((model, optimizer), (fresh, fresh_optimizer)):
            m.fit(Xin, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=1,
                  batch_size=64, verbose=0)
        assert model.params.tobytes() == fresh.params.tobytes()
        assert model.grads.any()


def test_forward_backward_by_hand_match_dense():
    X, y = _data(n=50)
    for dtype in (np.float32, np.float64):
        sparse_model = nn.Sequential(CONFIGS["adam-dropout"][0](X.shape[1])[::2],
                                     dtype=dtype, seed=1)
        dense_model = sparse_model.copy()
        out = sparse_model.forward(X, training=True)
        dout = np.ones_like(out) / out.size
        sparse_model.grads[:] = np.nan    # backward writes every gradient
        sparse_model.backward(dout, l2=0.3)
        dense_out = dense_model.forward(X.toarray(), training=True)
        dense_model.backward(dout, l2=0.3)
        assert_allclose(out, dense_out, **TOL[dtype])
        assert_allclose(sparse_model.grads, dense_model.grads, **TOL[dtype])
        out = sparse_model.forward(X[:3], training=True)   # fewer rows, then no penalty
        sparse_model.backward(np.ones_like(out))
        dense_model.forward(X[:3].toarray(), training=True)
        dense_model.backward(np.ones_like(out))
        assert_allclose(sparse_model.grads, dense_model.grads, **TOL[dtype])


def test_gradient_check_takes_sparse_X():
    X, y = _data(n=12, k=20, density=0.2)
    model = nn.Sequential([nn.Dense(20, 6, activation="tanh"), nn.Dense(6, 4)], seed=0)
    error = nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy(), l2=0.1)
    dense = nn.gradient_check(model, X.toarray(), y, loss=nn.SoftmaxCrossEntropy(), l2=0.1)
    assert error < 1e-7 and dense < 1e-7


def test_early_stopping_callbacks_and_sparse_dev_data():
    X, y = _data()
    model = nn.Sequential(CONFIGS["adam-dropout"][0](X.shape[1]), seed=0)
    stop = nn.EarlyStopping(patience=1, restore_best=True, min_delta=10.0)
    history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=1e-2),
                        epochs=6, batch_size=32, verbose=0, validation_data=(X[:50], y[:50]),
                        callbacks=[stop])
    assert history.stopped_epoch is not None and len(history["dev_loss"]) < 6
    dense_dev = model.evaluate(X[:50].toarray(), y[:50])
    assert_allclose(model.evaluate(X[:50], y[:50])["loss"], dense_dev["loss"], rtol=1e-5)


def test_same_bits_for_one_and_two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core")
    rng = np.random.default_rng(0)
    # 600 rows x 4000 features, 512-row batches x 200 units: the kernels' parallel builds
    X = sp.random(600, 4000, density=0.02, format="csr", random_state=rng, dtype=np.float32)
    y = rng.integers(0, 5, 600)
    assert 512 * 200 >= kernels.PARALLEL_MIN_SIZE
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            model = nn.Sequential([nn.Dense(4000, 200, activation="relu"), nn.Dropout(0.9),
                                   nn.Dense(200, 5)], seed=0)
            history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(),
                                epochs=2, batch_size=512, verbose=0)
            runs.append((model.params.tobytes(), history["loss"],
                         model.predict(X).tobytes()))
    finally:
        numba.set_num_threads(before)
    assert runs[0] == runs[1]


# -- checks ------------------------------------------------------------------------------

def test_batch_buffers_fit_the_longest_rows():
    X, _ = _data()
    lengths = np.sort(X.getnnz(axis=1))[::-1]
    assert _sparse.max_batch_nonzeros(X.indptr, 37) == lengths[:37].sum()
    assert _sparse.max_batch_nonzeros(X.indptr, 10_000) == X.nnz


def _model(k=120):
    model = nn.Sequential([nn.Dense(k, 8, activation="relu"), nn.Dense(8, 3)], seed=0)
    model.loss = nn.SoftmaxCrossEntropy()
    return model


@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
def test_bad_sparse_inputs_are_refused_with_the_dense_messages(call):
    model = _model()
    y = np.zeros(4, np.int64)

    def run(X):
        if call == "fit":
            return model.fit(X, y[:X.shape[0]], epochs=1, verbose=0)
        if call == "predict":
            return model.predict(X)
        return model.evaluate(X, y[:X.shape[0]])

    nan = sp.random(4, 120, density=0.1, format="csr", random_state=0)
    nan.data[0] = np.nan
    with pytest.raises(ValueError, match=f"Sequential.{call}: X contains NaN or infinite"):
        run(nan)
    with pytest.raises(ValueError, match="X must have 120 columns .*got shape \\(4, 7\\)"):
        run(sp.random(4, 7, density=0.5, format="csr", random_state=0))
    with pytest.raises(ValueError, match="X is empty; got shape \\(0, 120\\)"):
        run(sp.csr_matrix((0, 120)))
    with pytest.raises(TypeError, match="X must be real; got a sparse"):
        run(sp.random(4, 120, density=0.1, format="csr", random_state=0) * 1j)
    with pytest.raises(ValueError, match="X must be 2-D; got a sparse coo_array of shape"):
        run(sp.coo_array(np.ones(120)))
    huge = sp.random(4, 120, density=0.1, format="csr", random_state=0) * 1e300
    with pytest.raises(ValueError, match="too large for float32"):
        run(huge)


def test_sparse_needs_a_dense_first_layer_no_standardizer_no_augment():
    X, y = _data(n=40, classes=3)
    model = nn.Sequential([nn.Dropout(0.5), nn.Dense(120, 3)], seed=0)
    with pytest.raises(ValueError, match="first layer is nn.Dense; got Dropout"):
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=1, verbose=0)
    model = _model()
    model.standardizer = nn.data.Standardizer().fit(X.toarray())
    with pytest.raises(ValueError, match="X is sparse and the model has a standardizer"):
        model.predict(X)
    model.standardizer = None
    with pytest.raises(ValueError, match="augment works on dense rows; X is sparse"):
        model.fit(X, y, epochs=1, verbose=0, augment=nn.Augment(noise=0.1))
    with pytest.raises(ValueError, match="X_dev is sparse and the model has a standardiz"):
        model.standardizer = nn.data.Standardizer().fit(X.toarray())
        model.fit(X.toarray(), y, epochs=1, verbose=0, validation_data=(X, y))


# -- memory ------------------------------------------------------------------------------

def test_no_dense_copy_of_X_and_steps_allocate_nothing(allocations):
    """20,000 rows x 50,000 features: a dense float32 copy would take 4 GB; fit,
    predict and evaluate stay under 10 MB above where they started (the model's
    buffers, its optimizer state and copies, and the batches are a few MB), and a step
    after the first makes no NumPy array."""
    rng = np.random.default_rng(0)
    n, k = 20_000, 50_000
    X = sp.random(n, k, density=10 / k, format="csr", random_state=rng, dtype=np.float32)
    y = rng.integers(0, 3, n)
    model = nn.Sequential([nn.Dense(k, 4, activation="relu"), nn.Dense(4, 3)], seed=0)
    optimizer = nn.Adam(lr=1e-3)
    dense_bytes = n * k * 4
    model.fit(X[:2048], y[:2048], loss=nn.SoftmaxCrossEntropy(), optimizer=optimizer,
              epochs=1, batch_size=1024, verbose=0)   # compiled, state made
    steps = allocations.per_step(1e-3)
    with allocations.measure() as seen:
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=1,
                  batch_size=1024, verbose=0, schedule=steps, validation_data=(X, y))
        model.predict(X)
        model.evaluate(X, y)
    assert seen.peak < 10e6 and 10e6 < dense_bytes / 100, seen
    assert seen.nrt_allocs == 0, seen
    # each step but the first two (batch-sized views made once) and the last, shorter one
    per_step = [(s, peak) for s, peak, _ in steps.steps[2:-1] if peak >= 5120]
    assert not per_step, per_step
