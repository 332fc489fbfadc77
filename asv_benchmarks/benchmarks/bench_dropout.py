"""Dropout forward (training) on (4096, 1024), float32.

``track_bandwidth_fraction``: achieved bandwidth as a fraction of a NumPy copy in the same
run; ours reads X and writes out (float32) and the bool mask: 9 * n * d bytes against the
copy's 8 * n * d. ``track_speedup_vs_torch``: median(torch.nn.Dropout(p=1-keep_prob) in
training mode) / median(ours).
"""
import timeit

import numpy as np

from .common import import_torch, set_threads

SHAPE = (4096, 1024)
KEEP_PROB = 0.8


def _median(fn, repeat=15, number=5):
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat))) / number


class DropoutForward:
    params = [[1, 2]]
    param_names = ["threads"]

    def setup(self, threads):
        import kernels
        set_threads(threads)
        self.X = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
        self.out = np.ones_like(self.X)
        self.mask = np.ones(SHAPE, np.bool_)
        self.copy_dst = np.ones_like(self.X)
        self.k = kernels
        self.step = 0
        self.run()

    def run(self):
        self.step += 1
        self.k.dropout_forward(self.X, KEEP_PROB, 1234, self.step, self.mask, self.out)

    def time_dropout_forward(self, threads):
        self.run()

    def track_bandwidth_fraction(self, threads):
        t_ours = _median(self.run)
        t_copy = _median(lambda: np.copyto(self.copy_dst, self.X))
        moved = self.X.nbytes + self.out.nbytes + self.mask.nbytes
        return (moved / t_ours) / (2 * self.X.nbytes / t_copy)
    track_bandwidth_fraction.unit = "ratio"

    def track_speedup_vs_torch(self, threads):
        torch = import_torch()
        torch.set_num_threads(threads)
        drop = torch.nn.Dropout(p=1.0 - KEEP_PROB).train()
        X = torch.from_numpy(self.X)

        def theirs():
            drop(X)
        theirs()
        return _median(theirs) / _median(self.run)
    track_speedup_vs_torch.unit = "ratio"
