"""Bad input gets a ValueError or TypeError naming the argument, what it got and what
it needs, before any kernel runs.

One table, one test. Each row is ``(callable, kwargs, error type, regex)``, where
kwargs is a dict or a lambda returning one (for arguments that must be built fresh);
every regex matches the argument's name and the value, shape or type that was got.
While a row runs, every kernel is replaced by one that fails the test if called.
"""
import re

import numpy as np
import pytest

import kernels
import nn
from nn.initializers import initialize

N = 8


def _X(n=N, d=3):
    return np.random.default_rng(0).standard_normal((n, d))


def _y(n=N):
    return np.arange(n) % 3


def _model(n_out=3, dtype=np.float64):
    return nn.Sequential([nn.Dense(3, 4, activation="tanh"), nn.Dense(4, n_out)],
                         dtype=dtype, seed=0)


def fit(model=None, **overrides):
    """``model.fit`` with valid defaults, any argument overridden."""
    model = _model() if model is None else model
    args = dict(X=_X(), y=_y(), loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1),
                epochs=2, batch_size=4)
    args.update(overrides)
    return model.fit(args.pop("X"), args.pop("y"), **args)


def fit_bce(**overrides):
    return fit(**{"model": _model(n_out=1), "loss": nn.BinaryCrossEntropy(),
                  "y": (_y() == 1).astype(float), **overrides})


def fit_mse(**overrides):
    return fit(**{"model": _model(n_out=2), "loss": nn.MeanSquaredError(),
                  "y": _X()[:, :2], **overrides})


def fit_float32(**overrides):
    """fit on a float32 model; the cast of too-large values may warn (numpy) first."""
    with np.errstate(over="ignore"):
        return fit(model=_model(dtype=np.float32), **overrides)


def predict(X):
    model = _model()
    model.loss = nn.SoftmaxCrossEntropy()
    return model.predict(X)


def evaluate(**kwargs):
    return _model().evaluate(**kwargs)


def _forwarded_model():
    """A model after a training-mode forward (run at import, before kernels are barred)."""
    model = _model()
    model.forward(_X(), training=True)
    return model


backward = _forwarded_model().backward


def set_attr(obj, name, value):
    setattr(obj, name, value)


def _bound_dense():
    layer = nn.Dense(3, 4)
    nn.Sequential([layer])
    return layer


def _object_X():
    X = np.empty((N, 3), dtype=object)
    X[...] = 1.0
    return X


def _with(value, at=(2, 1)):
    X = _X()
    X[at] = value
    return X


CASES = [
    # ---- Sequential
    (nn.Sequential, lambda: dict(layers=nn.Dense(3, 2)), TypeError,
     r"Sequential: layers must be a list of layers; got Dense\(n_in=3"),
    (nn.Sequential, dict(layers=[]), ValueError, r"Sequential: layers is empty"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 4), "relu"]), TypeError,
     r"layers\[1\] must be a layer such as nn\.Dense; got 'relu'"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 4), np.tanh]), TypeError,
     r"layers\[1\] must be a layer .*; got <ufunc 'tanh'>"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 4), nn.Dense(5, 2)]), ValueError,
     r"Dense: n_in must equal the previous layer's width 4; got n_in=5"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 4), nn.Activation("relu"),
                                         nn.Dense(3, 2)]), ValueError,
     r"n_in must equal the previous layer's width 4; got n_in=3"),
    (nn.Sequential, lambda: dict(layers=[nn.Activation("relu")]), ValueError,
     r"Sequential: cannot infer the input width; the layers must include a Dense"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 4), nn.Dense(4, 4)] * 2), ValueError,
     r"Sequential: the same layer object appears twice in layers"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 2)], dtype=np.int32), TypeError,
     r"Sequential: dtype must be float32 or float64; got int32"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 2)], dtype=np.float16), TypeError,
     r"dtype must be float32 or float64; got float16"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 2)], dtype="double-ish"), TypeError,
     r"dtype must be float32 or float64; got 'double-ish'"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 2)], seed=-1), ValueError,
     r"Sequential: seed must be >= 0; got -1"),
    (nn.Sequential, lambda: dict(layers=[nn.Dense(3, 2)], seed=1.5), TypeError,
     r"Sequential: seed must be an integer; got 1\.5"),
    # ---- Dense, Activation, initializers, parameter views
    (nn.Dense, dict(n_in=0, n_out=3), ValueError, r"Dense: n_in must be >= 1; got 0"),
    (nn.Dense, dict(n_in=3, n_out=-2), ValueError, r"Dense: n_out must be >= 1; got -2"),
    (nn.Dense, dict(n_in=3, n_out=2.0), TypeError, r"Dense: n_out must be an integer; got 2\.0"),
    (nn.Dense, dict(n_in="3", n_out=2), TypeError, r"Dense: n_in must be an integer; got '3'"),
    (nn.Dense, dict(n_in=3, n_out=2, activation="softplus"), ValueError,
     r"Dense: unknown activation 'softplus'; expected one of .*'relu'"),
    (nn.Dense, dict(n_in=3, n_out=2, activation=np.tanh), ValueError,
     r"Dense: unknown activation <ufunc 'tanh'>; expected one of .*'tanh'"),
    (nn.Dense, dict(n_in=3, n_out=2, init="uniform"), ValueError,
     r"Dense: unknown init 'uniform'; expected one of .*'glorot'.*'he'.*'xavier'"),
    (nn.Dense, dict(n_in=3, n_out=2, use_bias="yes"), TypeError,
     r"Dense: use_bias must be True or False; got 'yes'"),
    (nn.Activation, dict(name="swish"), ValueError,
     r"Activation: unknown name 'swish'; expected one of .*'sigmoid'"),
    (nn.Activation, dict(name=None), ValueError, r"Activation: unknown name None"),
    (initialize, lambda: dict(name="orthogonal", n_in=2, n_out=2,
                              rng=np.random.default_rng(0), out=np.empty((2, 2))),
     ValueError, r"initialize: unknown init 'orthogonal'; expected one of .*'zeros'"),
    (set_attr, lambda: dict(obj=_bound_dense(), name="W", value=np.zeros((4, 3))),
     ValueError, r"Dense: W must have shape \(3, 4\); got \(4, 3\)"),
    # ---- optimizer
    (nn.SGD, dict(lr=0), ValueError, r"SGD: lr must be > 0\.0; got 0\.0"),
    (nn.SGD, dict(lr=-0.1), ValueError, r"SGD: lr must be > 0\.0; got -0\.1"),
    (nn.SGD, dict(lr=float("nan")), ValueError, r"SGD: lr must be finite; got nan"),
    (nn.SGD, dict(lr="fast"), TypeError, r"SGD: lr must be a real number; got 'fast'"),
    (nn.SGD, dict(lr=None), TypeError, r"SGD: lr must be a real number; got None"),
    (set_attr, lambda: dict(obj=nn.SGD(), name="lr", value=-1.0), ValueError,
     r"SGD: lr must be > 0\.0; got -1\.0"),
    # ---- fit: X
    (fit, dict(X=_X()[:, 0]), ValueError, r"Sequential\.fit: X must be 2-D; got shape \(8,\)"),
    (fit, dict(X=_X()[None]), ValueError, r"X must be 2-D; got shape \(1, 8, 3\)"),
    (fit, dict(X=_X(d=4)), ValueError,
     r"Sequential\.fit: X must have 3 columns \(features\); got shape \(8, 4\)"),
    (fit, dict(X="not an array"), TypeError, r"X must be a numeric array; got str"),
    (fit, dict(X=None), TypeError, r"X must be a numeric array; got NoneType"),
    (fit, dict(X=np.full((N, 3), "a")), TypeError, r"X must be numeric; got dtype <U1"),
    (fit, lambda: dict(X=_object_X()), TypeError, r"X must be numeric; got dtype object"),
    (fit, dict(X=[[1.0, 2.0, 3.0], [4.0, 5.0]] * 4), TypeError,
     r"X must be a numeric array; got list that NumPy cannot convert"),
    (fit, dict(X=_X() + 1j), TypeError, r"X must be real; got dtype complex128"),
    (fit, dict(X=_with(np.nan)), ValueError, r"Sequential\.fit: X contains NaN"),
    (fit, dict(X=_with(np.inf)), ValueError, r"X contains NaN or infinite values"),
    (fit, dict(X=_with(-np.inf)), ValueError, r"X contains NaN or infinite values"),
    (fit_float32, dict(X=_with(1e300)), ValueError,
     r"X has values too large for float32"),
    (fit, dict(X=np.empty((0, 3)), y=np.empty(0, int)), ValueError,
     r"Sequential\.fit: X is empty; got shape \(0, 3\)"),
    # ---- fit: class labels
    (fit, dict(y=np.array([0, 1, 2, 3, 0, 1, 2, 0])), ValueError,
     r"Sequential\.fit: y contains label 3, outside \[0, 3\)"),
    (fit, dict(y=np.array([0, 1, -1, 2, 0, 1, 2, 0])), ValueError,
     r"y contains label -1, outside \[0, 3\)"),
    (fit, dict(y=_y(N - 1)), ValueError,
     r"Sequential\.fit: y must have 8 labels, one per row of X; got 7"),
    (fit, dict(y=_y(N + 2)), ValueError, r"y must have 8 labels, one per row of X; got 10"),
    (fit, dict(y=np.array([0, 1, 2, 0.5, 0, 1, 2, 0])), ValueError,
     r"y must hold integer class labels; got non-integer values such as \[0\.5\]"),
    (fit, dict(y=np.array([0, 1, 2, np.nan, 0, 1, 2, 0])), ValueError,
     r"y must hold integer class labels; got non-integer values such as \[nan\]"),
    (fit, dict(y=np.array([0, 1, 2, np.inf, 0, 1, 2, 0])), ValueError,
     r"y must hold integer class labels; got non-integer values such as \[inf\]"),
    (fit, dict(y=np.array([0, 1, 2, 1e20, 0, 1, 2, 0])), ValueError,
     r"y contains label 1e\+20, outside \[0, 3\)"),
    (fit, dict(y=np.array([0, 1, 2, 2**63, 0, 1, 2, 0], dtype=np.uint64)), ValueError,
     r"y contains label 9223372036854775808, outside \[0, 3\)"),
    (fit, dict(y=np.array(list("01201201"))), TypeError,
     r"y must hold integer class labels; got dtype <U1"),
    (fit, dict(y=None), TypeError, r"y must be an array of class labels; got NoneType"),
    (fit, dict(y="01201201"), TypeError, r"y must be an array of class labels; got str"),
    (fit, dict(y=np.zeros((N, 2), int)), ValueError,
     r"y must be 1-D class labels \(n_samples,\) or one-hot \(n_samples, 3\); "
     r"got shape \(8, 2\)"),
    (fit, dict(y=np.full((N, 3), 1)), ValueError,
     r"y given as 2-D must be one-hot rows with a single 1 among 3 columns"),
    (fit, lambda: dict(model=_model(n_out=1)), ValueError,
     r"Sequential\.fit: SoftmaxCrossEntropy needs at least 2 outputs .*the model has 1"),
    # ---- fit: real-valued targets
    (fit_bce, dict(y=np.linspace(-0.5, 1.0, N)), ValueError,
     r"y for BinaryCrossEntropy must lie in \[0, 1\]; got values in \[-0\.5, 1\.0\]"),
    (fit_bce, dict(y=np.linspace(0.0, 2.0, N)), ValueError,
     r"y for BinaryCrossEntropy must lie in \[0, 1\]; got values in \[0\.0, 2\.0\]"),
    (fit_bce, dict(y=np.full(N, np.nan)), ValueError, r"y contains NaN or infinite"),
    (fit_mse, dict(y=_X()[:, :3]), ValueError,
     r"Sequential\.fit: y must have 2 columns .*; got shape \(8, 3\)"),
    (fit_mse, dict(y=_X()[:5, :2]), ValueError, r"y must have 8 rows.*; got 5"),
    (fit_mse, dict(y=_X()[:, 0]), ValueError, r"y must be 2-D; got shape \(8,\)"),
    # ---- fit: scalars and objects
    (fit, dict(epochs=0), ValueError, r"Sequential\.fit: epochs must be >= 1; got 0"),
    (fit, dict(epochs=-3), ValueError, r"epochs must be >= 1; got -3"),
    (fit, dict(epochs=2.5), TypeError, r"epochs must be an integer; got 2\.5"),
    (fit, dict(epochs="10"), TypeError, r"epochs must be an integer; got '10'"),
    (fit, dict(batch_size=0), ValueError, r"Sequential\.fit: batch_size must be >= 1; got 0"),
    (fit, dict(batch_size=-4), ValueError, r"batch_size must be >= 1; got -4"),
    (fit, dict(batch_size=None), TypeError, r"batch_size must be an integer; got None"),
    (fit, dict(epochs=5, initial_epoch=5), ValueError,
     r"Sequential\.fit: initial_epoch must be < epochs \(5\); got 5"),
    (fit, dict(epochs=5, initial_epoch=9), ValueError,
     r"initial_epoch must be < epochs \(5\); got 9"),
    (fit, dict(initial_epoch=-1), ValueError, r"initial_epoch must be >= 0; got -1"),
    (fit, dict(l2=-0.1), ValueError, r"Sequential\.fit: l2 must be >= 0\.0; got -0\.1"),
    (fit, dict(l1=float("inf")), ValueError, r"l1 must be finite; got inf"),
    (fit, dict(l2="big"), TypeError, r"l2 must be a real number; got 'big'"),
    (fit, dict(seed=-1), ValueError, r"Sequential\.fit: seed must be >= 0; got -1"),
    (fit, dict(verbose=-1), ValueError, r"verbose must be >= 0; got -1"),
    (fit, dict(shuffle="yes"), TypeError,
     r"Sequential\.fit: shuffle must be True or False; got 'yes'"),
    (fit, dict(loss="mse"), TypeError,
     r"Sequential\.fit: loss must be a loss object such as nn\.SoftmaxCrossEntropy\(\); "
     r"got 'mse'"),
    (fit, dict(loss=None), ValueError, r"Sequential\.fit: loss is None and the model has none yet \(no fit or load gave it one\); pass loss="),
    (fit, dict(loss=nn.SGD), TypeError, r"loss must be a loss object .*; got <class"),
    (fit, dict(optimizer="sgd"), TypeError,
     r"Sequential\.fit: optimizer must be an optimizer object such as nn\.SGD\(lr=0\.01\); "
     r"got 'sgd'"),
    (fit, dict(optimizer=nn.SoftmaxCrossEntropy()), TypeError,
     r"optimizer must be an optimizer object .*; got SoftmaxCrossEntropy\(\)"),
    (fit, dict(schedule=0.1), TypeError,
     r"Sequential\.fit: schedule must be a callable epoch -> lr; got 0\.1"),
    (fit, dict(callbacks=["stop early"]), TypeError,
     r"Sequential\.fit: callbacks must be nn\.Callback objects; got 'stop early'"),
    # ---- fit: validation_data
    (fit, dict(validation_data=_X()), TypeError,
     r"Sequential\.fit: validation_data must be \(X_dev, y_dev\) or \(X_dev, y_dev, sample_weight_dev\); got ndarray"),
    (fit, dict(validation_data=(_X(),)), TypeError,
     r"validation_data must be \(X_dev, y_dev\) or \(X_dev, y_dev, sample_weight_dev\); got tuple"),
    (fit, dict(validation_data=(_X(), _y(), _y(), _y())), TypeError,
     r"validation_data must be \(X_dev, y_dev\) or \(X_dev, y_dev, sample_weight_dev\); got tuple"),
    (fit, dict(validation_data=(_X(4, 5), _y(4))), ValueError,
     r"Sequential\.fit: X_dev must have 3 columns \(features\); got shape \(4, 5\)"),
    (fit, dict(validation_data=(_with(np.nan), _y())), ValueError,
     r"X_dev contains NaN or infinite values"),
    (fit, dict(validation_data=(_X(4), _y(3))), ValueError,
     r"Sequential\.fit \(y_dev\): y must have 4 labels, one per row of X; got 3"),
    (fit, dict(validation_data=(_X(4), np.array([0, 1, 5, 2]))), ValueError,
     r"Sequential\.fit \(y_dev\): y contains label 5, outside \[0, 3\)"),
    # ---- predict, evaluate, backward, gradient_check, threads
    (predict, dict(X=_X(d=2)), ValueError,
     r"Sequential\.predict: X must have 3 columns \(features\); got shape \(8, 2\)"),
    (predict, dict(X=_with(np.nan)), ValueError, r"Sequential\.predict: X contains NaN"),
    (predict, dict(X=np.empty((0, 3))), ValueError, r"X is empty; got shape \(0, 3\)"),
    (evaluate, dict(X=_X(), y=_y()), ValueError,
     r"Sequential\.evaluate: loss is None and the model has none yet \(no fit or load gave it one\); pass loss="),
    (evaluate, dict(X=_X(), y=_y(5), loss=nn.SoftmaxCrossEntropy()), ValueError,
     r"Sequential\.evaluate: y must have 8 labels, one per row of X; got 5"),
    (evaluate, dict(X=_X(), y=_y(), loss="ce"), TypeError,
     r"Sequential\.evaluate: loss must be a loss object .*; got 'ce'"),
    (backward, dict(dout=np.zeros((N, 2))), ValueError,
     r"Sequential\.backward: dout must have 3 columns .*; got shape \(8, 2\)"),
    (backward, dict(dout=np.zeros((5, 3))), ValueError,
     r"Sequential\.backward: dout must have 8 rows.*; got 5"),
    (nn.gradient_check, lambda: dict(model=_model(), X=_X(), y=_y(), loss=nn.SGD()),
     TypeError, r"gradient_check: loss must be a loss object .*; got SGD\(lr=0\.01\)"),
    (nn.gradient_check, lambda: dict(model=_model(), X=_X(), y=_y(),
                                     loss=nn.SoftmaxCrossEntropy(), eps=0.0),
     ValueError, r"gradient_check: eps must be > 0\.0; got 0\.0"),
    (nn.gradient_check, lambda: dict(model=_model(), X=_X(d=2), y=_y(),
                                     loss=nn.SoftmaxCrossEntropy()),
     ValueError, r"gradient_check: X must have 3 columns \(features\); got shape \(8, 2\)"),
    (nn.gradient_check, lambda: dict(model=_model(), X=_X(), y=_y() + 1,
                                     loss=nn.SoftmaxCrossEntropy()),
     ValueError, r"gradient_check: y contains label 3, outside \[0, 3\)"),
    (nn.set_num_threads, dict(n=0), ValueError, r"set_num_threads: n must be >= 1; got 0"),
]


def _row_id(case):
    func, kwargs, error, regex = case
    return f"{getattr(func, '__name__', func)}-{re.sub(r'[^A-Za-z0-9_]+', '_', regex)[:60]}"


@pytest.fixture
def no_kernels(monkeypatch):
    """Every public kernel replaced by one that fails the test if it runs."""
    def forbidden(name):
        def kernel(*args, **kwargs):
            raise AssertionError(f"kernel {name} ran before the input was validated")
        return kernel
    for name in kernels.__all__:
        if callable(getattr(kernels, name)):
            monkeypatch.setattr(kernels, name, forbidden(name))


@pytest.mark.filterwarnings("error")  # the error alone: no NumPy warning on the way
@pytest.mark.parametrize("func, kwargs, error, regex", CASES, ids=map(_row_id, CASES))
def test_bad_input_raises_a_clear_error_before_any_kernel(no_kernels, func, kwargs, error,
                                                          regex):
    kwargs = kwargs() if callable(kwargs) else kwargs
    with pytest.raises(error, match=regex) as info:
        func(**kwargs)
    assert type(info.value) is error  # not a subclass from deeper down


def test_bad_input_guard_sees_a_kernel_run(no_kernels):
    """The table's guard is live: valid arguments reach a kernel and trip it."""
    with pytest.raises(AssertionError, match="kernel .* ran before the input was validated"):
        fit()
