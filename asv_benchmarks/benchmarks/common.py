"""Shared parameters, data builders, seeds, the benchmarks' base class, and the
optional PyTorch and JAX imports with their training-epoch helpers.

Every benchmark's ``setup`` calls its kernel (or step) once, so compilation or the
Numba cache load and the first touch of every output page are never timed
(``Benchmark.setup`` does it for the classes built on it). The sizes are those of the
reference workload, the 784-256-256-10 ReLU MLP, at the batch sizes of ``BATCHES``.

``kernels`` and ``nn`` are imported here, at module level, and one serial kernel is
called, which initializes Numba's JIT: with ``"launch_method": "forkserver"``
(asv.conf.json) asv imports the benchmark modules once and forks a process per
benchmark, so each one starts with both done (0.4 s and 0.2 s saved per benchmark).
Neither starts Numba's thread pool (the first parallel call does, in the forked
process), so forking after them is safe.

``compare.py``'s PyTorch and JAX worker processes set ``NUMBA_NN_BENCH_PEERS_ONLY=1``
before importing this module: they use only the peers' helpers (``torch_mlp``,
``torch_epoch``, ``jax_mlp``, ``jax_epoch``, ``mnist_like``), and then neither Numba nor
our BLAS (whose OpenMP runtime would sit beside PyTorch's) is loaded in their process.
The names that need ``nn`` (``build_mlp``, ``set_threads``, ``Benchmark``) are not
usable there.
"""
import os

import numpy as np

#: Set to "1" in a process that benchmarks a peer library only (see the docstring).
PEERS_ONLY_ENV = "NUMBA_NN_BENCH_PEERS_ONLY"

if os.environ.get(PEERS_ONLY_ENV) != "1":
    import kernels
    import nn

    kernels.n_blocks(1)  # initializes Numba's JIT once, before asv forks (serial: no threads)

#: The reference workload: an MNIST-shaped MLP.
MLP_WIDTHS = (784, 256, 256, 10)

#: The parameter axes every benchmark of the suite spans.
BATCHES = [32, 64, 256, 1024]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]

#: The MLP's dense layers by name: (n_in, n_out, activation).
LAYERS = {
    "784x256": (784, 256, "relu"),
    "256x256": (256, 256, "relu"),
    "256x10": (256, 10, "identity"),
}
#: Width of the hidden layers (activations, dropout and batch sums act on it).
HIDDEN = MLP_WIDTHS[1]
#: Parameters of the MLP (weights and biases): the size of the optimizer's buffers.
MLP_PARAMS = sum(a * b + b for a, b in zip(MLP_WIDTHS[:-1], MLP_WIDTHS[1:]))

_base_cache = {}


def random_array(shape, dtype="float32", seed=0):
    """A fresh array of standard normals (a copy: callers may write into it).

    The float32 draws are cached per (shape, seed) in this process, so setups that
    ask for the same data again only pay for the copy.
    """
    shape = tuple(shape)
    base = _base_cache.get((shape, seed))
    if base is None:
        base = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
        _base_cache[shape, seed] = base
    return base.astype(dtype)  # always a copy


def dtype_scalar(dtype, value):
    """``value`` as a NumPy scalar of ``dtype`` (so a float32 array times it stays float32)."""
    return np.dtype(dtype).type(value)


def random_labels(n, n_classes=MLP_WIDTHS[-1], seed=0):
    """Class labels 0 .. n_classes - 1, int64."""
    return np.random.default_rng(seed).integers(0, n_classes, n)


def mnist_like(n, dtype="float32", seed=0):
    """Standardized random inputs of MNIST's width and labels 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, MLP_WIDTHS[0])).astype(dtype)
    y = rng.integers(0, MLP_WIDTHS[-1], n)
    return X, y


def build_mlp(dtype="float32", seed=0, **options):
    """The 784-256-256-10 MLP, ReLU hidden layers, logits out, built by ``nn.mlp``
    (``options``: its ``batch_norm`` and ``keep_prob``)."""
    return nn.mlp(MLP_WIDTHS, activation="relu", dtype=np.dtype(dtype), seed=seed,
                  **options)


def reset_peak_rss():
    """Reset the process's peak resident set size to its current size (Linux >= 4.0:
    ``/proc/self/clear_refs``); False where that is not possible.

    asv's ``peakmem_`` is the peak over the whole process, setup included, and the
    setup's transient arrays (the data's float64 draws, the first fit's one-off
    buffers) would hide a few megabytes allocated later. Called at the end of a setup,
    it makes ``peakmem_`` the peak reached from there through the benchmark call.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def set_threads(threads):
    """Apply a thread count to Numba and BLAS; NotImplementedError (asv: skip) if absent."""
    import numba
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise NotImplementedError("fewer cores than threads")
    nn.set_num_threads(threads)


class Benchmark:
    """Base class of the suite's parametrized benchmarks.

    ``params``/``param_names`` default to the suite's axes (``BATCHES``, ``DTYPES``,
    ``THREADS``); a subclass with other axes keeps "threads" as one of them. ``setup``
    applies the thread count (``set_threads``: NotImplementedError, which asv reports as
    a skip, beyond the machine's threads), calls ``prepare`` to build the benchmark's
    data, then ``warm_up``: by default every ``time_*`` method once, in the order the
    class defines them, so compilation (or the Numba cache load) and the first touch of
    every output page are never timed. asv names benchmarks by class and method, so
    subclasses keep theirs; this class holds no benchmark itself.
    """

    params = [BATCHES, DTYPES, THREADS]
    param_names = ["batch", "dtype", "threads"]

    def setup(self, *params):
        set_threads(params[self.param_names.index("threads")])
        self.prepare(*params)
        self.warm_up(*params)

    def prepare(self, *params):
        """Build the arrays and objects the benchmark methods use."""

    def warm_up(self, *params):
        """Run each ``time_*`` method once (compile or load, touch pages): never timed."""
        seen = set()
        for klass in reversed(type(self).__mro__):
            for name in vars(klass):
                if name.startswith("time_") and name not in seen:
                    seen.add(name)
                    getattr(self, name)(*params)


def import_torch():
    """PyTorch, or NotImplementedError so asv skips the comparison when it is absent."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("PyTorch is not installed") from None
    return torch


def torch_mlp(torch, dtype="float32", seed=0, batch_norm=False, keep_prob=1.0):
    """The PyTorch twin of ``build_mlp``, in training mode: Linear -> ReLU hidden layers,
    or with ``batch_norm`` Linear(bias=False) -> BatchNorm1d -> ReLU, followed by
    Dropout(1 - keep_prob) when ``keep_prob < 1``; logits out. Seeded with ``seed``."""
    torch.manual_seed(seed)
    w = MLP_WIDTHS
    mods = []
    for a, b in zip(w[:-2], w[1:-1]):
        if batch_norm:
            mods += [torch.nn.Linear(a, b, bias=False), torch.nn.BatchNorm1d(b),
                     torch.nn.ReLU()]
        else:
            mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        if keep_prob < 1.0:
            mods.append(torch.nn.Dropout(1.0 - keep_prob))
    mods.append(torch.nn.Linear(w[-2], w[-1]))
    torch_dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    return torch.nn.Sequential(*mods).to(torch_dtype).train()


def torch_epoch(torch, model, optimizer, X, y, batch_size, seed=0, autocast=False):
    """A function running one epoch of ``model`` in PyTorch (CPU), the same loop as
    ``fit``'s: rows in a new random order each epoch (a generator seeded with ``seed``),
    mini-batches of ``batch_size`` with the last partial one kept, cross-entropy on the
    logits, one ``optimizer`` step per batch. ``autocast``: the forward and the loss
    under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (PyTorch's mixed precision),
    the backward and the step outside. The caller sets the thread count."""
    import contextlib
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)

    def precision():
        return (torch.autocast("cpu", dtype=torch.bfloat16) if autocast
                else contextlib.nullcontext())

    def epoch():
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            optimizer.zero_grad(set_to_none=True)
            with precision():
                loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()

    return epoch


def import_jax():
    """``(jax, optax)``, or NotImplementedError (asv: skip) when either is absent."""
    try:
        import jax
        import optax
    except ImportError as exc:
        raise NotImplementedError(f"JAX or optax is not installed ({exc})") from None
    return jax, optax


def jax_mlp(jax, seed=0, batch_norm=False):
    """The JAX twin of ``build_mlp`` (float32): ``(params, state)``, two pytrees.

    ``params`` is a list with one dict per layer: ``{"W", "b"}`` for Dense layers, and
    with ``batch_norm`` ``{"W", "gamma", "beta"}`` for the hidden ones (no bias before a
    BatchNorm, as ``nn.mlp`` builds them). ``state`` holds each BatchNorm's running
    ``mean`` and ``var`` (start 0 and 1; empty without ``batch_norm``). Weights are He
    normal (std sqrt(2 / fan_in), the output layer's too, like ``nn.mlp``'s default),
    biases and beta 0, gamma 1, drawn with NumPy's generator seeded by ``seed``.
    """
    jnp = jax.numpy
    rng = np.random.default_rng(seed)
    w = MLP_WIDTHS
    params, state = [], []
    for i, (a, b) in enumerate(zip(w[:-1], w[1:])):
        W = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
        if batch_norm and i < len(w) - 2:
            params.append({"W": W, "gamma": np.ones(b, np.float32),
                           "beta": np.zeros(b, np.float32)})
            state.append({"mean": np.zeros(b, np.float32), "var": np.ones(b, np.float32)})
        else:
            params.append({"W": W, "b": np.zeros(b, np.float32)})
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, state)


def jax_train_step(jax, optax, optimizer, batch_norm=False, keep_prob=1.0, momentum=0.9,
                   eps=1e-5):
    """One ``jax.jit``-compiled training step of ``jax_mlp``'s network, in training mode:

    ``step(params, opt_state, state, key, X, y, idx) -> (params, opt_state, state, key)``

    gathers the batch ``X[idx], y[idx]`` (inside the compiled step, as ``fit`` and
    ``torch_epoch`` gather theirs), runs Dense -> [BatchNorm] -> ReLU -> [Dropout]
    hidden layers and a Dense output, the mean softmax cross-entropy on integer labels
    (``optax.softmax_cross_entropy_with_integer_labels``), its gradient, and one
    ``optimizer`` (an optax GradientTransformation) update. BatchNorm normalizes with
    the batch's mean and biased variance and updates the running statistics as ``nn``'s
    does (``running = momentum * running + (1 - momentum) * batch``, biased variance).
    Dropout keeps each unit with probability ``keep_prob`` and scales kept ones by
    1 / keep_prob; its key is split from ``key`` every step, and the new ``key``
    returned. The params, optimizer state, BatchNorm state and key are donated.
    """
    jnp = jax.numpy

    def forward(params, state, x, key):
        new_state = []
        h = x
        for i, layer in enumerate(params[:-1]):
            z = h @ layer["W"]
            if batch_norm:
                mu = jnp.mean(z, axis=0)
                var = jnp.mean(jnp.square(z - mu), axis=0)
                z = (z - mu) * jax.lax.rsqrt(var + eps) * layer["gamma"] + layer["beta"]
                old = state[i]
                mu, var = jax.lax.stop_gradient(mu), jax.lax.stop_gradient(var)
                new_state.append({"mean": momentum * old["mean"] + (1 - momentum) * mu,
                                  "var": momentum * old["var"] + (1 - momentum) * var})
            else:
                z = z + layer["b"]
            h = jax.nn.relu(z)
            if keep_prob < 1.0:
                key, sub = jax.random.split(key)
                keep = jax.random.bernoulli(sub, keep_prob, h.shape)
                h = jnp.where(keep, h * (1.0 / keep_prob), 0.0)
        logits = h @ params[-1]["W"] + params[-1]["b"]
        return logits, new_state

    def loss_fn(params, state, x, y, key):
        logits, new_state = forward(params, state, x, key)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, new_state

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(params, opt_state, state, key, X, y, idx):
        key, sub = jax.random.split(key)
        (_, new_state), grads = grad_fn(params, state, X[idx], y[idx], sub)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_state, key

    return jax.jit(step, donate_argnums=(0, 1, 2, 3))


def jax_epoch(jax, optax, X, y, batch_size, lr=1e-3, seed=0, batch_norm=False,
              keep_prob=1.0):
    """A function running one epoch of ``jax_mlp``'s network (CPU) with
    ``optax.adam(lr)`` (its defaults, those of ``nn.Adam`` and ``torch.optim.Adam``),
    the same loop as ``fit``'s and ``torch_epoch``'s: rows in a new random order each
    epoch (NumPy's generator seeded with ``seed``), mini-batches of ``batch_size`` with
    the last partial one kept (a second shape: compiled once more), one call of the
    compiled ``jax_train_step`` per batch. It waits for the last step before returning,
    so an epoch's time includes all of its work. The parameters live in the closure
    (``epoch.params()`` returns them). Thread counts are set by the caller, in the
    environment before JAX is imported (see ``compare.py``).
    """
    jnp = jax.numpy
    params, state = jax_mlp(jax, seed=seed, batch_norm=batch_norm)
    optimizer = optax.adam(lr)
    step = jax_train_step(jax, optax, optimizer, batch_norm=batch_norm, keep_prob=keep_prob)
    Xd = jnp.asarray(X)
    yd = jnp.asarray(np.asarray(y, dtype=np.int32))
    n = X.shape[0]
    order_rng = np.random.default_rng(seed)
    box = {"params": params, "opt_state": optimizer.init(params), "state": state,
           "key": jax.random.PRNGKey(seed)}

    def epoch():
        order = order_rng.permutation(n).astype(np.int32)
        p, o, s, k = box["params"], box["opt_state"], box["state"], box["key"]
        for lo in range(0, n, batch_size):
            p, o, s, k = step(p, o, s, k, Xd, yd, order[lo:lo + batch_size])
        jax.block_until_ready((p, o, s, k))
        box.update(params=p, opt_state=o, state=s, key=k)

    epoch.params = lambda: box["params"]
    epoch.state = lambda: box["state"]
    return epoch
