"""One training epoch of the 784-256-256-10 ReLU MLP with SGD, and the ratio to PyTorch."""
import timeit

import numpy as np

from .common import build_mlp, import_torch, mnist_like, set_threads, torch_mlp_epoch

N_ROWS = 4096


class TrainEpoch:
    params = [[32, 64, 256, 1024], ["float32", "float64"], [1, 2]]
    param_names = ["batch", "dtype", "threads"]
    timeout = 300

    def setup(self, batch, dtype, threads):
        import nn
        set_threads(threads)
        self.batch = batch
        self.X, self.y = mnist_like(N_ROWS, dtype)
        self.model = build_mlp(dtype)
        self.loss = nn.SoftmaxCrossEntropy()
        self.opt = nn.SGD(lr=0.01)
        self.run()  # compile or load the cache, allocate work buffers: never timed

    def run(self):
        self.model.fit(self.X, self.y, loss=self.loss, optimizer=self.opt, epochs=1,
                       batch_size=self.batch)

    def time_epoch(self, batch, dtype, threads):
        self.run()

    def peakmem_epoch(self, batch, dtype, threads):
        self.run()


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

    theirs = torch_mlp_epoch(torch, X, y, batch, 0.01, threads)
    ours(), theirs()  # warm up both
    t_ours = np.median(timeit.repeat(ours, number=1, repeat=repeat))
    t_theirs = np.median(timeit.repeat(theirs, number=1, repeat=repeat))
    return t_theirs / t_ours, N_ROWS / t_ours, N_ROWS / t_theirs


class VsTorch:
    params = [[32, 64, 256, 1024], [1, 2]]
    param_names = ["batch", "threads"]
    timeout = 600

    def setup(self, batch, threads):
        import_torch()

    def track_speedup_sgd_epoch(self, batch, threads):
        return speedup_vs_torch(batch, "float32", threads)[0]

    track_speedup_sgd_epoch.unit = "ratio"
