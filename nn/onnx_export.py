"""Export a trained ``nn.Sequential`` as an ONNX inference graph (``nn.export_onnx``).

Needs the optional ``onnx`` package (``pip install "numba-nn[onnx]"``); ``import nn``
does not import this module, ``nn.export_onnx`` does on its first call.
"""
import numpy as np

import kernels

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # the extra is not installed
    raise ImportError('nn.export_onnx needs the optional package onnx; install it with '
                      'pip install "numba-nn[onnx]"') from exc

from ._files import atomic_write
from ._validation import all_finite, check_output_path
from .layers import Activation, BatchNorm, Dense, Dropout
from .losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy

#: The ONNX operator set the graph declares (Gemm 13, Relu 14, LeakyRelu 16,
#: BatchNormalization 15, Softmax 13): ONNX Runtime 1.13 and later run it.
OPSET = 17
#: The ONNX IR version of opset 17, so that runtimes older than this onnx can load it.
IR_VERSION = 8

# One protobuf message holds at most 2 GiB; the graph's structure needs a little room.
_MAX_PROTO_BYTES = 2**31 - 2**20

INPUT_NAME = "X"
OUTPUT_NAME = "Y"

_ELEM_TYPES = {np.dtype(np.float32): TensorProto.FLOAT,
               np.dtype(np.float64): TensorProto.DOUBLE}

# What predict returns per loss: the ONNX op that maps the last layer's output to it.
_OUTPUT_OPS = ((SoftmaxCrossEntropy, "Softmax", "softmax probabilities"),
               (BinaryCrossEntropy, "Sigmoid", "sigmoid probabilities"),
               (MeanSquaredError, None, "raw outputs"))


def export_onnx(model, path):
    """Write ``model`` to ``path`` as an ONNX inference graph that gives ``predict``'s
    output.

    The graph (ONNX opset 17, IR version 8) takes one input ``"X"`` of shape
    ``[N, n_features]``, N dynamic, and gives one output ``"Y"`` of shape
    ``[N, n_outputs]``, both in the model's dtype (float32 or float64; all its ops run
    in ONNX Runtime in either). Its nodes, in order:

    - the model's standardizer, if set: ``Sub`` its mean, ``Div`` by its scale, so the
      graph takes raw features as ``predict`` does;
    - each ``Dense``: ``Gemm`` (``X @ W + b``) and its activation;
    - each activation: ``Relu``, ``LeakyRelu`` (alpha = ``kernels.LEAKY_RELU_SLOPE``;
      in a float64 graph ``PRelu`` with that slope as a float64 tensor, as LeakyRelu's
      alpha is a float32 attribute), ``Tanh``, ``Sigmoid``; identity adds no node;
    - each ``BatchNorm``: ``BatchNormalization`` in inference mode with the layer's
      running mean, running (biased) variance and eps (ONNX stores eps as a float32
      attribute: in a float64 graph that moves an output by ~1e-13 relative, up to
      ~1e-8 for a feature whose running variance is near 0);
    - each ``Dropout``: no node (it is the identity at inference);
    - the loss's output, as ``predict``: ``Softmax`` over each row for
      ``SoftmaxCrossEntropy``, ``Sigmoid`` for ``BinaryCrossEntropy``, the last layer's
      output for ``MeanSquaredError``.

    Weights and statistics are stored at the model's dtype, so in ONNX Runtime ``Y``
    matches ``model.predict(X)`` to rounding (the summation order of the products).
    A model with ``precision="bf16"`` keeps float32 weights; those are exported and
    the graph computes in float32 throughout, so ``Y`` is the float32 model's output
    and differs from that model's ``predict`` (bfloat16 products) by bf16 rounding.

    The graph passes ``onnx.checker.check_model`` (full check) before it is written.
    The file is written atomically (a temporary file in the same folder, renamed over
    ``path``), so a failure leaves any previous file whole. The producer is
    ``"numba-nn"`` at ``nn.__version__``; ``metadata_props`` holds the loss, what
    ``Y`` is, the dtype and the precision the model was trained with.

    Parameters
    ----------
    model : nn.Sequential
        A model with its loss set (``fit`` and ``nn.load`` set it), not training now.
    path : str or os.PathLike
        The file to write (``.onnx`` is the usual suffix), in an existing folder.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Sequential``, has a layer or loss type the
        exporter does not know, or ``path`` is not a path.
    ValueError
        If the model has no loss, non-finite weights or over 2 GiB of them (one ONNX
        file's limit); or ``path`` is empty.
    OSError
        If ``path`` cannot be written (its folder missing or read-only: before any work).
    RuntimeError
        If the model is training in another thread.
    ImportError
        If ``onnx`` is not installed (``pip install "numba-nn[onnx]"``).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import nn
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((64, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> model = nn.mlp([4, 8, 2], seed=0)
    >>> _ = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-2),
    ...               epochs=2, verbose=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> nn.export_onnx(model, path) == path
    True
    >>> import onnx
    >>> [node.op_type for node in onnx.load(path).graph.node]
    ['Gemm', 'Relu', 'Gemm', 'Softmax']
    """
    from . import __version__
    from .model import Sequential
    where = "nn.export_onnx"
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: model must be an nn.Sequential; got "
                        f"{type(model).__name__}.")
    path = check_output_path("path", path, where=where)
    model._check_not_training(where)
    out_op, out_meaning = _output_op(model.loss, where)
    if not (all_finite(model.params) and all_finite(model.buffers)):
        raise ValueError(f"{where}: the model has NaN or infinite weights or statistics "
                         f"(training diverged?); the graph would output NaN.")
    n_bytes = model.params.nbytes + model.buffers.nbytes
    if n_bytes > _MAX_PROTO_BYTES:
        raise ValueError(f"{where}: the model's {n_bytes / 2**30:.2f} GiB of weights exceed "
                         f"what one ONNX file holds (2 GiB, protobuf's limit).")

    dtype = model.dtype
    graph = _Graph(dtype)
    current = INPUT_NAME
    if model.standardizer is not None:
        s = model.standardizer
        current = graph.node("Sub", [current, graph.const("standardizer.mean", s.mean_)],
                             "standardizer_sub")
        current = graph.node("Div", [current, graph.const("standardizer.scale", s.scale_)],
                             "standardizer_div")
    for i, layer in enumerate(model.layers):
        current = _layer_nodes(graph, i, layer, current, where)
    if out_op is not None:
        current = graph.node(out_op, [current], "output_" + out_op.lower(),
                             **({"axis": -1} if out_op == "Softmax" else {}))
    graph.name_output(current, OUTPUT_NAME)

    proto = helper.make_model(
        helper.make_graph(
            graph.nodes, "numba_nn_sequential",
            [helper.make_tensor_value_info(INPUT_NAME, _ELEM_TYPES[dtype],
                                           ["N", model.n_features])],
            [helper.make_tensor_value_info(OUTPUT_NAME, _ELEM_TYPES[dtype],
                                           ["N", model.n_outputs])],
            graph.initializers,
            doc_string=f"{INPUT_NAME}: features [N, {model.n_features}] as predict takes "
                       f"them; "
                       f"{OUTPUT_NAME}: {out_meaning} [N, {model.n_outputs}], as "
                       f"Sequential.predict."),
        opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="numba-nn", producer_version=__version__)
    helper.set_model_props(proto, {"loss": type(model.loss).__name__,
                                   "output": out_meaning, "dtype": dtype.name,
                                   "precision": getattr(model, "precision", "fp32")})
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    try:
        return atomic_write(path, lambda fh: fh.write(data), suffix=".onnx")
    except OSError as exc:
        # The temporary file's name would not tell which export failed.
        raise type(exc)(exc.errno, f"{where}: {exc.strerror or exc}", path) from exc


def _output_op(loss, where):
    if loss is None:
        raise ValueError(f"{where}: the model has no loss yet, so what predict returns is "
                         f"unknown; fit it, or set model.loss (e.g. "
                         f"nn.SoftmaxCrossEntropy() for probabilities).")
    for cls, op, meaning in _OUTPUT_OPS:
        # A subclass that overrides output would compute something else than the op.
        if isinstance(loss, cls) and type(loss).output is cls.output:
            return op, meaning
    raise TypeError(f"{where}: cannot export the output of loss {type(loss).__name__}; "
                    f"known: {', '.join(cls.__name__ for cls, _, _ in _OUTPUT_OPS)}.")


_ACTIVATION_OPS = {kernels.ACT_RELU: ("Relu", {}),
                   kernels.ACT_LEAKY_RELU: ("LeakyRelu", {"alpha": kernels.LEAKY_RELU_SLOPE}),
                   kernels.ACT_TANH: ("Tanh", {}),
                   kernels.ACT_SIGMOID: ("Sigmoid", {})}


def _activation(graph, act_code, current, name):
    if act_code == kernels.ACT_IDENTITY:
        return current
    if act_code == kernels.ACT_LEAKY_RELU and graph.dtype != np.float32:
        # LeakyRelu's alpha is a float32 attribute; PRelu's slope is a tensor of the
        # model's dtype, so a float64 graph uses the slope the kernels use.
        slope = graph.const("leaky_relu_slope", kernels.LEAKY_RELU_SLOPE, shared=True)
        return graph.node("PRelu", [current, slope], f"{name}_leaky_relu")
    op, attrs = _ACTIVATION_OPS[act_code]
    return graph.node(op, [current], f"{name}_{op.lower()}", **attrs)


def _layer_nodes(graph, i, layer, current, where):
    """Add layer i's inference nodes after tensor ``current``; return its output."""
    kind = type(layer)   # exact: a subclass may change what infer computes
    name = f"layers.{i}"
    if kind is Dense:
        inputs = [current, graph.const(f"{name}.W", layer.W)]
        if layer.use_bias:
            inputs.append(graph.const(f"{name}.b", layer.b))
        current = graph.node("Gemm", inputs, f"{name}_gemm")
        return _activation(graph, layer.act_code, current, name)
    if kind is BatchNorm:
        inputs = [current] + [graph.const(f"{name}.{p}", getattr(layer, p))
                              for p in ("gamma", "beta", "running_mean", "running_var")]
        # The layer's own act_code is the fused activation of the Activation layer that
        # follows; that layer adds the activation node itself.
        return graph.node("BatchNormalization", inputs, f"{name}_batchnorm",
                          epsilon=float(layer.eps))
    if kind is Activation:
        return _activation(graph, layer.act_code, current, name)
    if kind is Dropout:
        return current
    raise TypeError(f"{where}: cannot export layers[{i}] of type {kind.__name__}; "
                    f"known: Dense, Activation, BatchNorm, Dropout.")


class _Graph:
    """Nodes and initializers, tensors named after the node that makes them."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.nodes, self.initializers = [], []

    def const(self, name, array, shared=False):
        if shared and any(t.name == name for t in self.initializers):
            return name
        array = np.ascontiguousarray(array, dtype=self.dtype)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def name_output(self, tensor, output):
        """Rename tensor ``tensor``, the last node's (a Sequential has a Dense, so a
        node), to the graph output ``output``."""
        assert self.nodes[-1].output[0] == tensor
        self.nodes[-1].output[0] = output
