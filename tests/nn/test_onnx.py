"""nn.export_onnx: the file ONNX Runtime runs gives model.predict's output (every layer
type, activation, loss and dtype), its graph is what the docstring says, and the
export's errors name what is wrong."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import kernels
import nn
from nn.data import Standardizer

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACTIVATIONS = ["relu", "leaky_relu", "tanh", "sigmoid", "identity"]
LOSSES = {"softmax": (nn.SoftmaxCrossEntropy, 3), "binary": (nn.BinaryCrossEntropy, 2),
          "mse": (nn.MeanSquaredError, 2)}
# float32: GEMM summation orders differ (ORT's MLAS, our BLAS); float64 is far closer.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def every_layer(act, n_out):
    """Dense (with and without bias, fused activation), Dropout, BatchNorm with a fused
    Activation, BatchNorm alone, and an Activation layer after a Dense."""
    return [nn.Dense(6, 8, activation=act), nn.Dropout(0.8),
            nn.Dense(8, 7, use_bias=False), nn.BatchNorm(7), nn.Activation(act),
            nn.Dense(7, 5), nn.BatchNorm(5),
            nn.Dense(5, 4), nn.Activation(act),
            nn.Dense(4, n_out)]


def data(loss_name, n_out, dtype, n=160, seed=0):
    rng = np.random.default_rng(seed)
    # Features far from standardized, so that the standardizer's nodes matter.
    X = (rng.standard_normal((n, 6)) * [1, 3, 0.5, 10, 2, 1] + [5, -2, 0, 40, 1, 0])
    z = (X - [5, -2, 0, 40, 1, 0]) / [1, 3, 0.5, 10, 2, 1]
    if loss_name == "softmax":
        y = (z[:, 0] > 0).astype(np.int64) + (z[:, 1] > 0.5)
    elif loss_name == "binary":
        y = np.stack([z[:, 0] > 0, z[:, 2] + z[:, 3] > 0], axis=1).astype(dtype)
    else:
        y = np.stack([z[:, 0] * 2 + 1, z[:, 1] - z[:, 4]], axis=1).astype(dtype)
    return X.astype(dtype), y


def trained(act, loss_name, dtype, standardize=True, seed=0):
    loss_cls, n_out = LOSSES[loss_name]
    X, y = data(loss_name, n_out, dtype, seed=seed)
    model = nn.Sequential(every_layer(act, n_out), dtype=dtype, seed=seed)
    if standardize:
        model.standardizer = Standardizer().fit(X)
    model.fit(X, y, loss=loss_cls(), optimizer=nn.Adam(1e-2), epochs=3, batch_size=32,
              verbose=0, seed=seed)
    return model, X


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_onnx_runtime_gives_predicts_output(tmp_path, act, loss_name, dtype):
    model, X = trained(act, loss_name, dtype)
    bn = model.layers[3]
    assert not np.allclose(bn.running_var, 1.0)   # the running statistics were trained
    path = nn.export_onnx(model, tmp_path / "model.onnx")
    assert path == str(tmp_path / "model.onnx")
    X_test = data(loss_name, 0, dtype, n=50, seed=1)[0]
    got = run_onnx(path, X_test)
    expected = model.predict(X_test)
    assert got.dtype == dtype and got.shape == expected.shape
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    if loss_name == "softmax":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=tol)


def test_a_model_without_standardizer_starts_at_its_first_gemm(tmp_path):
    model, X = trained("relu", "softmax", np.float32, standardize=False)
    path = nn.export_onnx(model, tmp_path / "m.onnx")
    graph = onnx.load(path).graph
    assert graph.node[0].op_type == "Gemm" and graph.node[0].input[0] == "X"
    np.testing.assert_allclose(run_onnx(path, X), model.predict(X), rtol=1e-5, atol=1e-5)


def test_the_graph_is_the_documented_one(tmp_path):
    model, X = trained("leaky_relu", "softmax", np.float32)
    path = nn.export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.producer_name == "numba-nn" and proto.producer_version == nn.__version__
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert proto.ir_version == 8
    assert {p.key: p.value for p in proto.metadata_props} == {
        "loss": "SoftmaxCrossEntropy", "output": "softmax probabilities", "dtype": "float32",
        "precision": "fp32"}
    graph = proto.graph
    assert [node.op_type for node in graph.node] == [
        "Sub", "Div",                                      # standardizer
        "Gemm", "LeakyRelu",                               # Dense(activation); Dropout: none
        "Gemm", "BatchNormalization", "LeakyRelu",         # Dense, BatchNorm, Activation
        "Gemm", "BatchNormalization",
        "Gemm", "LeakyRelu",
        "Gemm", "Softmax"]
    (inp,), (out,) = graph.input, graph.output
    for value, width in ((inp, 6), (out, 3)):
        tensor = value.type.tensor_type
        assert tensor.elem_type == onnx.TensorProto.FLOAT
        n, d = tensor.shape.dim
        assert n.dim_param == "N" and not n.HasField("dim_value") and d.dim_value == width
    assert (inp.name, out.name) == ("X", "Y")
    attrs = {node.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
             for node in graph.node}
    assert attrs["LeakyRelu"]["alpha"] == np.float32(kernels.LEAKY_RELU_SLOPE)
    assert attrs["BatchNormalization"]["epsilon"] == np.float32(model.layers[6].eps)
    assert attrs["Softmax"]["axis"] == -1
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    assert np.array_equal(weights["layers.0.W"], model.layers[0].W)
    assert np.array_equal(weights["layers.3.running_var"], model.layers[3].running_var)
    assert np.array_equal(weights["standardizer.mean"],
                          model.standardizer.mean_.astype(np.float32))
    assert "layers.2.b" not in weights   # Dense(use_bias=False): a Gemm without C


def test_a_float64_model_gives_a_float64_graph(tmp_path):
    model, X = trained("leaky_relu", "mse", np.float64)
    proto = onnx.load(nn.export_onnx(model, tmp_path / "m.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert {t.data_type for t in proto.graph.initializer} == {onnx.TensorProto.DOUBLE}
    ops = [node.op_type for node in proto.graph.node]
    assert ops[-1] == "Gemm"   # MSE: the raw output
    # LeakyRelu's alpha is float32; PRelu takes the slope as a float64 tensor
    assert "LeakyRelu" not in ops and ops.count("PRelu") == 3
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert weights["leaky_relu_slope"] == kernels.LEAKY_RELU_SLOPE


@pytest.mark.parametrize("n_rows", [1, 2, 257])
def test_the_batch_dimension_is_dynamic(tmp_path, n_rows):
    model, _ = trained("sigmoid", "binary", np.float32)
    path = nn.export_onnx(model, tmp_path / "m.onnx")
    X = data("binary", 2, np.float32, n=n_rows, seed=3)[0]
    np.testing.assert_allclose(run_onnx(path, X), model.predict(X), rtol=1e-5, atol=1e-5)


def test_a_one_column_binary_model(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    model = nn.mlp([3, 4, 1], seed=0)
    model.fit(X, y, loss=nn.BinaryCrossEntropy(), epochs=2, verbose=0)
    path = nn.export_onnx(model, tmp_path / "m.onnx")
    got = run_onnx(path, X)
    assert got.shape == (64, 1)
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-5, atol=1e-5)


def test_a_bf16_model_exports_its_float32_weights(tmp_path):
    import inspect
    if "precision" not in inspect.signature(nn.Sequential).parameters:
        pytest.skip("Sequential(precision=...) is not in this version")
    X, y = data("softmax", 3, np.float32)
    model = nn.Sequential(every_layer("relu", 3), precision="bf16", seed=0)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), epochs=2, verbose=0)
    proto = onnx.load(nn.export_onnx(model, tmp_path / "m.onnx"))
    assert {p.key: p.value for p in proto.metadata_props}["precision"] == "bf16"
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert weights["layers.0.W"].dtype == np.float32
    assert np.array_equal(weights["layers.0.W"], model.layers[0].W)
    # The graph computes in float32: predict's output with the same weights in float32
    fp32 = nn.Sequential(every_layer("relu", 3), seed=0)
    fp32.params[...], fp32.buffers[...] = model.params, model.buffers
    fp32.loss = model.loss
    got = run_onnx(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(got, fp32.predict(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, model.predict(X), atol=0.05)   # bf16 products


def test_the_file_is_replaced_whole_and_no_temporary_file_is_left(tmp_path):
    model, X = trained("relu", "mse", np.float32)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    nn.export_onnx(model, path)
    assert onnx.load(str(path)).producer_name == "numba-nn"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_a_failed_export_leaves_the_previous_file(tmp_path):
    model, _ = trained("relu", "mse", np.float32)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model.layers[0].W[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"nn.export_onnx: the model has NaN or infinite"):
        nn.export_onnx(model, path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.onnx"]


class ScaledDense(nn.Dense):
    def infer(self, X, work):
        return 2 * super().infer(X, work)


class HalfMSE(nn.MeanSquaredError):
    def output(self, out, dest=None):
        return super().output(out / 2, dest)


def test_errors_name_the_argument_and_what_it_got(tmp_path):
    model, _ = trained("relu", "softmax", np.float32)
    good = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match=r"nn.export_onnx: model must be an nn.Sequential; "
                                        r"got Dense"):
        nn.export_onnx(model.layers[0], good)
    with pytest.raises(TypeError, match=r"nn.export_onnx: path must be a str or os.PathLike"):
        nn.export_onnx(model, 3)
    with pytest.raises(ValueError, match=r"nn.export_onnx: path is empty"):
        nn.export_onnx(model, "")
    with pytest.raises(FileNotFoundError, match=r"folder that does not exist"):
        nn.export_onnx(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(IsADirectoryError, match=r"is a folder"):
        nn.export_onnx(model, tmp_path)
    fresh = nn.mlp([6, 3], seed=0)
    with pytest.raises(ValueError, match=r"nn.export_onnx: the model has no loss yet"):
        nn.export_onnx(fresh, good)
    fresh.loss = HalfMSE()
    with pytest.raises(TypeError, match=r"cannot export the output of loss HalfMSE"):
        nn.export_onnx(fresh, good)
    custom = nn.Sequential([ScaledDense(6, 3)], seed=0)
    custom.loss = nn.MeanSquaredError()
    with pytest.raises(TypeError, match=r"cannot export layers\[0\] of type ScaledDense"):
        nn.export_onnx(custom, good)
    assert os.listdir(tmp_path) == []


def test_weights_over_one_files_limit_are_refused(tmp_path, monkeypatch):
    import nn.onnx_export
    model, _ = trained("relu", "softmax", np.float32)
    monkeypatch.setattr(nn.onnx_export, "_MAX_PROTO_BYTES", model.params.nbytes)
    with pytest.raises(ValueError, match=r"exceed what one ONNX file holds \(2 GiB"):
        nn.export_onnx(model, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_a_model_that_is_training_is_refused(tmp_path):
    model, _ = trained("relu", "softmax", np.float32)
    with model._training_lock:
        with pytest.raises(RuntimeError, match=r"nn.export_onnx: the model is training"):
            nn.export_onnx(model, tmp_path / "m.onnx")


def run_python(code):
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_import_nn_does_not_import_onnx():
    assert run_python("import sys, nn; print('onnx' in sys.modules)") == "False"


def test_without_onnx_the_error_says_what_to_install():
    code = """
import sys
sys.modules["onnx"] = None    # as if not installed: importing it raises ImportError
import nn
model = nn.mlp([2, 2], seed=0)
model.loss = nn.MeanSquaredError()
try:
    nn.export_onnx(model, "never-written.onnx")
except ImportError as exc:
    print(str(exc))
"""
    assert run_python(code) == ('nn.export_onnx needs the optional package onnx; install it '
                                'with pip install "numba-nn[onnx]"')
    assert not (ROOT / "never-written.onnx").exists()
