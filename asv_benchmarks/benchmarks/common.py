"""Shared parameters, data builders, seeds, the benchmarks' base class and the
optional PyTorch import with its one training-epoch helper.

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
"""
import numpy as np

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


def torch_epoch(torch, model, optimizer, X, y, batch_size, seed=0):
    """A function running one epoch of ``model`` in PyTorch (CPU), the same loop as
    ``fit``'s: rows in a new random order each epoch (a generator seeded with ``seed``),
    mini-batches of ``batch_size`` with the last partial one kept, cross-entropy on the
    logits, one ``optimizer`` step per batch. The caller sets the thread count."""
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)

    def epoch():
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            optimizer.step()

    return epoch
