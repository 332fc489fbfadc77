"""Hostile input: random shapes, dtypes, layouts, values and hyperparameters through the
public API. Every call either works or raises ValueError/TypeError with a message; a
model that trained holds only finite numbers."""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nn  # noqa: E402

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_,
          np.complex64, object]
SPECIALS = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, 3e38, 0.0]


def mostly(valid, *invalid):
    """A valid value nine times in ten, so that many runs pass validation and reach the
    kernels with the few bad values they draw."""
    return st.integers(0, 9).flatmap(lambda k: valid if k else st.one_of(*invalid))


@st.composite
def arrays(draw, n_features=4):
    rows = draw(mostly(st.integers(2, 12), st.integers(0, 1)))
    cols = draw(mostly(st.just(n_features), st.sampled_from([0, 1, n_features + 1])))
    ndim = draw(mostly(st.just(2), st.sampled_from([1, 3])))
    shape = {1: (rows * max(cols, 1),), 2: (rows, cols), 3: (rows, cols, 2)}[ndim]
    dtype = draw(mostly(st.sampled_from([np.float32, np.float64]), st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1e-30, 1e30, 1e6]))
    a = rng.standard_normal(shape) * scale
    if draw(st.integers(0, 3)) == 0 and a.size:
        flat = a.reshape(-1)
        flat[rng.integers(0, flat.size)] = draw(st.sampled_from(SPECIALS))
    with np.errstate(all="ignore"):
        a = a.astype(dtype) if dtype is not object else a.astype(object)
    layout = draw(st.sampled_from(["c", "f", "strided", "readonly"]))
    if layout == "f":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim == 2 and a.size:
        a = np.repeat(a, 2, axis=1)[:, ::2]
    elif layout == "readonly":
        a.setflags(write=False)
    return a


@st.composite
def labels(draw, n):
    return draw(mostly(st.lists(st.integers(0, 2), min_size=n, max_size=n).map(np.array),
                       st.lists(st.integers(-2, 5), max_size=12).map(np.array),
                       st.lists(st.floats(), max_size=12).map(np.array),
                       st.just(np.array(["a", "b"])), st.just(None)))


hyper = st.fixed_dictionaries({
    "epochs": mostly(st.integers(1, 3), st.integers(-1, 0), st.just(2.5), st.just("2")),
    "batch_size": mostly(st.integers(1, 20), st.integers(-1, 0), st.just(np.int64(4)),
                         st.just(3.0)),
    "l2": mostly(st.floats(0, 10), st.floats(-1, -1e-9), st.just(np.nan), st.just(np.inf)),
    "lr": mostly(st.floats(1e-6, 1e6), st.floats(-1, 0), st.just(np.nan)),
    "keep_prob": mostly(st.floats(0.05, 1.0), st.floats(-0.5, 0), st.floats(1.01, 2),
                        st.just(np.nan)),
    "optimizer": st.sampled_from(["SGD", "Momentum", "RMSprop", "Adam"]),
    "batchnorm": st.booleans(),
})


def _build(h):
    layers = [nn.Dense(4, 6, use_bias=not h["batchnorm"])]
    if h["batchnorm"]:
        layers += [nn.BatchNorm(6), nn.Activation("relu")]
    layers += [nn.Dropout(h["keep_prob"]), nn.Dense(6, 3)]
    return nn.Sequential(layers, seed=0)


def _check_model_finite(model):
    assert np.isfinite(model.params).all() and np.isfinite(model.buffers).all()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=arrays().flatmap(lambda X: st.tuples(st.just(X), labels(len(X)))), h=hyper)
def test_fit_predict_evaluate_work_or_raise_a_clear_error(data, h):
    X, y = data
    try:
        model = _build(h)
        opt = getattr(nn, h["optimizer"])(lr=h["lr"])
    except (ValueError, TypeError) as exc:
        assert str(exc)
        event("bad hyperparameter")
        return
    try:
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=h["epochs"],
                  batch_size=h["batch_size"], l2=h["l2"], verbose=0)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        event(f"fit refused: {type(exc).__name__}")
    else:
        event("fit trained")
    _check_model_finite(model)  # after success or failure alike
    for call in (lambda: model.predict(X), lambda: model.evaluate(X, y),
                 lambda: model.predict_classes(X)):
        try:
            out = call()
        except (ValueError, TypeError) as exc:
            assert str(exc)
        else:
            values = out.values() if isinstance(out, dict) else [out]
            assert all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(X=arrays(), h=hyper)
def test_data_tools_work_or_raise_a_clear_error(X, h):
    for call in (lambda: nn.data.Standardizer().fit(X).transform(X),
                 lambda: nn.data.split(X, np.arange(len(X)), ratios=(0.5, 0.5), seed=0),
                 lambda: nn.Augment(noise=h["lr"], image_shape=(2, 2), max_shift=1)
                 .apply(X, 0, 0, 0)):
        try:
            call()
        except (ValueError, TypeError) as exc:
            assert str(exc)
