"""Layers: shapes, parameters (views into the model's flat buffers) and work buffers.

A layer never holds a formula: its forward and backward call one kernel each. Work
buffers are allocated once per batch size and reused, so a training step allocates
nothing after its first batch.
"""
import numpy as np

import kernels

from ._validation import check_bool, check_choice, check_scalar
from .initializers import INITIALIZERS, initialize

#: Work buffer sets kept per layer; fit uses two (full and last partial batch).
_MAX_CACHED_BATCH_SIZES = 4


class Layer:
    """Base class. Subclasses declare their parameters and implement the passes.

    The model calls ``output_width`` to chain shapes, ``param_shapes`` and
    ``buffer_shapes`` to lay out the flat buffers, ``bind`` to hand over views,
    ``init_params`` once, then ``forward`` and ``backward`` for every batch.
    """

    def output_width(self, n_in):
        """Width of this layer's output given its input width (None if unknown)."""
        return n_in

    def param_shapes(self):
        """Trainable arrays as ``[(name, shape), ...]``, in flat-buffer order."""
        return []

    def buffer_shapes(self):
        """Non-trainable state arrays (e.g. running statistics) as ``[(name, shape)]``."""
        return []

    def bind(self, params, grads, buffers):
        """Receive dicts name -> view into the model's flat buffers."""
        self._params, self._grads, self._buffers = params, grads, buffers

    def init_params(self, rng):
        """Draw the initial parameters from the model's generator."""

    def config(self):
        """The constructor arguments, JSON-serialisable, to rebuild the layer."""
        raise NotImplementedError

    def _work(self, n_rows, dtype, make):
        cache = self.__dict__.setdefault("_work_cache", {})
        work = cache.get(n_rows)
        if work is None or work[0].dtype != dtype:
            if len(cache) >= _MAX_CACHED_BATCH_SIZES:
                cache.pop(next(iter(cache)))
            work = cache[n_rows] = make(n_rows, dtype)
        return work

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _param_property(name, kind="_params"):
    def get(self):
        return getattr(self, kind)[name]

    def set(self, value):
        view = getattr(self, kind)[name]
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"{type(self).__name__}: {name} must have shape {view.shape}; "
                             f"got {value.shape}.")
        view[...] = value

    return property(get, set, doc=f"``{name}``: a view into the model's flat buffer.")


class Dense(Layer):
    """Fully connected layer: ``A = act(X @ W + b)``, samples as rows.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths; ``W`` has shape ``(n_in, n_out)``.
    activation : str or None
        Fused activation: ``"relu"``, ``"leaky_relu"`` (slope 0.01), ``"tanh"``,
        ``"sigmoid"`` or ``None``/``"identity"`` (logits).
    init : str
        Weight initializer: ``"he"`` (default, for ReLU), ``"xavier"`` (tanh),
        ``"glorot"``, ``"small"``, ``"large"`` or ``"zeros"``. Biases start at zero.
    use_bias : bool
        False for a layer followed by ``BatchNorm``, whose beta plays the bias's part.

    Examples
    --------
    >>> import nn
    >>> layer = nn.Dense(4, 3, activation="relu")
    >>> model = nn.Sequential([layer], seed=0)
    >>> layer.W.shape, layer.b.shape
    ((4, 3), (3,))
    """

    W = _param_property("W")
    b = _param_property("b")
    dW = _param_property("W", "_grads")
    db = _param_property("b", "_grads")

    def __init__(self, n_in, n_out, activation=None, init="he", use_bias=True):
        where = "Dense"
        self.n_in = check_scalar("n_in", n_in, where=where, low=1, integer=True)
        self.n_out = check_scalar("n_out", n_out, where=where, low=1, integer=True)
        self.activation = "identity" if activation is None else activation
        check_choice("activation", self.activation, kernels.ACTIVATION_CODES, where=where)
        self.act_code = kernels.ACTIVATION_CODES[self.activation]
        self.init = check_choice("init", init, INITIALIZERS, where=where)
        self.use_bias = check_bool("use_bias", use_bias, where=where)

    def output_width(self, n_in):
        if n_in is not None and n_in != self.n_in:
            raise ValueError(f"Dense: n_in must equal the previous layer's width {n_in}; "
                             f"got n_in={self.n_in}.")
        return self.n_out

    def param_shapes(self):
        shapes = [("W", (self.n_in, self.n_out))]
        if self.use_bias:
            shapes.append(("b", (self.n_out,)))
        return shapes

    def bind(self, params, grads, buffers):
        super().bind(params, grads, buffers)
        if not self.use_bias:  # a (0,) array tells the kernels "no bias"
            empty = np.zeros(0, params["W"].dtype)
            self._params["b"] = empty
            self._grads["b"] = np.zeros(0, params["W"].dtype)

    def init_params(self, rng):
        initialize(self.init, self.n_in, self.n_out, rng, self._params["W"])
        self._params["b"][...] = 0

    def config(self):
        return {"n_in": self.n_in, "n_out": self.n_out, "activation": self.activation,
                "init": self.init, "use_bias": self.use_bias}

    def _make_work(self, n, dtype):
        Z = np.empty((n, self.n_out), dtype)
        A = Z if self.act_code == kernels.ACT_IDENTITY else np.empty_like(Z)
        return (Z, A, np.empty_like(Z), np.empty((n, self.n_in), dtype),
                np.empty((kernels.n_blocks(n), self.n_out)))

    def forward(self, X, training):
        Z, A, _, _, _ = work = self._work(X.shape[0], X.dtype, self._make_work)
        kernels.dense_forward(X, self._params["W"], self._params["b"], self.act_code, Z, A)
        self._X, self._cur = X, work
        return A

    def backward(self, dA, need_dX, l2, l1):
        """Fill dW and db; return dX (None when ``need_dX`` is False) and the penalty."""
        Z, A, dZ, dX, scratch = self._cur
        dX_out = dX if need_dX else _NO_DX[dA.dtype]
        penalty = kernels.dense_backward(
            self._X, self._params["W"], Z, A, dA, self.act_code, l2, l1, dZ,
            self._grads["W"], self._grads["b"], dX_out, scratch)
        return (dX if need_dX else None), penalty


_NO_DX = {np.dtype(t): np.zeros((0, 0), t) for t in (np.float32, np.float64)}


class Activation(Layer):
    """Elementwise activation as its own layer: ``"relu"``, ``"leaky_relu"``,
    ``"tanh"``, ``"sigmoid"`` or ``"identity"``.

    ``Dense(..., activation=name)`` fuses the same function into the dense kernel and
    saves a pass; this layer exists for ``Dense -> BatchNorm -> Activation``.
    """

    def __init__(self, name):
        self.name = check_choice("name", name, kernels.ACTIVATION_CODES, where="Activation")
        self.act_code = kernels.ACTIVATION_CODES[name]

    def config(self):
        return {"name": self.name}

    def output_width(self, n_in):
        self._width = n_in
        return n_in

    def _make_work(self, n, dtype):
        A = np.empty((n, self._width), dtype)
        return A, np.empty_like(A)

    def forward(self, X, training):
        A, dZ = work = self._work(X.shape[0], X.dtype, self._make_work)
        kernels.activation_forward(X, self.act_code, A)
        self._X, self._cur = X, work
        return A

    def backward(self, dA, need_dX, l2, l1):
        if not need_dX:
            return None, 0.0
        A, dZ = self._cur
        kernels.activation_backward(self._X, A, dA, self.act_code, dZ)
        return dZ, 0.0


#: Layer classes by name, for rebuilding a model from its JSON config.
LAYER_TYPES = {cls.__name__: cls for cls in (Dense, Activation)}
