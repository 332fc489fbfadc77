"""``Sequential``: one flat parameter buffer, one flat gradient buffer, a list of layers."""
import threading

import numpy as np

import kernels

from . import _sparse
from ._layout import derived_seed, staggered_buffers
from ._threads import use_chosen_threads
from ._validation import (all_finite, check_array, check_bool, check_choice, check_dtype,
                          check_keep_prob, check_scalar, check_weights)
from .layers import LAYER_TYPES, Activation, BatchNorm, Dense, Dropout, Layer
from .losses import check_loss
from .training import fit as _train

#: Inference chunks (``batch_size=None`` in predict/evaluate): at most this many bytes
#: for the widest layer's rows, within [INFER_MIN_ROWS, INFER_MAX_ROWS] rows. Measured
#: on a 784-256-10 predict: as fast from 1024 rows up as in one chunk, 1.4x slower at 256.
INFER_CHUNK_BYTES = 4 << 20
INFER_MIN_ROWS, INFER_MAX_ROWS = 256, 8192
#: Largest model seed: 128 bits, the size NumPy recommends (``secrets.randbits(128)``);
#: a model file holds it, and ``nn.load`` refuses larger ones.
MAX_SEED = 2**128 - 1
#: ``Sequential``'s precisions: "fp32" (GEMMs in the model's dtype) or "bf16"
#: (bfloat16 products summed in float32; see the class docstring).
PRECISIONS = ("fp32", "bf16")
_bf16_warned = False


def _gemm_bf16_flag(precision, where):
    """The dense kernels' ``bf16`` argument for ``precision``: True where "bf16" and
    the CPU runs it, else None (float32, with a warning the first time)."""
    global _bf16_warned
    if precision != "bf16":
        return None
    if kernels.BF16_BACKEND == "none":
        if not _bf16_warned:
            _bf16_warned = True
            import warnings
            warnings.warn(
                f"{where}: precision='bf16', but this CPU has neither AVX512-BF16 nor "
                f"oneMKL's bfloat16 GEMM on an Intel CPU (kernels.BF16_BACKEND is "
                f"'none'); the model trains and predicts in float32.", RuntimeWarning,
                stacklevel=3)
        return None
    return True


class Sequential:
    """A stack of layers trained as one model.

    The model owns one flat parameter buffer (``params``), one flat gradient buffer
    (``grads``) and one flat buffer of non-trainable state (``buffers``); every
    layer's ``W``, ``b`` (and BatchNorm's ``gamma``, ``beta``, running statistics) are
    views into them, so an optimizer updates all parameters in one kernel call.

    Parameters
    ----------
    layers : list of Layer
        E.g. ``[nn.Dense(64, 128, activation="relu"), nn.Dense(128, 10)]``. Widths must
        chain: each ``Dense``'s ``n_in`` equals the previous layer's width.
    dtype : float32 (default) or float64
        Of parameters, activations and gradients. Inputs are converted once per call.
    seed : int
        Seeds the initializers: the same seed gives the same bits.
    precision : "fp32" (default) or "bf16"
        "bf16" (needs dtype float32): every matrix product of the Dense layers,
        forward (X @ W) and backward (X.T @ dZ, dZ @ W.T), in ``fit`` and in
        ``predict``/``evaluate``, rounds its operands to bfloat16 (round to nearest
        even) and sums the products in float32 (``kernels.gemm_bf16``); parameters,
        gradients, optimizer state, the loss, softmax and BatchNorm statistics stay
        float32. About 2x faster GEMMs on CPUs with AVX512-BF16 (AMD Zen 4 and later,
        Intel Cooper Lake, Sapphire Rapids and later); where ``kernels.BF16_BACKEND``
        is "none" the model warns once (RuntimeWarning) and computes in float32. A
        sparse input's first layer keeps float32 products. Saved with the model.

    Attributes
    ----------
    layers, dtype, seed, precision, n_features, n_outputs, params, grads, buffers
    standardizer : an ``nn.data.Standardizer`` applied to every input, or None
    optimizer : the optimizer of the last ``fit`` (None before)
    loss : the loss of the last ``fit`` (None before); ``predict`` uses its output
    """

    def __init__(self, layers, dtype=np.float32, seed=0, precision="fp32"):
        where = "Sequential"
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"{where}: layers must be a list of layers; got {layers!r}.")
        self.layers = list(layers)
        if not self.layers:
            raise ValueError(f"{where}: layers is empty; give at least one layer.")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{where}: layers[{i}] must be a layer such as nn.Dense; "
                                f"got {layer!r}.")
        if len({id(layer) for layer in self.layers}) != len(self.layers):
            raise ValueError(f"{where}: the same layer object appears twice in layers.")
        self.dtype = check_dtype(dtype, where)
        self.seed = check_scalar("seed", seed, where=where, low=0, high=MAX_SEED,
                                 integer=True)
        self._precision = check_choice("precision", precision, PRECISIONS, where=where)
        if self._precision == "bf16" and self.dtype != np.float32:
            raise ValueError(f"{where}: precision='bf16' needs dtype float32 (bfloat16 "
                             f"products summed in float32); got dtype {self.dtype.name}.")
        self._gemm_bf16 = _gemm_bf16_flag(self._precision, where)
        self.optimizer = None
        self.loss = None
        self.n_features = None
        self._standardizer = None
        # Held by fit for the whole run: a second fit (or a training-mode pass) from
        # another thread is refused instead of interleaving with it.
        self._training_lock = threading.Lock()
        self._training_state = "not training"
        width = None
        for layer in self.layers:
            if self.n_features is None and isinstance(layer, Dense):
                self.n_features = layer.n_in
            width = layer.output_width(width)
        if self.n_features is None:
            raise ValueError(f"{where}: cannot infer the input width; the layers must "
                             f"include a Dense layer.")
        if width is None:
            width = self.n_features
        self.n_outputs = width
        # Widths before the first Dense equal its n_in; tell those layers.
        width = self._widest = self.n_features
        for layer in self.layers:
            width = layer.output_width(width)
            self._widest = max(self._widest, width)
        self._allocate()
        rng = np.random.default_rng(self.seed)
        for layer in self.layers:
            layer.init_params(rng)
        self._fuse_and_seed()

    @property
    def precision(self):
        """"fp32" or "bf16", fixed at construction (``copy``/``from_config`` with
        another value make a model that computes differently)."""
        return self._precision

    def _fuse_and_seed(self):
        """Give each Dropout its seed, derived from (model seed, layer index), each
        Dense the model's GEMM precision, and fuse an Activation that follows a
        BatchNorm into the BatchNorm's kernels."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dropout):
                layer.seed = derived_seed(self.seed, i)
                layer.step = 0
            if isinstance(layer, Dense):
                layer._gemm_bf16 = self._gemm_bf16
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if isinstance(layer, BatchNorm) and isinstance(nxt, Activation):
                layer.act_code = nxt.act_code
                nxt.fused = True

    def layer_states(self):
        """Per-layer counters that are not arrays (Dropout's seed and step), as
        ``{layer index: state dict}``; a save stores it, ``set_layer_states`` restores."""
        return {i: layer.state() for i, layer in enumerate(self.layers)
                if hasattr(layer, "state")}

    def set_layer_states(self, states):
        for i, state in states.items():
            self.layers[int(i)].set_state(state)

    def _allocate(self):
        p_shapes = [layer.param_shapes() for layer in self.layers]
        b_shapes = [layer.buffer_shapes() for layer in self.layers]
        n_params = sum(int(np.prod(s)) for shapes in p_shapes for _, s in shapes)
        n_buffers = sum(int(np.prod(s)) for shapes in b_shapes for _, s in shapes)
        self.params, self.grads, self.buffers = staggered_buffers(
            [n_params, n_params, n_buffers], self.dtype)
        p_off = b_off = 0
        for layer, ps, bs in zip(self.layers, p_shapes, b_shapes):
            params, grads, buffers = {}, {}, {}
            for name, shape in ps:
                size = int(np.prod(shape))
                params[name] = self.params[p_off:p_off + size].reshape(shape)
                grads[name] = self.grads[p_off:p_off + size].reshape(shape)
                p_off += size
            for name, shape in bs:
                size = int(np.prod(shape))
                buffers[name] = self.buffers[b_off:b_off + size].reshape(shape)
                b_off += size
            layer.bind(params, grads, buffers)

    # -- passes -------------------------------------------------------------------

    def _check_input(self, X, where, name="X"):
        """X checked (numeric, 2-D, finite, the model's width) but not converted; a
        scipy.sparse X comes back as CSR (nn._sparse)."""
        if _sparse.is_sparse(X):
            return _sparse.check(self, name, X, where, None)
        return check_array(name, X, where=where, dtype=None, n_cols=self.n_features)

    def _check_X(self, X, where, name="X"):
        """X checked, standardized and converted to the model's dtype as one array (a
        scipy.sparse X: as one CSR matrix)."""
        if _sparse.is_sparse(X):
            return _sparse.check(self, name, X, where, self.dtype)
        X = self._check_input(X, where, name)
        if self.standardizer is not None:
            # Raw inputs: the model scales them with its training-set statistics.
            X = self.standardizer.transform(X)
        return check_array(name, X, where=where, dtype=self.dtype, n_cols=self.n_features)

    def _check_not_training(self, where):
        if self._training_lock.locked():
            raise RuntimeError(f"{where}: the model is training ({self._training_state}); "
                               f"a training-mode pass now would corrupt that run. Wait "
                               f"for fit to return, or train a copy (model.copy()).")

    @property
    def standardizer(self):
        """A fitted ``nn.data.Standardizer`` applied to every input (``fit``,
        ``predict``, ``evaluate``, ``forward``), or None. Set it to the one fitted on
        the training set and pass raw features everywhere; it is saved with the model."""
        return self._standardizer

    @standardizer.setter
    def standardizer(self, value):
        from .data import Standardizer
        where = "Sequential.standardizer"
        if value is not None:
            if not isinstance(value, Standardizer):
                raise TypeError(f"{where}: must be an nn.data.Standardizer or None; got "
                                f"{type(value).__name__}.")
            if value.mean_ is None:
                raise ValueError(f"{where}: the Standardizer is not fitted; call "
                                 f"fit(X_train) first.")
            if value.n_features_ != self.n_features:
                raise ValueError(f"{where}: the Standardizer was fitted on "
                                 f"{value.n_features_} features; the model takes "
                                 f"{self.n_features}.")
        self._standardizer = value

    def _forward(self, X, training):
        if _sparse.is_sparse(X):   # a checked CSR matrix (_check_X): its rows as one batch
            X = _sparse.CSRRows.of(X)
            _sparse.prepare(self.layers[0], X.nnz, self.dtype)
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def _backward(self, dout, l2, l1):
        """Fill ``grads`` from d(loss)/d(output); return the penalties' cost term."""
        penalty = 0.0
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            dout, p = self.layers[i].backward(dout, i > 0, l2, l1)
            penalty += p
        return penalty

    def penalty(self, l2=0.0, l1=0.0, m=1):
        """The regularization cost ``l2/(2m) sum ||W||^2 + l1/m sum |W|`` over Dense weights."""
        return sum(kernels.weight_penalty(layer.W, l2, l1, m)
                   for layer in self.layers if isinstance(layer, Dense))

    def forward(self, X, training=False, batch_size=None):
        """The last layer's output for X (a new array), in eval mode unless ``training``.

        Eval mode is inference (as ``predict``, in chunks of ``batch_size`` rows, safe
        from many threads). A training-mode forward keeps what ``backward`` needs
        (and, for BatchNorm and Dropout, uses batch statistics and masks); it belongs to
        one thread and refuses to run while ``fit`` trains the model.
        """
        where = "Sequential.forward"
        if not check_bool("training", training, where=where):
            return self._infer_into(X, where, batch_size, None)
        self._check_not_training(where)
        use_chosen_threads()
        X = self._check_X(X, where)
        out = self._forward(X, True)
        self._last_forward_rows = X.shape[0]
        return out.copy()

    def backward(self, dout, l2=0.0, l1=0.0):
        """Fill ``grads`` from the gradient of a loss with respect to the last output.

        Call after ``forward(X, training=True)``; ``dout`` has the output's shape.
        ``l2``/``l1`` add ``l2/m W + l1/m sign(W)`` to each Dense's dW (m = rows).
        Returns the penalties' cost term.
        """
        where = "Sequential.backward"
        self._check_not_training(where)
        use_chosen_threads()
        rows = getattr(self, "_last_forward_rows", None)
        if rows is None:
            raise RuntimeError(f"{where}: call forward(X, training=True) first.")
        dout = check_array("dout", dout, where=where, dtype=self.dtype,
                           n_cols=self.n_outputs, n_rows=rows)
        l2 = check_scalar("l2", l2, where=where, low=0.0)
        l1 = check_scalar("l1", l1, where=where, low=0.0)
        return self._backward(dout, l2, l1)

    # -- inference ----------------------------------------------------------------
    #
    # Inference never touches the layers' training buffers: each call allocates its
    # own work arrays for one chunk of rows and walks the input chunk by chunk, so any
    # number of threads can share a model, and the memory a call needs beyond its
    # result is bounded by the chunk, not by the input.

    def _chunk_rows(self, batch_size, n, where):
        if batch_size is None:
            batch_size = min(INFER_MAX_ROWS, max(INFER_MIN_ROWS, INFER_CHUNK_BYTES
                                                 // (self.dtype.itemsize * self._widest)))
        else:
            batch_size = check_scalar("batch_size", batch_size, where=where, low=1,
                                      integer=True)
        return min(batch_size, n)

    def _input_chunk(self, X, lo, hi, where, prepared):
        """Rows lo:hi of the checked input, standardized and in the model's dtype
        (as they are when X is ``prepared`` by ``_check_X``)."""
        if _sparse.is_sparse(X):
            return _sparse.chunk(X, lo, hi, self.dtype, where)
        chunk = X[lo:hi]
        if prepared:
            return chunk
        if self.standardizer is not None:
            chunk = self.standardizer.transform(chunk)
        if chunk.dtype != self.dtype or not chunk.flags.c_contiguous:
            with np.errstate(over="ignore"):  # too-large values get the clear error below
                converted = np.ascontiguousarray(chunk, dtype=self.dtype)
            if converted.dtype != chunk.dtype and not all_finite(converted):
                raise ValueError(f"{where}: X has values too large for {self.dtype}.")
            chunk = converted
        return chunk

    def _infer_chunks(self, X, where, batch_size, prepared=False):
        """Yield ``(lo, hi, output)`` for each chunk of rows of the checked input X, in
        eval mode. ``output`` is valid until the next chunk."""
        n = X.shape[0]
        rows = self._chunk_rows(batch_size, n, where)
        use_chosen_threads()
        work = [layer.infer_work(rows, self.dtype) for layer in self.layers]
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            out = xb = self._input_chunk(X, lo, hi, where, prepared)
            for layer, w in zip(self.layers, work):
                out = layer.infer(out, w)
            if not all_finite(out):
                raise ValueError(
                    f"{where}: the network's output overflowed to infinity or NaN for "
                    f"these inputs (largest |X| is "
                    f"{xb.largest_abs() if _sparse.is_csr_rows(xb) else np.abs(xb).max():.3g}"
                    f"); scale the "
                    f"inputs (model.standardizer) or check the weights.")
            yield lo, hi, out

    def _infer_into(self, X, where, batch_size, transform):
        """The eval-mode output for every row of X, one chunk at a time, passed through
        ``transform(out, dest)`` (a loss's ``output``) when given."""
        X = self._check_input(X, where)
        result = np.empty((X.shape[0], self.n_outputs), self.dtype)
        for lo, hi, out in self._infer_chunks(X, where, batch_size):
            if transform is None:
                result[lo:hi] = out
            else:
                transform(out, result[lo:hi])
        return result

    def predict(self, X, batch_size=None):
        """Predictions in eval mode for the model's loss: class probabilities for the
        cross-entropies (softmax or sigmoid), the raw output for MeanSquaredError.
        ``fit`` and ``nn.load`` set the loss; before either, set ``model.loss`` (or use
        ``forward`` for the raw output): an unknown loss is an error, not logits that
        look like probabilities.

        Runs in chunks of ``batch_size`` rows (default: up to 8192 rows, fewer for wide
        layers, so that the widest layer's chunk takes about 4 MiB); the memory used
        beyond the result is bounded by the chunk. Safe to call from many threads at once.
        X may be a ``scipy.sparse`` matrix, as in ``fit`` (never densified).
        """
        where = "Sequential.predict"
        if self.loss is None:
            raise ValueError(f"{where}: the model has no loss yet, so what its outputs "
                             f"mean is unknown; fit it, or set model.loss (e.g. "
                             f"nn.SoftmaxCrossEntropy() for probabilities), or call "
                             f"model.forward(X) for the raw outputs.")
        return self._infer_into(X, where, batch_size, check_loss(self.loss, where).output)

    def predict_classes(self, X, batch_size=None):
        """Class indices: the argmax of ``predict`` (or the output > 0 for one column)."""
        where = "Sequential.predict_classes"
        X = self._check_input(X, where)
        classes = np.empty(X.shape[0], np.int64)
        for lo, hi, out in self._infer_chunks(X, where, batch_size):
            classes[lo:hi] = out[:, 0] > 0 if out.shape[1] == 1 else out.argmax(axis=1)
        return classes

    def evaluate(self, X, y, loss=None, batch_size=None, sample_weight=None):
        """``{"loss": mean loss, "accuracy": ...}`` in eval mode (accuracy for
        classification losses). ``loss`` defaults to the loss of the last ``fit``;
        ``sample_weight`` (n,) makes the loss a weighted mean (not the accuracy).
        Runs in chunks of ``batch_size`` rows, as ``predict``; thread-safe."""
        where = "Sequential.evaluate"
        loss = self._loss_or_own(loss, where)
        X = self._check_input(X, where)
        T = loss.targets(y, self.n_outputs, X.shape[0], self.dtype, where)
        weights = None if sample_weight is None else check_weights(
            sample_weight, X.shape[0], where)
        return self._evaluate(X, T, loss, batch_size, where, weights=weights)

    def _loss_or_own(self, loss, where):
        """``loss`` checked, or the model's own (from its last ``fit`` or ``nn.load``)."""
        if loss is None:
            if self.loss is None:
                raise ValueError(f"{where}: loss is None and the model has none yet (no "
                                 f"fit or load gave it one); pass loss=, e.g. "
                                 f"nn.SoftmaxCrossEntropy().")
            loss = self.loss
        return check_loss(loss, where)

    def _evaluate(self, X, T, loss, batch_size=None, where="Sequential.evaluate",
                  prepared=False, weights=None):
        n = X.shape[0]
        rows = self._chunk_rows(batch_size, n, where)
        dout = np.empty((rows, self.n_outputs), self.dtype)
        row_loss = np.empty(rows)
        total = 0.0
        hits = scored = 0
        for lo, hi, out in self._infer_chunks(X, where, rows, prepared):
            r = hi - lo
            w = None if weights is None else weights[lo:hi]
            # A chunk's (weighted) mean times its weight: the sum over chunks divided by
            # the total weight is the mean over X.
            mean = loss.loss_and_grad(out, T[lo:hi], dout[:r], row_loss[:r], w)
            total += float(mean) * (r if w is None else float(kernels.ordered_sum(w)))
            if loss.classification:
                hits += loss.n_correct(out, T[lo:hi])
                scored += loss.n_scored(T[lo:hi])
        # Weights reach here checked: their sum is > 0.
        result = {"loss": total / (n if weights is None else kernels.ordered_sum(weights))}
        if loss.classification:
            result["accuracy"] = hits / scored
        return result

    # -- training -----------------------------------------------------------------

    #: ``nn.training.fit`` itself, so ``help`` and ``inspect`` show its real signature.
    fit = _train

    # -- structure ----------------------------------------------------------------

    def config(self):
        """The architecture as JSON-serialisable data."""
        return {"layers": [{"type": type(layer).__name__, **layer.config()}
                           for layer in self.layers],
                "dtype": self.dtype.name, "seed": self.seed, "precision": self.precision}

    @classmethod
    def from_config(cls, config):
        layers = [LAYER_TYPES[spec["type"]](**{k: v for k, v in spec.items() if k != "type"})
                  for spec in config["layers"]]
        return cls(layers, dtype=config["dtype"], seed=config["seed"],
                   precision=config.get("precision", "fp32"))

    def copy(self, dtype=None):
        """A new model with the same layers, parameters and state (cast to ``dtype``).
        A float64 copy of a "bf16" model has precision "fp32" (``gradient_check``'s)."""
        config = self.config()
        if dtype is not None:
            config["dtype"] = check_dtype(dtype, "Sequential.copy").name
            if config["dtype"] != "float32":
                config["precision"] = "fp32"
        clone = Sequential.from_config(config)
        clone.params[...] = self.params
        clone.buffers[...] = self.buffers
        clone.set_layer_states(self.layer_states())
        clone.loss = self.loss
        clone.standardizer = self.standardizer
        return clone

    def summary(self, file=None):
        """Print the layers, their output shapes and parameter counts, the dtype, the
        totals and what training set (loss, optimizer, standardizer), as Keras's
        ``model.summary()`` does; to ``file`` (default: standard output)."""
        rows = [("#", "layer", "output", "params")]
        width = self.n_features
        for i, layer in enumerate(self.layers):
            width = layer.output_width(width)
            count = sum(int(np.prod(shape)) for _, shape in layer.param_shapes())
            note = " (fused into the BatchNorm)" if getattr(layer, "fused", False) else ""
            rows.append((str(i), repr(layer) + note, f"(n, {width})", f"{count:,}"))
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        precision = self.precision
        if precision == "bf16" and self._gemm_bf16 is None:
            precision += " (computing in float32: no bf16 GEMM on this CPU)"
        lines = [f"Sequential: input (n, {self.n_features}), {self.dtype.name}, "
                 f"precision {precision}, seed {self.seed}"]
        for r in rows:
            lines.append(f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                         f"{r[3]:>{widths[3]}}")
        kib = self.params.nbytes / 1024
        lines.append(f"trainable parameters: {self.params.size:,} ({kib:,.1f} KiB "
                     f"{self.dtype.name}); non-trainable (BatchNorm running statistics): "
                     f"{self.buffers.size:,}")
        lines.append(f"loss: {self.loss!r}; optimizer: {self.optimizer!r}; standardizer: "
                     f"{'yes' if self.standardizer is not None else 'no'}")
        print("\n".join(lines), file=file)

    def __reduce__(self):
        # Pickle (and copy.deepcopy, spawn workers) by config and flat arrays: rebuilt,
        # the layers' W and b are views into params again, and no work buffer travels.
        return (_rebuild, (self.config(), self.params.copy(), self.buffers.copy(),
                           self.layer_states(), self.loss, self.optimizer,
                           self.standardizer))

    def __repr__(self):
        inner = ",\n    ".join(map(repr, self.layers))
        precision = "" if self.precision == "fp32" else f", precision={self.precision!r}"
        return (f"Sequential([\n    {inner},\n], dtype={self.dtype.name}, seed={self.seed}"
                f"{precision})")


def _rebuild(config, params, buffers, layer_states, loss, optimizer, standardizer):
    model = Sequential.from_config(config)
    model.params[...] = params
    model.buffers[...] = buffers
    model.set_layer_states(layer_states)
    model.loss, model.optimizer, model.standardizer = loss, optimizer, standardizer
    return model


def mlp(widths, activation="relu", *, batch_norm=False, keep_prob=1.0, init=None,
        output_init="he", dtype=np.float32, seed=0, where="nn.mlp", precision="fp32"):
    """A fully connected network ``widths[0] -> ... -> widths[-1]`` with logits out.

    Each hidden layer is ``Dense(activation)``, or ``Dense(use_bias=False) ->
    BatchNorm -> Activation`` with ``batch_norm``, followed by ``Dropout(keep_prob)``
    when ``keep_prob < 1``. ``init=None`` picks He for (leaky) ReLU and Xavier for the
    other activations; the output layer uses ``output_init``. ``dtype``, ``seed`` and
    ``precision`` go to ``Sequential``. The one builder behind the CLI, the
    scikit-learn estimator, tuning's objective and the benchmarks.

    >>> import nn
    >>> nn.mlp([64, 32, 10], seed=0).n_outputs
    10
    """
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"{where}: widths must be a sequence of layer widths such as "
                        f"[784, 256, 10]; got {widths!r}.")
    widths = [check_scalar(f"widths[{i}]", w, where=where, low=1, integer=True)
              for i, w in enumerate(widths)]
    if len(widths) < 2:
        raise ValueError(f"{where}: widths needs the input and output widths at least; got "
                         f"{widths}.")
    activation = check_choice("activation", activation, kernels.ACTIVATION_CODES, where=where)
    if init is None:
        init = "he" if "relu" in activation else "xavier"
    batch_norm = check_bool("batch_norm", batch_norm, where=where)
    keep_prob = check_keep_prob(keep_prob, where)
    layers = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        if batch_norm:
            layers += [Dense(a, b, init=init, use_bias=False), BatchNorm(b),
                       Activation(activation)]
        else:
            layers.append(Dense(a, b, activation=activation, init=init))
        if keep_prob < 1.0:
            layers.append(Dropout(keep_prob))
    layers.append(Dense(widths[-2], widths[-1], init=output_init))
    return Sequential(layers, dtype=dtype, seed=seed, precision=precision)
