"""``Sequential(precision="bf16")``: training and inference with bfloat16 matrix products.

The reference is a float64 NumPy step of the same network whose GEMM operands are
rounded to bf16 (``kernels.round_to_bf16`` of the float32 values, round to nearest
even), everything else (bias, activations, softmax, the L2 term, the update) in
float64. The model differs from it only by float32 sums and the float32 elementwise
passes (~1e-6 relative), while the products of unrounded operands differ by bf16's
rounding (~1e-3 relative): the tolerance sits between the two, and the test checks
that the unrounded reference lies outside it. Run on every bf16 backend this process
has (emulate on any CPU, avx512bf16 where the CPU has it, mkl on oneMKL). The rest:
the compiled plan gives the reference path's bytes, with 1 and 2 threads; save, load,
resume, copy, predict, the CLI, and the float32 fallback where the CPU has no bf16
GEMM (``NUMBA_NN_BF16=none``, in a subprocess).
"""
import io
import json

import numba
import numpy as np
import pytest

import kernels
import nn
from kernels import bf16
from nn import training
from nn.io import ModelFileError

BACKENDS = [b for b in bf16.available_backends() if b != "none"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    previous = bf16._set_backend(request.param)
    yield request.param
    bf16._set_backend(previous)


def _r(x):
    """float64 values through float32 rounded to bf16, back in float64 (the model's
    GEMM operands)."""
    x32 = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x32)
    kernels.round_to_bf16(x32, out)
    return out.astype(np.float64)


def _blobs(n, d, k, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, k, n)


def _reference_step(Ws, bs, X, y, lr, l2, rounded):
    """One SGD step of Dense(relu) -> Dense(tanh) -> Dense (logits) with softmax
    cross-entropy, in float64: (gradients [(dW, db)], new weights [W])."""
    r = _r if rounded else (lambda a: np.asarray(a, np.float64))
    m = X.shape[0]
    A0 = X.astype(np.float64)
    Z1 = r(A0) @ r(Ws[0]) + bs[0]
    A1 = np.maximum(Z1, 0.0)
    Z2 = r(A1) @ r(Ws[1]) + bs[1]
    A2 = np.tanh(Z2)
    Z3 = r(A2) @ r(Ws[2]) + bs[2]
    P = np.exp(Z3 - Z3.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    dZ3 = P.copy()
    dZ3[np.arange(m), y] -= 1.0
    dZ3 /= m
    dW3 = r(A2).T @ r(dZ3) + l2 / m * Ws[2]
    dA2 = r(dZ3) @ r(Ws[2]).T
    dZ2 = dA2 * (1.0 - A2 ** 2)
    dW2 = r(A1).T @ r(dZ2) + l2 / m * Ws[1]
    dA1 = r(dZ2) @ r(Ws[1]).T
    dZ1 = dA1 * (Z1 > 0)
    dW1 = r(A0).T @ r(dZ1) + l2 / m * Ws[0]
    grads = [(dW1, dZ1.sum(0)), (dW2, dZ2.sum(0)), (dW3, dZ3.sum(0))]
    return grads, [W - lr * g for W, (g, _) in zip(Ws, grads)]


@pytest.mark.parametrize("use_plan", [True, False], ids=["plan", "reference_path"])
def test_a_bf16_step_matches_the_float64_reference_with_rounded_operands(
        backend, use_plan, monkeypatch):
    X, y = _blobs(64, 24, 5, seed=0)
    model = nn.Sequential([nn.Dense(24, 40, activation="relu"),
                           nn.Dense(40, 33, activation="tanh", init="xavier"),
                           nn.Dense(33, 5)], seed=0, precision="bf16")
    dense = model.layers
    rng = np.random.default_rng(1)
    for layer in dense:   # biases away from 0, so the bias path is checked too
        layer.b = 0.1 * rng.standard_normal(layer.b.shape)
    Ws = [layer.W.astype(np.float64) for layer in dense]
    bs = [layer.b.astype(np.float64) for layer in dense]
    lr, l2 = 0.5, 0.3
    monkeypatch.setattr(training, "USE_PLAN", use_plan)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr), epochs=1,
              batch_size=64, l2=l2, shuffle=False, verbose=0)
    grads, new_Ws = _reference_step(Ws, bs, X, y, lr, l2, rounded=True)
    plain, _ = _reference_step(Ws, bs, X, y, lr, l2, rounded=False)
    for layer, (dW, db), (dW_plain, _), W in zip(dense, grads, plain, new_Ws):
        scale = np.abs(dW).max()
        err = np.abs(layer.dW - dW).max() / scale
        assert err < 2e-6, err
        # without the rounding the products differ by far more: the check above can fail
        assert np.abs(dW_plain - dW).max() / scale > 5e-4
        np.testing.assert_allclose(layer.db, db, rtol=1e-5, atol=1e-6 * np.abs(db).max())
        np.testing.assert_allclose(layer.W, W, rtol=1e-5, atol=2e-5 * lr * scale)


def test_predict_uses_bf16_products(backend):
    X, y = _blobs(50, 24, 5, seed=2)
    model = nn.Sequential([nn.Dense(24, 40, activation="relu"), nn.Dense(40, 5)],
                          seed=3, precision="bf16")
    W1, b1, W2, b2 = (a.astype(np.float64) for a in
                      (model.layers[0].W, model.layers[0].b, model.layers[1].W,
                       model.layers[1].b))
    out = model.forward(X)
    expected = _r(np.maximum(_r(X) @ _r(W1) + b1, 0.0)) @ _r(W2) + b2
    plain = np.maximum(X.astype(np.float64) @ W1 + b1, 0.0) @ W2 + b2
    err = np.abs(out - expected).max()
    assert err < 1e-5 * np.abs(expected).max()
    assert np.abs(plain - expected).max() > 10 * err


# --- the compiled plan, threads ------------------------------------------------------

def _case_mlp_adam():
    X, y = _blobs(70, 6, 3, seed=0)
    model = nn.Sequential([nn.Dense(6, 16, activation="relu"),
                           nn.Dense(16, 12, activation="tanh", init="xavier"),
                           nn.Dense(12, 3)], seed=1, precision="bf16")
    fit = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=0.01), epochs=2,
               batch_size=16, l2=0.05)
    return model, X, y, fit


def _case_batchnorm_dropout_parallel():
    """BatchNorm, Dropout, and 300 x 256 x 256 products: the parallel bf16 GEMM."""
    X, y = _blobs(300, 20, 3, seed=5)
    model = nn.Sequential([nn.Dense(20, 256, use_bias=False), nn.BatchNorm(256),
                           nn.Activation("relu"), nn.Dropout(0.8),
                           nn.Dense(256, 256, activation="relu"), nn.Dense(256, 3)],
                          seed=5, precision="bf16")
    assert 300 * 256 * 256 >= bf16.PARALLEL_MIN_MNK
    fit = dict(loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Momentum(lr=0.05), epochs=2,
               batch_size=150, l1=0.01)
    return model, X, y, fit


def _bytes_of_run(case, use_plan, threads, monkeypatch):
    model, X, y, fit = case()
    monkeypatch.setattr(training, "USE_PLAN", use_plan)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)   # BLAS threads stay fixed (conftest)
    try:
        history = model.fit(X, y, seed=7, verbose=0, **fit)
    finally:
        numba.set_num_threads(before)
    return {"params": model.params.tobytes(), "buffers": model.buffers.tobytes(),
            "optimizer": [a.tobytes() if isinstance(a, np.ndarray) else a
                          for a in model.optimizer.state],
            "layers": model.layer_states(),
            "history": {k: np.asarray(v).tobytes() for k, v in history.items()
                        if k != "time"}}


@pytest.mark.parametrize("case", [_case_mlp_adam, _case_batchnorm_dropout_parallel],
                         ids=["mlp_adam", "batchnorm_dropout_parallel"])
def test_plan_and_reference_path_same_bytes_for_1_and_2_threads(case, monkeypatch):
    runs = [_bytes_of_run(case, True, 1, monkeypatch),
            _bytes_of_run(case, False, 1, monkeypatch)]
    if numba.config.NUMBA_NUM_THREADS >= 2:
        runs += [_bytes_of_run(case, True, 2, monkeypatch),
                 _bytes_of_run(case, False, 2, monkeypatch)]
    assert all(run == runs[0] for run in runs[1:])


def test_bf16_training_differs_from_float32_and_learns():
    model, X, y, fit = _case_mlp_adam()
    fp32 = nn.Sequential.from_config({**model.config(), "precision": "fp32"})
    h16 = model.fit(X, y, verbose=0, **fit)
    h32 = fp32.fit(X, y, verbose=0, **{**fit, "optimizer": nn.Adam(lr=0.01)})
    if model._gemm_bf16:
        assert not np.array_equal(model.params, fp32.params)
    assert h16["loss"][-1] < h16["loss"][0]
    np.testing.assert_allclose(h16["loss"], h32["loss"], rtol=0.02)


# --- the API ------------------------------------------------------------------------

def test_precision_is_validated():
    layers = lambda: [nn.Dense(3, 2)]  # noqa: E731
    with pytest.raises(ValueError, match=r"Sequential: unknown precision 'fp16'; expected "
                                         r"one of 'bf16', 'fp32'"):
        nn.Sequential(layers(), precision="fp16")
    with pytest.raises(ValueError, match=r"precision='bf16' needs dtype float32.*float64"):
        nn.Sequential(layers(), dtype=np.float64, precision="bf16")
    assert nn.Sequential(layers()).precision == "fp32"
    assert nn.mlp([3, 4, 2], precision="bf16").precision == "bf16"


def test_copy_config_summary_and_gradient_check_keep_float64():
    model, X, y, fit = _case_mlp_adam()
    assert model.config()["precision"] == "bf16"
    assert nn.Sequential.from_config(model.config()).precision == "bf16"
    clone = model.copy()
    assert clone.precision == "bf16" and clone.layers[0]._gemm_bf16 == model._gemm_bf16
    assert model.copy(dtype=np.float64).precision == "fp32"
    out = io.StringIO()
    model.summary(file=out)
    assert "precision bf16" in out.getvalue()
    assert "precision='bf16'" in repr(model)
    error = nn.gradient_check(model, X[:6], y[:6], loss=nn.SoftmaxCrossEntropy())
    assert error < 1e-6


def test_save_load_resume_same_bytes(tmp_path):
    whole, X, y, fit = _case_mlp_adam()
    whole.fit(X, y, seed=3, verbose=0, **fit)
    model, X, y, fit = _case_mlp_adam()
    model.fit(X, y, seed=3, verbose=0, **{**fit, "epochs": 1})
    path = nn.save(model, tmp_path / "m.safetensors")
    loaded = nn.load(path)
    assert loaded.precision == "bf16" and loaded._gemm_bf16 == model._gemm_bf16
    assert np.array_equal(loaded.predict(X), model.predict(X))
    loaded.fit(X, y, seed=3, verbose=0, initial_epoch=1,
               **{k: v for k, v in fit.items() if k != "optimizer"})
    assert loaded.params.tobytes() == whole.params.tobytes()


def _save_with_config(tmp_path, model, config):
    """A model file whose architecture is ``config`` (as an older or hostile writer)."""
    original = type(model).config
    type(model).config = lambda self: config
    try:
        return nn.save(model, tmp_path / "m.safetensors")
    finally:
        type(model).config = original


def test_old_files_load_as_fp32_and_bad_precisions_are_refused(tmp_path):
    model = nn.Sequential([nn.Dense(3, 2)], seed=0)
    config = model.config()
    old = {k: v for k, v in config.items() if k != "precision"}
    assert nn.load(_save_with_config(tmp_path, model, old)).precision == "fp32"
    for bad, message in (({**config, "precision": "fp8"}, "precision must be 'fp32' or "
                                                          "'bf16'; got 'fp8'"),
                         ({**config, "precision": 16}, "precision must be"),
                         ({**config, "dtype": "float64", "precision": "bf16"},
                          "precision 'bf16' needs dtype 'float32'")):
        path = _save_with_config(tmp_path, model, bad)
        with pytest.raises(ModelFileError, match=message):
            nn.load(path)


def test_cli_trains_with_bf16(capsys):
    from nn.__main__ import main
    assert main(["--hidden", "16", "--epochs", "2", "--precision", "bf16", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bf16 matrix products" in out and "test accuracy" in out
    with pytest.raises(SystemExit):
        main(["--precision", "bf16", "--dtype", "float64"])
    assert "--precision bf16 needs --dtype float32" in capsys.readouterr().err


_NO_BF16 = r"""
import json, warnings
import numpy as np
import kernels, nn
X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
y = (X[:, 0] > 0).astype(int)
runs = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for precision in ("bf16", "fp32", "bf16"):
        model = nn.Sequential([nn.Dense(5, 8, activation="relu"), nn.Dense(8, 2)], seed=0,
                              precision=precision)
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, batch_size=8, verbose=0)
        runs[precision] = model.params.tobytes().hex()
print(json.dumps(dict(backend=kernels.BF16_BACKEND, same=runs["bf16"] == runs["fp32"],
                      warnings=[(w.category.__name__, str(w.message)) for w in caught])))
"""


def test_without_a_bf16_gemm_it_warns_once_and_trains_in_float32(fresh_python,
                                                                  monkeypatch):
    monkeypatch.setenv("NUMBA_NN_BF16", "none")
    got = fresh_python(_NO_BF16, kernels.CACHE_DIR)   # the warm cache
    assert got["backend"] == "none" and got["same"]
    assert len(got["warnings"]) == 1, got["warnings"]
    category, message = got["warnings"][0]
    assert category == "RuntimeWarning" and "trains and predicts in float32" in message


def test_warmup_checks_its_precisions():
    with pytest.raises(ValueError, match=r"warmup: unknown precisions 'fp16'"):
        nn.warmup(precisions=["fp16"])


def test_compare_runs_the_bf16_contenders():
    """``python -m asv_benchmarks.compare``'s "ours-bf16" and PyTorch autocast workers
    (tiny sizes; no timing asserted)."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for contender in ("ours-bf16", "torch-fused-bf16"):
        proc = subprocess.run(
            [sys.executable, "-m", "asv_benchmarks.compare", "--worker", "train",
             "--contender", contender, "--model", "mlp+bn+dropout", "--rows", "128",
             "--batches", "64", "--threads", "1", "--warmup", "1",
             "--epochs-per-process", "1"], cwd=root, capture_output=True, text=True,
            timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        res = json.loads(proc.stdout.strip().splitlines()[-1].split(" ", 1)[1])
        if res["status"] == "skipped":   # no PyTorch, or no bf16 GEMM on this CPU
            continue
        assert res["status"] == "ok", res
        assert res["samples_per_s"] > 0
        if contender == "ours-bf16":
            assert res["bf16_backend"] == kernels.BF16_BACKEND
