"""nn.SGD, nn.Momentum, nn.RMSprop, nn.Adam: updates against the formulas, explicit named
state, validation, and use from fit."""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import nn
from nn.optimizers import (
    OPTIMIZER_TYPES, AdamState, MomentumState, RMSpropState, SGDState,
)

STEPS = 100


# --- plain-NumPy transcriptions of the notes' formulas (float64) --------------------------

def reference_run(name, w, grads, hp):
    """The parameters after each step of ``grads`` (a list), by the textbook formulas."""
    w = np.array(w, np.float64)
    a = np.zeros_like(w)  # v (momentum, Adam) or s (RMSprop)
    b = np.zeros_like(w)  # Adam's second moment
    out = []
    for t, g in enumerate(grads, start=1):
        if name == "SGD":
            w = w - hp["lr"] * g
        elif name == "Momentum":
            a = hp["beta"] * a + (1 - hp["beta"]) * g
            w = w - hp["lr"] * a
        elif name == "RMSprop":
            a = hp["beta"] * a + (1 - hp["beta"]) * g ** 2
            w = w - hp["lr"] * g / (np.sqrt(a) + hp["eps"])
        else:
            a = hp["beta1"] * a + (1 - hp["beta1"]) * g
            b = hp["beta2"] * b + (1 - hp["beta2"]) * g ** 2
            m_hat = a / (1 - hp["beta1"] ** t)
            v_hat = b / (1 - hp["beta2"] ** t)
            w = w - hp["lr"] * m_hat / (np.sqrt(v_hat) + hp["eps"])
        out.append(w)
    return out


HYPER = {
    "SGD": dict(lr=0.05),
    "Momentum": dict(lr=0.05, beta=0.9),
    "RMSprop": dict(lr=0.01, beta=0.9, eps=1e-8),
    "Adam": dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
}
STATE_TYPES = {"SGD": SGDState, "Momentum": MomentumState, "RMSprop": RMSpropState,
               "Adam": AdamState}
STATE_FIELDS = {"SGD": ("step",), "Momentum": ("step", "v"), "RMSprop": ("step", "s"),
                "Adam": ("step", "m", "v")}


@pytest.mark.parametrize("name", list(HYPER))
@pytest.mark.parametrize("size", [1000, 70_000], ids=["serial", "parallel"])
def test_optimizer_matches_formula_over_100_steps_float64(name, size):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(size)
    scale = 10.0 ** rng.uniform(-3, 1, size)
    grads = [scale * rng.standard_normal(size) for _ in range(STEPS)]
    want = reference_run(name, w, grads, HYPER[name])
    opt = getattr(nn, name)(**HYPER[name])
    for t, g in enumerate(grads):
        opt.step(w, g)
        assert_allclose(w, want[t], rtol=1e-12, atol=1e-12)
    assert opt.state.step == STEPS


@pytest.mark.parametrize("name", list(HYPER))
def test_optimizer_float32_close_to_formula(name):
    """float32 buffers against the float64 formula; tolerance as in
    tests/kernels/test_optim.py (100 steps of float32 rounding, |w| <= ~10)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(1000).astype(np.float32)
    grads = [rng.standard_normal(1000).astype(np.float32) for _ in range(STEPS)]
    want = reference_run(name, w, grads, HYPER[name])[-1]
    opt = getattr(nn, name)(**HYPER[name])
    for g in grads:
        opt.step(w, g)
    assert w.dtype == np.float32
    assert all(a.dtype == np.float32 for a in opt.state if isinstance(a, np.ndarray))
    assert_allclose(w, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(HYPER))
def test_optimizer_state_is_a_named_record(name):
    opt = getattr(nn, name)(**HYPER[name])
    assert opt.state is None
    params, grads = np.ones(10), np.full(10, 0.5)
    opt.step(params, grads)
    opt.step(params, grads)
    state = opt.state
    assert type(state) is STATE_TYPES[name]
    assert state._fields == STATE_FIELDS[name]
    assert state.step == 2
    arrays = [getattr(state, f) for f in state._fields[1:]]
    for a in arrays:
        assert a.shape == params.shape and a.dtype == params.dtype and a.flags.c_contiguous
        assert np.any(a != 0)  # updated in place
    if len(arrays) == 2:  # one block, staggered: different offsets within a page
        assert arrays[0].base is arrays[1].base
        assert arrays[0].ctypes.data % 4096 != arrays[1].ctypes.data % 4096


def test_adam_state_arrays_are_staggered_past_the_model_buffers_offsets():
    """m and v come from one block: m starts 512 bytes in (past the two offsets the
    model's params and grads take in theirs), v 256 bytes after the end of m. Where the
    allocator puts a block is not ours to test; these offsets are."""
    model = nn.Sequential([nn.Dense(300, 300), nn.Dense(300, 10)], seed=0)  # 93k params
    opt = nn.Adam()
    opt.step(model.params, model.grads)
    m, v = opt.state.m, opt.state.v
    block = m.base
    assert v.base is block and block.dtype == np.float32
    nbytes = m.size * m.itemsize
    assert m.ctypes.data - block.ctypes.data == 512
    assert v.ctypes.data - m.ctypes.data == nbytes + 256
    assert model.grads.ctypes.data - model.params.ctypes.data == nbytes + 256


@pytest.mark.parametrize("name", ["Momentum", "RMSprop", "Adam"])
def test_optimizer_state_recreated_for_a_new_buffer(name):
    """Arrays that do not fit the new buffer are replaced by fresh ones (step from 0)."""
    opt = getattr(nn, name)(**HYPER[name])
    opt.step(np.ones(10), np.ones(10))
    first = opt.state
    opt.step(np.ones(12, np.float32), np.ones(12, np.float32))
    assert opt.state.step == 1
    for f in opt.state._fields[1:]:
        assert getattr(opt.state, f).shape == (12,)
        assert getattr(opt.state, f).dtype == np.float32
    assert first.step == 1


def test_adam_lr_change_between_steps_takes_effect_and_bias_correction_uses_step():
    """Adam's first step is lr * sign(g) (bias correction); a new lr applies next step."""
    opt = nn.Adam(lr=0.1, eps=1e-12)
    w = np.zeros(3)
    g = np.array([2.0, -3.0, 0.5])
    opt.step(w, g)
    assert_allclose(w, -0.1 * np.sign(g), rtol=1e-10)
    opt.lr = 0.01
    opt.step(w, g)  # same gradient: m_hat = g, v_hat = g**2, so the step is lr*sign(g)
    assert_allclose(w, -0.11 * np.sign(g), rtol=1e-10)
    assert opt.state.step == 2


def test_adam_scalars_computed_once_per_step_in_float64(monkeypatch):
    """The optimizer passes bc1 = 1 - beta1**t and bc2_sqrt = sqrt(1 - beta2**t)."""
    seen = []
    monkeypatch.setattr(nn.optimizers.kernels, "adam_step",
                        lambda *args: seen.append(args[8:10]))
    opt = nn.Adam(beta1=0.8, beta2=0.99)
    for _ in range(3):
        opt.step(np.ones(4), np.ones(4))
    assert seen == [(1 - 0.8 ** t, math.sqrt(1 - 0.99 ** t)) for t in (1, 2, 3)]


@pytest.mark.parametrize("name", list(HYPER))
def test_optimizer_config_round_trips_and_repr(name):
    opt = getattr(nn, name)(**HYPER[name])
    assert opt.config() == {k: float(v) for k, v in HYPER[name].items()}
    assert OPTIMIZER_TYPES[name] is type(opt)
    again = OPTIMIZER_TYPES[name](**opt.config())
    assert again.config() == opt.config()
    assert repr(opt) == f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in
                                               opt.config().items()) + ")"


def test_defaults():
    assert nn.Momentum(lr=0.1).config() == {"lr": 0.1, "beta": 0.9}
    assert nn.RMSprop(lr=0.1).config() == {"lr": 0.1, "beta": 0.9, "eps": 1e-8}
    assert nn.Adam().config() == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert nn.Momentum(lr=0.1, beta=0).beta == 0.0  # beta = 0 is allowed: plain GD


@pytest.mark.parametrize("factory, kwargs, error, message", [
    (nn.Momentum, dict(lr=0.0), ValueError, r"Momentum: lr must be > 0\.0; got 0\.0"),
    (nn.Momentum, dict(lr=0.1, beta=1.0), ValueError,
     r"Momentum: beta must be < 1\.0; got 1\.0"),
    (nn.Momentum, dict(lr=0.1, beta=-0.1), ValueError,
     r"Momentum: beta must be >= 0\.0; got -0\.1"),
    (nn.Momentum, dict(lr=0.1, beta="high"), TypeError,
     r"Momentum: beta must be a real number; got 'high'"),
    (nn.RMSprop, dict(lr=-1.0), ValueError, r"RMSprop: lr must be > 0\.0; got -1\.0"),
    (nn.RMSprop, dict(lr=0.1, beta=1.5), ValueError, r"RMSprop: beta must be < 1\.0; got 1\.5"),
    (nn.RMSprop, dict(lr=0.1, eps=0.0), ValueError, r"RMSprop: eps must be > 0\.0; got 0\.0"),
    (nn.RMSprop, dict(lr=0.1, eps=float("nan")), ValueError,
     r"RMSprop: eps must be finite; got nan"),
    (nn.Adam, dict(lr=float("inf")), ValueError, r"Adam: lr must be finite; got inf"),
    (nn.Adam, dict(beta1=1.0), ValueError, r"Adam: beta1 must be < 1\.0; got 1\.0"),
    (nn.Adam, dict(beta2=-0.5), ValueError, r"Adam: beta2 must be >= 0\.0; got -0\.5"),
    (nn.Adam, dict(eps=-1e-8), ValueError, r"Adam: eps must be > 0\.0; got -1e-08"),
    (nn.Adam, dict(beta1=None), TypeError, r"Adam: beta1 must be a real number; got None"),
    (nn.Adam, dict(eps=True), TypeError, r"Adam: eps must be a real number; got True"),
])
def test_optimizer_rejects_bad_hyperparameters(factory, kwargs, error, message):
    with pytest.raises(error, match=message):
        factory(**kwargs)


def test_lr_setter_validates_for_every_optimizer():
    for opt in (nn.Momentum(lr=0.1), nn.RMSprop(lr=0.1), nn.Adam()):
        with pytest.raises(ValueError, match=rf"{type(opt).__name__}: lr must be > 0"):
            opt.lr = 0.0


# --- from fit -------------------------------------------------------------------------------

def _model(dtype=np.float64, seed=0):
    return nn.Sequential([nn.Dense(3, 8, activation="tanh", use_bias=False),
                          nn.Dense(8, 3)], dtype=dtype, seed=seed)


OPTIMIZERS = {
    "SGD": lambda: nn.SGD(lr=0.1),
    "Momentum": lambda: nn.Momentum(lr=0.1, beta=0.9),
    "RMSprop": lambda: nn.RMSprop(lr=0.01),
    "Adam": lambda: nn.Adam(lr=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fit_trains_with_every_optimizer_and_a_layer_without_bias(name, dtype, blobs):
    X, y = blobs
    opt = OPTIMIZERS[name]()
    history = _model(dtype).fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=opt,
                                epochs=30, batch_size=16, seed=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] >= 0.9
    assert opt.state.step == 30 * 4  # 60 rows, batches of 16
    # same seed, same bits
    again = _model(dtype)
    again.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=OPTIMIZERS[name](), epochs=30,
              batch_size=16, seed=0)
    trained = _model(dtype)
    trained.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=OPTIMIZERS[name](), epochs=30,
                batch_size=16, seed=0)
    assert again.params.tobytes() == trained.params.tobytes()


@pytest.mark.parametrize("name", ["Momentum", "RMSprop", "Adam"])
def test_fit_with_stateful_optimizer_allocates_nothing_per_step(name, monkeypatch):
    counts = {"n": 0}
    for fn in ("empty", "empty_like", "zeros", "zeros_like", "ones", "array", "copy"):
        original = getattr(np, fn)

        def counting(*args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(np, fn, counting)
    rng = np.random.default_rng(0)
    model = _model(np.float32)

    def fit(n_rows):
        X = rng.standard_normal((n_rows, 3)).astype(np.float32)
        y = rng.integers(0, 3, n_rows)
        before = counts["n"]
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=OPTIMIZERS[name](),
                  epochs=1, batch_size=16)
        return counts["n"] - before

    fit(70)                                   # warm the layers' work buffers
    assert fit(16 * 40 + 6) == fit(70)        # 41 steps vs 5 steps, same allocations


# --- examples/optimizers.py ---------------------------------------------------------------

def test_example_script_prints_three_rows(capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "optimizers.py"
    spec = importlib.util.spec_from_file_location("example_optimizers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(epochs=3)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 3  # a header of two lines, then one row per optimizer
    assert [line.split()[0] for line in lines[2:]] == ["gradient", "momentum", "adam"]
    assert [r[0] for r in rows] == ["gradient descent", "momentum", "adam"]
    for name, train_cost, train_acc, dev_cost, dev_acc in rows:
        assert np.isfinite([train_cost, dev_cost]).all() and 0 <= dev_acc <= 1
    assert rows[2][1] < rows[0][1]  # Adam's cost below plain gradient descent's
