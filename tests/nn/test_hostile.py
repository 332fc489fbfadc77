"""Hostile input: random shapes, dtypes, layouts, values and hyperparameters through the
public API. Every call either works or raises ValueError/TypeError whose message names
the function the user called and the argument at fault; an argument drawn from the
table's invalid values is always refused; a model that trained holds only finite
numbers.

Which argument is at fault: for a hyperparameter, the table says (``HYPER``: valid and
invalid values per argument); for arrays and labels, ``bad_array`` and ``bad_labels``
state what the API accepts. A call with several bad arguments may name any of them (the
first it checks). Some errors come from valid arguments together: a divergence (the
message names lr), a BatchNorm model whose batches leave one row (batch_size), an
output that overflows for these weights (X).
"""
import math
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nn  # noqa: E402

N_FEATURES, N_CLASSES = 4, 3
MODEL_DTYPE = np.float32
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_,
          np.complex64, object]
SPECIALS = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, 3e38, 0.0]

#: Per argument: (valid values, invalid values).
HYPER = {
    "epochs": (st.integers(1, 3), st.one_of(st.integers(-1, 0), st.just(2.5), st.just("2"))),
    "batch_size": (st.one_of(st.integers(1, 20), st.just(np.int64(4))),
                   st.one_of(st.integers(-1, 0), st.just(3.0))),
    "l2": (st.floats(0, 10),
           st.one_of(st.floats(-1, -1e-9), st.just(np.nan), st.just(np.inf))),
    "lr": (st.floats(1e-6, 1e6), st.one_of(st.floats(-1, 0), st.just(np.nan))),
    "keep_prob": (st.floats(0.05, 1.0),
                  st.one_of(st.floats(-0.5, 0), st.floats(1.01, 2), st.just(np.nan))),
}


def mostly(valid, *invalid):
    """A valid value nine times in ten, so that many runs pass validation and reach the
    kernels with the few bad values they draw."""
    return st.integers(0, 9).flatmap(lambda k: valid if k else st.one_of(*invalid))


@st.composite
def hyperparameters(draw):
    """(h, bad): the values, and the names of those drawn from the invalid column."""
    h, bad = {}, set()
    for name, (valid, invalid) in HYPER.items():
        is_bad = draw(st.integers(0, 9)) == 0
        h[name] = draw(invalid if is_bad else valid)
        if is_bad:
            bad.add(name)
    h["optimizer"] = draw(st.sampled_from(["SGD", "Momentum", "RMSprop", "Adam"]))
    h["batchnorm"] = draw(st.booleans())
    return h, bad


@st.composite
def arrays(draw, n_features=N_FEATURES):
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


# -- what the API accepts, stated independently of its checks ------------------------

def bad_array(a, n_cols=N_FEATURES, dtype=MODEL_DTYPE):
    """Whether the API refuses ``a`` as X: not real numbers, not 2-D, empty, another
    width (n_cols; None for any), NaN or infinity, or too large for ``dtype`` (None:
    used in its own dtype)."""
    if a.dtype == object or a.dtype.kind not in "biuf":
        return True
    if a.ndim != 2 or a.size == 0 or (n_cols is not None and a.shape[1] != n_cols):
        return True
    with np.errstate(over="ignore"):
        converted = a if dtype is None else a.astype(dtype)
    return a.dtype.kind == "f" and not np.isfinite(converted).all()


def bad_labels(y, n, n_classes=N_CLASSES):
    """Whether the API refuses ``y`` as the class labels of n rows."""
    if y is None or y.dtype == object or y.dtype.kind not in "biuf":
        return True
    if y.ndim != 1 or y.shape[0] != n or n == 0:
        return True
    if y.dtype.kind == "f" and not (np.isfinite(y) & (y == np.round(y))).all():
        return True
    return not (y.min() >= 0 and y.max() < n_classes)


def leaves_one_row(n, batch_size):
    """Whether batches of ``batch_size`` over n rows include one of a single row."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        return False
    if batch_size < 1 or n < 1:
        return False
    bs = min(int(batch_size), n)
    return bs == 1 or n % bs == 1


def may_overflow(model, X):
    """Whether the eval-mode output for (valid) X can overflow the model's dtype: a
    bound on every value through the layers, in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        bound = float(np.abs(X.astype(np.float64)).max())
        for layer in model.layers:
            if isinstance(layer, nn.Dense):
                bias = float(np.abs(layer.b).max()) if layer.b.size else 0.0
                bound = bound * float(np.abs(layer.W).max()) * layer.n_in + bias
            elif isinstance(layer, nn.BatchNorm):
                bound = (float(np.abs(layer.gamma).max())
                         * (bound + float(np.abs(layer.running_mean).max()))
                         / math.sqrt(float(layer.running_var.min()) + layer.eps)
                         + float(np.abs(layer.beta).max()))
    return not bound < 1e38


def assert_names(exc, where, culprits):
    """The message of ``exc`` starts with ``where`` (the function the user called; one
    of a tuple) and names at least one of ``culprits`` (argument names) as a word."""
    message = str(exc)
    wheres = (where,) if isinstance(where, str) else where
    assert message.startswith(tuple(f"{w}:" for w in wheres)), \
        f"{message!r} does not start with {' or '.join(wheres)}"
    named = [c for c in culprits if re.search(rf"(?<![\w.]){re.escape(c)}(?!\w)", message)]
    assert named, f"{message!r} names none of the arguments at fault {sorted(culprits)}"


# -- the tests ------------------------------------------------------------------------

def _build(h):
    layers = [nn.Dense(N_FEATURES, 6, use_bias=not h["batchnorm"])]
    if h["batchnorm"]:
        layers += [nn.BatchNorm(6), nn.Activation("relu")]
    layers += [nn.Dropout(h["keep_prob"]), nn.Dense(6, N_CLASSES)]
    return nn.Sequential(layers, seed=0)


def _check_model_finite(model):
    assert np.isfinite(model.params).all() and np.isfinite(model.buffers).all()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=arrays().flatmap(lambda X: st.tuples(st.just(X), labels(len(X)))),
       drawn=hyperparameters())
def test_fit_predict_evaluate_work_or_raise_a_clear_error(data, drawn):
    X, y = data
    h, bad = drawn
    try:
        model = _build(h)
    except (ValueError, TypeError) as exc:
        assert_names(exc, "Dropout", bad & {"keep_prob"})
        event("bad hyperparameter")
        return
    assert "keep_prob" not in bad, f"Dropout accepted keep_prob={h['keep_prob']!r}"
    try:
        opt = getattr(nn, h["optimizer"])(lr=h["lr"])
    except (ValueError, TypeError) as exc:
        assert_names(exc, h["optimizer"], bad & {"lr"})
        event("bad hyperparameter")
        return
    assert "lr" not in bad, f"{h['optimizer']} accepted lr={h['lr']!r}"

    X_bad = bad_array(X)
    n = np.shape(X)[0] if np.ndim(X) else 0
    wrong = set(bad) | ({"X"} if X_bad else set()) | ({"y"} if bad_labels(y, n) else set())
    try:
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=h["epochs"],
                  batch_size=h["batch_size"], l2=h["l2"], verbose=0)
    except (ValueError, TypeError) as exc:
        culprits = set(wrong)
        if h["batchnorm"] and leaves_one_row(n, h["batch_size"]):
            culprits.add("batch_size")
        if isinstance(exc, nn.DivergenceError):
            culprits.add("lr")  # the message advises a lower learning rate
        if not X_bad and may_overflow(model, X):
            culprits.add("X")
        assert_names(exc, "Sequential.fit", culprits)
        event(f"fit refused: {type(exc).__name__}")
    else:
        assert not wrong, f"fit accepted the invalid {sorted(wrong)}"
        event("fit trained")
    _check_model_finite(model)  # after success or failure alike

    overflow = not X_bad and may_overflow(model, X)
    X_culprits = {"X"} if X_bad or overflow else set()
    y_bad, no_loss = bad_labels(y, n), model.loss is None
    calls = [
        # (the function named in the error, the call, the arguments at fault, whether
        # it must fail)
        ("Sequential.predict", lambda: model.predict(X),
         X_culprits | ({"model.loss"} if no_loss else set()), X_bad or no_loss),
        ("Sequential.evaluate", lambda: model.evaluate(X, y),
         X_culprits | ({"y"} if y_bad else set()) | ({"loss"} if no_loss else set()),
         X_bad or y_bad or no_loss),
        ("Sequential.predict_classes", lambda: model.predict_classes(X), X_culprits,
         X_bad),
    ]
    for where, call, culprits, must_fail in calls:
        try:
            out = call()
        except (ValueError, TypeError) as exc:
            assert_names(exc, where, culprits)
        else:
            assert not must_fail, f"{where} accepted the invalid {sorted(culprits)}"
            values = out.values() if isinstance(out, dict) else [out]
            assert all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(X=arrays(), drawn=hyperparameters())
def test_data_tools_work_or_raise_a_clear_error(X, drawn):
    noise = drawn[0]["lr"]
    X_bad = bad_array(X, n_cols=None, dtype=None)
    batch_ok = (X.ndim == 2 and X.dtype in (np.float32, np.float64)
                and X.flags.c_contiguous and X.shape[1] == N_FEATURES)
    calls = [
        # (the functions the error may name, the call, the arguments at fault, whether
        # it must fail)
        (("Standardizer.fit", "Standardizer.transform"),
         lambda: nn.data.Standardizer().fit(X).transform(X), {"X"}, X_bad),
        ("split", lambda: nn.data.split(X, np.arange(len(X)), ratios=(0.5, 0.5), seed=0),
         {"X", "ratios"}, len(X) < 2),
        ("Augment", lambda: nn.Augment(noise=noise, image_shape=(2, 2), max_shift=1),
         {"noise"}, not noise >= 0),
        ("Augment.apply", lambda: nn.Augment(noise=0.1, image_shape=(2, 2), max_shift=1)
         .apply(X, 0, 0, 0), {"X_batch"}, not batch_ok),
    ]
    for where, call, culprits, must_fail in calls:
        try:
            call()
        except (ValueError, TypeError) as exc:
            assert_names(exc, where, culprits)
        else:
            assert not must_fail, f"{where} accepted X of {X.dtype} {X.shape}"
