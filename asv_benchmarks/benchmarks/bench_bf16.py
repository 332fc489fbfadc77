"""The bfloat16 GEMM (``kernels.bf16.gemm_bf16``) against our float32 GEMM
(``kernels.blas.gemm``) on a training step's shapes, float32 in and out.

Shapes (name: op(A) @ op(B), the MLP 784-256-256-10):

- ``nn_256x784x256``, ``nn_1024x784x256``: the first layer's forward X @ W (batch 256,
  1024); ``nn_1024x256x256``: the second layer's, H @ W2 (batch 1024).
- ``tn_784x256_k256``, ``tn_784x256_k1024``: the weight gradient X.T @ dZ (784 x 256,
  summed over a batch of 256 or 1024).
- ``nt_256x784x256``, ``nt_1024x784x256``: the input gradient dZ @ W.T.

``time_bf16`` and ``time_sgemm`` time one call each (the bf16 one includes the packing
of both operands to bf16, as a training step pays it every call); ``track_gflops_*`` are
2 m n k / median time, and ``track_speedup_vs_sgemm`` median(SGEMM) / median(bf16) from
rounds of the two taken in turn (on a shared, noisy machine the ratio of interleaved
medians is steadier than two separate timings). The bf16 backend is the one
``kernels.bf16.BF16_BACKEND`` chose ("none": emulation, slower than SGEMM).

Training (``TrainBf16``): one epoch of 4096 MNIST-shaped rows through ``fit`` with
Adam, for the 784-256-256-10 ReLU MLP ("mlp") and the same with BatchNorm and Dropout
(keep 0.8, "mlp+bn+dropout"), with ``precision="bf16"`` (``time_epoch_bf16``) and the
same model in float32 (``time_epoch_fp32``); ``track_speedup_vs_fp32`` is the ratio of
their interleaved medians and ``track_speedup_vs_torch_autocast`` that against PyTorch's
epoch under ``torch.autocast("cpu", dtype=torch.bfloat16)`` with fused Adam, measured in
this process (PyTorch's OpenMP beside ours: ``python -m asv_benchmarks.compare
--contenders ours ours-bf16 torch-bf16 torch-fused-bf16`` runs each in its own process,
the figures to quote).

With 2 threads, gemm_bf16 runs on Numba's threads (libgomp): under the
``OMP_WAIT_POLICY=PASSIVE`` that ``kernels`` sets beside OpenBLAS, each call first
wakes the sleeping worker (15-50 us on the 2-core VM it was measured on), a cost
the smaller shapes feel.
"""
import time
import timeit

import numpy as np

from kernels.bf16 import gemm_bf16
from kernels.blas import gemm

from .common import (BATCHES, THREADS, Benchmark, build_mlp, import_torch, mnist_like,
                     random_array, torch_epoch, torch_mlp)

#: name: (m, n, k, trans_a, trans_b)
SHAPES = {
    "nn_256x784x256": (256, 256, 784, False, False),
    "nn_1024x784x256": (1024, 256, 784, False, False),
    "nn_1024x256x256": (1024, 256, 256, False, False),
    "tn_784x256_k256": (784, 256, 256, True, False),
    "tn_784x256_k1024": (784, 256, 1024, True, False),
    "nt_256x784x256": (256, 784, 256, False, True),
    "nt_1024x784x256": (1024, 784, 256, False, True),
}


def _medians(fns, rounds=15, number=3, pause=0.1):
    """Median seconds per call of each function, their rounds interleaved, each
    after a pause: OpenBLAS's threads spin for about 60 ms after a call, and would
    hold the other core while the next function's threads need it."""
    times = [[] for _ in fns]
    for _ in range(rounds):
        for t, fn in zip(times, fns):
            time.sleep(pause)
            t.append(timeit.timeit(fn, number=number) / number)
    return [float(np.median(t)) for t in times]


class GemmBf16(Benchmark):
    params = [list(SHAPES), THREADS]
    param_names = ["shape", "threads"]

    def prepare(self, shape, threads):
        m, n, k, trans_a, trans_b = SHAPES[shape]
        self.A = random_array((k, m) if trans_a else (m, k), "float32", 1)
        self.B = random_array((n, k) if trans_b else (k, n), "float32", 2)
        self.C = np.ones((m, n), np.float32)
        self.trans = (trans_a, trans_b)
        self.flop = 2.0 * m * n * k

    def time_bf16(self, shape, threads):
        gemm_bf16(self.A, self.B, self.C, self.trans[0], self.trans[1], 1.0, 0.0)

    def time_sgemm(self, shape, threads):
        gemm(self.A, self.B, self.C, self.trans[0], self.trans[1], 1.0, 0.0)

    def _both(self):
        return _medians([lambda: self.time_bf16(None, None),
                         lambda: self.time_sgemm(None, None)])

    def track_gflops_bf16(self, shape, threads):
        return self.flop / self._both()[0] / 1e9
    track_gflops_bf16.unit = "GFLOP/s"

    def track_gflops_sgemm(self, shape, threads):
        return self.flop / self._both()[1] / 1e9
    track_gflops_sgemm.unit = "GFLOP/s"

    def track_speedup_vs_sgemm(self, shape, threads):
        t_bf16, t_sgemm = self._both()
        return t_sgemm / t_bf16
    track_speedup_vs_sgemm.unit = "ratio"


MODELS = {"mlp": {}, "mlp+bn+dropout": {"batch_norm": True, "keep_prob": 0.8}}
EPOCH_ROWS = 4096


class TrainBf16(Benchmark):
    params = [BATCHES, list(MODELS), THREADS]
    param_names = ["batch", "model", "threads"]
    timeout = 600

    def prepare(self, batch, model, threads):
        import nn
        self.X, self.y = mnist_like(EPOCH_ROWS)
        self.batch = batch
        self.models = {}
        for precision in ("bf16", "fp32"):
            m = build_mlp(**MODELS[model])
            m = nn.Sequential.from_config({**m.config(), "precision": precision})
            self.models[precision] = (m, nn.Adam(lr=1e-3))
        self.loss = nn.SoftmaxCrossEntropy()

    def _epoch(self, precision):
        m, opt = self.models[precision]
        m.fit(self.X, self.y, loss=self.loss, optimizer=opt, epochs=1,
              batch_size=self.batch, verbose=0)

    def time_epoch_bf16(self, batch, model, threads):
        self._epoch("bf16")

    def time_epoch_fp32(self, batch, model, threads):
        self._epoch("fp32")

    def track_speedup_vs_fp32(self, batch, model, threads):
        t_bf16, t_fp32 = _medians([lambda: self._epoch("bf16"), lambda: self._epoch("fp32")],
                                  rounds=5, number=1)
        return t_fp32 / t_bf16
    track_speedup_vs_fp32.unit = "ratio"

    def track_speedup_vs_torch_autocast(self, batch, model, threads):
        torch = import_torch()
        torch.set_num_threads(threads)
        opts = MODELS[model]
        tm = torch_mlp(torch, batch_norm=bool(opts), keep_prob=opts.get("keep_prob", 1.0))
        opt = torch.optim.Adam(tm.parameters(), lr=1e-3, fused=True)
        theirs = torch_epoch(torch, tm, opt, self.X, self.y, self.batch, autocast=True)
        theirs()
        t_bf16, t_torch = _medians([lambda: self._epoch("bf16"), theirs], rounds=5,
                                   number=1)
        return t_torch / t_bf16
    track_speedup_vs_torch_autocast.unit = "ratio"
