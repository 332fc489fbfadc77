"""Training the 784-256-256-10 ReLU MLP (softmax cross-entropy, Adam) through
``Sequential.fit``, and the SGD epoch's ratio to PyTorch.

- ``TrainStep``: one step (forward, loss, backward, Adam update): ``fit`` on exactly
  ``batch`` rows with ``epochs=1``. Includes fit's per-call work (argument checks, the
  copy of the parameters kept for a divergence, the row order).
- ``TrainEpoch``: one epoch of 4096 rows (4096 / batch steps). ``peakmem_epochs_1`` and
  ``peakmem_epochs_2`` run one and two epochs on the same setup: equal peak memory shows
  that the steps after the first allocate nothing that stays (work buffers are made once
  per batch size and reused). The setup resets the process's peak RSS at its end
  (``reset_peak_rss``), so its own transient arrays do not mask what the run adds: a
  32 KB array kept per step (4 MB an epoch at batch 32) shows as a 4 MB difference.
- ``VsTorch``: median(PyTorch SGD epoch) / median(ours), float32 (slow).

Every ``setup`` runs the step or epoch once, so compilation (or the Numba cache load)
and the work buffers' allocation are never timed.
"""
import timeit

import numpy as np

import nn

from .common import (
    BATCHES, THREADS, Benchmark, build_mlp, import_torch, mnist_like, reset_peak_rss,
    set_threads, torch_epoch, torch_mlp,
)

N_ROWS = 4096


class _Fit(Benchmark):
    """A model, data and Adam set up for ``fit``; ``run(epochs)`` trains in place."""
    n_rows = None  # rows of data; None: one batch

    def prepare(self, batch, dtype, threads):
        self.batch = batch
        self.X, self.y = mnist_like(self.n_rows or batch, dtype)
        self.model = build_mlp(dtype)
        self.loss = nn.SoftmaxCrossEntropy()
        self.opt = nn.Adam(lr=1e-3)

    def warm_up(self, batch, dtype, threads):
        self.run()  # compile or load the cache, allocate work buffers: never timed
        reset_peak_rss()  # peakmem_ from here: the run, not the setup's transients

    def run(self, epochs=1):
        self.model.fit(self.X, self.y, loss=self.loss, optimizer=self.opt, epochs=epochs,
                       batch_size=self.batch)


class TrainStep(_Fit):
    def time_step(self, batch, dtype, threads):
        self.run()

    def peakmem_step(self, batch, dtype, threads):
        self.run()


class TrainEpoch(_Fit):
    n_rows = N_ROWS
    timeout = 300

    def time_epoch(self, batch, dtype, threads):
        self.run()

    def peakmem_epochs_1(self, batch, dtype, threads):
        self.run(epochs=1)

    def peakmem_epochs_2(self, batch, dtype, threads):
        self.run(epochs=2)


def speedup_vs_torch(batch, dtype, threads, repeat=5):
    """median(PyTorch epoch time) / median(our epoch time), measured here and now."""
    import nn
    torch = import_torch()
    set_threads(threads)
    X, y = mnist_like(N_ROWS, dtype)
    model = build_mlp(dtype)
    loss, opt = nn.SoftmaxCrossEntropy(), nn.SGD(lr=0.01)

    def ours():
        model.fit(X, y, loss=loss, optimizer=opt, epochs=1, batch_size=batch)

    torch.set_num_threads(threads)
    torch_model = torch_mlp(torch, dtype)
    sgd = torch.optim.SGD(torch_model.parameters(), lr=0.01)
    theirs = torch_epoch(torch, torch_model, sgd, X, y, batch)
    ours(), theirs()  # warm up both
    t_ours = np.median(timeit.repeat(ours, number=1, repeat=repeat))
    t_theirs = np.median(timeit.repeat(theirs, number=1, repeat=repeat))
    return t_theirs / t_ours, N_ROWS / t_ours, N_ROWS / t_theirs


class VsTorch(Benchmark):
    params = [BATCHES, THREADS]
    param_names = ["batch", "threads"]
    timeout = 600

    def prepare(self, batch, threads):
        import_torch()

    def track_speedup_sgd_epoch(self, batch, threads):
        return speedup_vs_torch(batch, "float32", threads)[0]

    track_speedup_sgd_epoch.unit = "ratio"
