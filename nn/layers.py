"""Layers: shapes, parameters (views into the model's flat buffers) and work buffers.

A layer never holds a formula: its forward and backward call one kernel each. Training
work buffers are allocated once per batch size and reused, so a training step allocates
nothing after its first batch. Inference (``infer_work``/``infer``) touches no layer
state: each call brings its own buffers, so one model serves many threads at once.
"""
import numpy as np

import kernels

from . import _sparse
from ._layout import cached_work
from ._validation import check_bool, check_choice, check_keep_prob, check_scalar
from .initializers import INITIALIZERS, initialize


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

    def infer_work(self, n_rows, dtype):
        """The work arrays ``infer`` needs for up to ``n_rows`` rows (None for none).

        Each inference call allocates its own, so calls from several threads at once
        never share a buffer.
        """
        return None

    def infer(self, X, work):
        """Eval-mode output for X using ``work`` from ``infer_work``; reads the
        parameters and writes nothing but ``work``. The default passes X through."""
        return X

    def _work(self, n_rows, dtype, make):
        return cached_work(self.__dict__.setdefault("_work_cache", {}), n_rows, dtype, make)

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
    #: The ``bf16`` argument of the dense kernels: None (GEMMs in the model's dtype), or
    #: True (bfloat16 products, float32 sums) when the model's precision is "bf16" and
    #: the CPU runs it (``Sequential`` sets it; forward, backward and infer use it).
    _gemm_bf16 = None

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
        if isinstance(X, _sparse.CSRRows):  # a sparse input's batch: the CSR kernels
            return _sparse.dense_forward(self, X)
        Z, A, _, _, _ = work = self._work(X.shape[0], X.dtype, self._make_work)
        kernels.dense_forward(X, self._params["W"], self._params["b"], self.act_code, Z, A,
                              kernels.parallel_arg(Z.size), self._gemm_bf16)
        self._X, self._cur = X, work
        return A

    def infer_work(self, n_rows, dtype):
        return np.empty((n_rows, self.n_out), dtype)

    def infer(self, X, work):
        if isinstance(X, _sparse.CSRRows):
            return _sparse.dense_infer(self, X, work)
        A = work[:X.shape[0]]  # Z and A in one buffer: the bias-activation pass is elementwise
        kernels.dense_forward(X, self._params["W"], self._params["b"], self.act_code, A, A,
                              kernels.parallel_arg(A.size), self._gemm_bf16)
        return A

    def backward(self, dA, need_dX, l2, l1):
        """Fill dW and db; return dX (None when ``need_dX`` is False) and the penalty."""
        if isinstance(self._X, _sparse.CSRRows):   # the first layer: no dX
            return _sparse.dense_backward(self, dA, l2, l1)
        Z, A, dZ, dX, scratch = self._cur
        dX_out = dX if need_dX else _NO_DX[dA.dtype]
        penalty = kernels.dense_backward(
            self._X, self._params["W"], Z, A, dA, self.act_code, l2, l1, dZ,
            self._grads["W"], self._grads["b"], dX_out, scratch, kernels.parallel_arg(Z.size),
            self._gemm_bf16)
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

    #: True when Sequential fused this activation into the BatchNorm before it.
    fused = False

    def infer_work(self, n_rows, dtype):
        return None if self.fused else np.empty((n_rows, self._width), dtype)

    def infer(self, X, work):
        if self.fused:
            return X
        A = work[:X.shape[0]]
        kernels.activation_forward(X, self.act_code, A, kernels.parallel_arg(X.size))
        return A

    def forward(self, X, training):
        if self.fused:
            return X
        A, dZ = work = self._work(X.shape[0], X.dtype, self._make_work)
        kernels.activation_forward(X, self.act_code, A, kernels.parallel_arg(X.size))
        self._X, self._cur = X, work
        return A

    def backward(self, dA, need_dX, l2, l1):
        if not need_dX:
            return None, 0.0
        if self.fused:
            return dA, 0.0
        A, dZ = self._cur
        kernels.activation_backward(self._X, A, dA, self.act_code, dZ,
                                    kernels.parallel_arg(self._X.size))
        return dZ, 0.0


def gives_one_row_batch(n, batch_size):
    """Whether mini-batches of ``batch_size`` over ``n`` rows include a batch of one row,
    on which BatchNorm cannot train (its variance is 0 by definition): ``fit`` and the
    estimator read the rule here; ``BatchNorm.forward`` refuses such a batch."""
    bs = min(batch_size, n)
    return bs == 1 or n % bs == 1


class BatchNorm(Layer):
    """Batch normalization of each of ``n`` features over the rows of a batch.

    Training: ``A = gamma * (Z - mean) / sqrt(var + eps) + beta`` with the batch mean and
    the *biased* batch variance, and ``running = momentum * running + (1 - momentum) *
    batch`` for the mean and the biased variance. Eval mode (``predict``, ``evaluate``,
    ``forward(training=False)``) uses ``running_mean`` and ``running_var`` instead.

    Use it after ``Dense(..., use_bias=False)``: beta plays the bias's part. When an
    ``Activation`` layer follows, ``Sequential`` fuses the activation into this layer's
    kernels and the Activation layer passes its input through.

    Parameters
    ----------
    n : int
        Number of features (the previous layer's width).
    momentum : float in [0, 1]
        Weight of the old running value. PyTorch's ``momentum=0.1`` is ``0.9`` here.
    eps : float > 0
        Added to the variance. Keeps a zero-variance feature finite (it maps to beta).

    Attributes
    ----------
    gamma, beta : views into ``model.params`` (start at 1 and 0), trained.
    running_mean, running_var : views into ``model.buffers`` (start at 0 and 1). Unlike
        PyTorch, ``running_var`` holds the biased variance; PyTorch's value is
        ``running_var * m / (m - 1)`` for batches of m rows.

    Raises
    ------
    ValueError
        In training mode on a batch of one row (its variance is 0 by definition), as
        PyTorch does; ``fit`` checks its batch sizes for this before training starts.
    """

    gamma = _param_property("gamma")
    beta = _param_property("beta")
    dgamma = _param_property("gamma", "_grads")
    dbeta = _param_property("beta", "_grads")
    running_mean = _param_property("running_mean", "_buffers")
    running_var = _param_property("running_var", "_buffers")

    def __init__(self, n, momentum=0.9, eps=1e-5):
        where = "BatchNorm"
        self.n = check_scalar("n", n, where=where, low=1, integer=True)
        self.momentum = check_scalar("momentum", momentum, where=where, low=0.0, high=1.0)
        self.eps = check_scalar("eps", eps, where=where, low=0.0, low_open=True)
        self.act_code = kernels.ACT_IDENTITY  # set by Sequential when it fuses

    def output_width(self, n_in):
        if n_in is not None and n_in != self.n:
            raise ValueError(f"BatchNorm: n must equal the previous layer's width {n_in}; "
                             f"got n={self.n}.")
        return self.n

    def param_shapes(self):
        return [("gamma", (self.n,)), ("beta", (self.n,))]

    def buffer_shapes(self):
        return [("running_mean", (self.n,)), ("running_var", (self.n,))]

    def init_params(self, rng):
        self._params["gamma"][...] = 1
        self._params["beta"][...] = 0
        self._buffers["running_mean"][...] = 0
        self._buffers["running_var"][...] = 1

    def config(self):
        return {"n": self.n, "momentum": self.momentum, "eps": self.eps}

    def _make_work(self, n, dtype):
        A = np.empty((n, self.n), dtype)
        return (A, np.empty_like(A), np.empty(self.n), np.empty(self.n),
                np.empty((kernels.batchnorm.batchnorm_scratch_rows(n), self.n)))

    def infer_work(self, n_rows, dtype):
        return np.empty((n_rows, self.n), dtype), np.empty(self.n)

    def infer(self, X, work):
        A, inv_std = work
        A = A[:X.shape[0]]
        p, b = self._params, self._buffers
        kernels.batchnorm_forward_infer(
            X, p["gamma"], p["beta"], b["running_mean"], b["running_var"], self.eps,
            self.act_code, inv_std, A, kernels.parallel_arg(X.size))
        return A

    def forward(self, X, training):
        if not training:
            return self.infer(X, self.infer_work(X.shape[0], X.dtype))
        if X.shape[0] < 2:
            raise ValueError(
                f"BatchNorm: expected more than 1 value per feature when training; got "
                f"a batch of {X.shape[0]} row. Use a batch of 2 or more rows, or eval "
                f"mode (training=False).")
        A, dZ, mean, inv_std, scratch = work = self._work(X.shape[0], X.dtype, self._make_work)
        p, b = self._params, self._buffers
        kernels.batchnorm_forward_train(
            X, p["gamma"], p["beta"], b["running_mean"], b["running_var"],
            self.momentum, self.eps, self.act_code, mean, inv_std, A, scratch,
            kernels.parallel_arg(X.size))
        self._X, self._cur = X, work
        return A

    def backward(self, dA, need_dX, l2, l1):
        """Fill dgamma and dbeta; return dZ (None when ``need_dX`` is False) and 0.0:
        gamma and beta are not penalized."""
        A, dZ, mean, inv_std, scratch = self._cur
        p, g = self._params, self._grads
        kernels.batchnorm_backward(self._X, A, dA, p["gamma"], p["beta"], mean, inv_std,
                                   self.act_code, dZ, g["gamma"], g["beta"], scratch,
                                   kernels.parallel_arg(self._X.size))
        return (dZ if need_dX else None), 0.0


class Dropout(Layer):
    """Inverted dropout: in training, keep each activation with probability
    ``keep_prob`` and scale the kept ones by ``1 / keep_prob``; identity in eval mode.

    The mask of element (i, j) is ``uniform_from_counter(seed, step, i * d + j) <
    keep_prob``: a hash, so the same bits for any thread count and on every run.
    ``seed`` is derived by ``Sequential`` from the model seed and the layer's index;
    ``step`` counts training forwards (one increment each). ``state()`` returns both,
    ``set_state`` restores them (``Sequential.copy`` carries them over).

    Parameters
    ----------
    keep_prob : float in (0, 1]
        Probability of keeping an activation; 1 makes the layer the identity.

    Raises
    ------
    ValueError
        When keep_prob is outside (0, 1].
    """

    def __init__(self, keep_prob=0.5):
        self.keep_prob = check_keep_prob(keep_prob, "Dropout")
        self.seed = 0
        self.step = 0

    def config(self):
        return {"keep_prob": self.keep_prob}

    def state(self):
        """``{"seed": int, "step": int}``: what a save needs to resume the same masks."""
        return {"seed": int(self.seed), "step": int(self.step)}

    def set_state(self, state):
        self.seed = int(state["seed"])
        self.step = int(state["step"])

    def output_width(self, n_in):
        self._width = n_in
        return n_in

    def _make_work(self, n, dtype):
        out = np.empty((n, self._width), dtype)
        return out, np.empty_like(out), np.empty(out.shape, np.bool_)

    def forward(self, X, training):
        if not training or self.keep_prob == 1.0:
            self._cur = None
            return X
        out, dX, mask = work = self._work(X.shape[0], X.dtype, self._make_work)
        kernels.dropout_forward(X, self.keep_prob, self.seed, self.step, mask, out,
                                kernels.parallel_arg(X.size))
        self.step += 1
        self._cur = work
        return out

    def backward(self, dA, need_dX, l2, l1):
        if not need_dX:
            return None, 0.0
        if self._cur is None:
            return dA, 0.0
        out, dX, mask = self._cur
        kernels.dropout_backward(dA, mask, self.keep_prob, dX, kernels.parallel_arg(dA.size))
        return dX, 0.0


#: Layer classes by name, for rebuilding a model from its JSON config.
LAYER_TYPES = {cls.__name__: cls for cls in (Dense, Activation, BatchNorm, Dropout)}


def is_library_layer(layer):
    """Whether ``layer`` is one of LAYER_TYPES exactly (not a subclass of the user's):
    what a config can rebuild and the compiled plan can run."""
    return LAYER_TYPES.get(type(layer).__name__) is type(layer)
