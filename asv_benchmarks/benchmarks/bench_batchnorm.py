"""BatchNorm forward+backward (training) on (256, 1024) and (4096, 1024), float32.

``time_*`` times our kernels; ``track_bandwidth_fraction`` is the achieved bandwidth as
a fraction of a NumPy copy measured in the same run, and ``track_speedup_vs_torch`` the
ratio median(PyTorch BatchNorm1d forward+backward) / median(ours).

Bytes counted for ours (identity activation), the minimum: the forward reads Z and writes
A, the backward reads Z and dA and writes dZ: 5 * n * d * itemsize. A NumPy copy moves
2 * n * d * itemsize. The kernels stream 8 * n * d * itemsize (the statistics and the
backward's sums each take their own pass before the elementwise pass), so on one thread
about 5/8 is their ceiling on this measure when the batch does not fit in cache (the copy
is single-threaded: with 2 threads the fraction can go above it).
"""
import timeit

import numpy as np

from .common import Benchmark, import_torch

SHAPES = [(256, 1024), (4096, 1024)]


def _median(fn, repeat=15, number=5):
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat))) / number


class BatchNormFwdBwd(Benchmark):
    params = [SHAPES, [1, 2]]
    param_names = ["shape", "threads"]

    def prepare(self, shape, threads):
        import kernels
        n, d = shape
        rng = np.random.default_rng(0)
        f = np.float32
        self.Z = rng.standard_normal(shape).astype(f)
        self.dA = rng.standard_normal(shape).astype(f)
        self.gamma, self.beta = np.ones(d, f), np.zeros(d, f)
        self.rm, self.rv = np.zeros(d, f), np.ones(d, f)
        self.mean, self.inv_std = np.empty(d), np.empty(d)
        self.A, self.dZ = np.ones_like(self.Z), np.ones_like(self.Z)  # touch pages
        self.dgamma, self.dbeta = np.empty(d, f), np.empty(d, f)
        self.scratch = np.empty((kernels.batchnorm.batchnorm_scratch_rows(n), d))
        self.copy_dst = np.ones_like(self.Z)
        self.k = kernels

    def run(self):
        k = self.k
        k.batchnorm_forward_train(self.Z, self.gamma, self.beta, self.rm, self.rv, 0.9, 1e-5,
                                  k.ACT_IDENTITY, self.mean, self.inv_std, self.A, self.scratch)
        k.batchnorm_backward(self.Z, self.A, self.dA, self.gamma, self.beta, self.mean,
                             self.inv_std, k.ACT_IDENTITY, self.dZ, self.dgamma, self.dbeta,
                             self.scratch)

    def time_forward_backward(self, shape, threads):
        self.run()

    def track_bandwidth_fraction(self, shape, threads):
        t_ours = _median(self.run)
        t_copy = _median(lambda: np.copyto(self.copy_dst, self.Z))
        return (5 * self.Z.nbytes / t_ours) / (2 * self.Z.nbytes / t_copy)
    track_bandwidth_fraction.unit = "ratio"

    def track_speedup_vs_torch(self, shape, threads):
        torch = import_torch()
        torch.set_num_threads(threads)
        bn = torch.nn.BatchNorm1d(shape[1], momentum=0.1, eps=1e-5)
        Z = torch.from_numpy(self.Z).requires_grad_(True)
        dA = torch.from_numpy(self.dA)

        def theirs():
            Z.grad = None
            bn.zero_grad(set_to_none=True)
            bn(Z).backward(dA)
        theirs()
        return _median(theirs) / _median(self.run)
    track_speedup_vs_torch.unit = "ratio"
