"""The optimizer updates over one flat buffer, and the Adam update's bandwidth against a
plain copy and against torch.optim.Adam(fused=True).

``UpdateStep`` times every update kernel (SGD, momentum, RMSprop, Adam) in both dtypes on
the MLP's parameter count (269,322) and on 1M and 10M parameters.
"""
import timeit

import numpy as np

from .common import DTYPES, MLP_PARAMS, THREADS, Benchmark, import_torch, set_threads

#: Arrays each update reads or writes, per element (params, grads and state; a
#: read-and-written array counts twice): the bytes moved are ARRAYS * itemsize * n.
ARRAYS = {"sgd": 3, "momentum": 5, "rmsprop": 5, "adam": 7}
SIZES = [1_000_000, 10_000_000]
#: UpdateStep's sizes: the 784-256-256-10 MLP's parameters, then SIZES.
UPDATE_SIZES = [MLP_PARAMS] + SIZES


def update_buffers(update, n, dtype="float32", seed=0):
    """params, grads and the update's state, cut from one staggered block as the
    optimizers allocate them, every page written (touched) here."""
    from nn._layout import staggered_buffers
    n_state = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}[update]
    arrays = staggered_buffers([n] * (2 + n_state), dtype)
    rng = np.random.default_rng(seed)
    arrays[0][:] = rng.standard_normal(n, dtype=np.float32)
    arrays[1][:] = rng.standard_normal(n, dtype=np.float32)
    for a in arrays[2:]:
        a.fill(0.5)
    return arrays


def update_call(update, arrays):
    """A no-argument function doing one step of ``update`` in place (Adam at t = 10)."""
    import kernels
    p, g, *state = arrays
    if update == "sgd":
        return lambda: kernels.sgd_step(p, g, 1e-3)
    if update == "momentum":
        return lambda: kernels.momentum_step(p, g, state[0], 1e-3, 0.9)
    if update == "rmsprop":
        return lambda: kernels.rmsprop_step(p, g, state[0], 1e-3, 0.9, 1e-8)
    bc1, bc2_sqrt = 1.0 - 0.9 ** 10, (1.0 - 0.999 ** 10) ** 0.5
    return lambda: kernels.adam_step(p, g, state[0], state[1], 1e-3, 0.9, 0.999, 1e-8,
                                     bc1, bc2_sqrt)


def median_time(fn, repeat):
    fn()  # compile or load the cache, fault in pages: never timed
    return float(np.median(timeit.repeat(fn, number=1, repeat=repeat)))


def adam_bandwidth_fraction(n, threads, repeat=7):
    """(fraction, adam GB/s, copy GB/s): Adam's bytes read plus written per second (7
    arrays) over np.copyto's (2 arrays), both float32, measured here and now."""
    set_threads(threads)
    step = update_call("adam", update_buffers("adam", n))
    src, dst = update_buffers("sgd", n)[:2]
    t_adam = median_time(step, repeat)
    t_copy = median_time(lambda: np.copyto(dst, src), repeat)
    bw_adam = ARRAYS["adam"] * 4 * n / t_adam
    bw_copy = 2 * 4 * n / t_copy
    return bw_adam / bw_copy, bw_adam / 1e9, bw_copy / 1e9


def adam_speedup_vs_torch(n, threads, repeat=7):
    """(median torch fused step / median ours, ours s, torch s) on the same n float32
    parameters: torch holds one flat parameter tensor with .grad set."""
    torch = import_torch()
    set_threads(threads)
    torch.set_num_threads(threads)
    arrays = update_buffers("adam", n)
    ours = update_call("adam", arrays)
    param = torch.nn.Parameter(torch.from_numpy(arrays[0].copy()))
    param.grad = torch.from_numpy(arrays[1].copy())
    opt = torch.optim.Adam([param], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, fused=True)
    opt.step()  # creates the state (zeros) outside the timing
    t_ours = median_time(ours, repeat)
    t_torch = median_time(opt.step, repeat)
    return t_torch / t_ours, t_ours, t_torch


class UpdateStep(Benchmark):
    """One in-place update of n parameters."""
    params = [["sgd", "momentum", "rmsprop", "adam"], UPDATE_SIZES, DTYPES, THREADS]
    param_names = ["update", "size", "dtype", "threads"]

    def prepare(self, update, size, dtype, threads):
        self.step = update_call(update, update_buffers(update, size, dtype))

    def time_update(self, update, size, dtype, threads):
        self.step()


class AdamBandwidth(Benchmark):
    """Adam's achieved bandwidth (7 arrays x 4 bytes x n per step) as a fraction of
    np.copyto's (2 arrays) in the same process. Target: >= 0.7."""
    params = [SIZES, [1, 2]]
    param_names = ["size", "threads"]
    timeout = 300

    def track_adam_fraction_of_copy_bandwidth(self, size, threads):
        return adam_bandwidth_fraction(size, threads)[0]

    track_adam_fraction_of_copy_bandwidth.unit = "ratio"


class AdamVsTorch(Benchmark):
    """median(torch.optim.Adam(fused=True).step) / median(adam_step), 10M float32."""
    params = [[10_000_000], [1, 2]]
    param_names = ["size", "threads"]
    timeout = 300

    def prepare(self, size, threads):
        import_torch()

    def track_speedup_adam_vs_torch_fused(self, size, threads):
        return adam_speedup_vs_torch(size, threads)[0]

    track_speedup_adam_vs_torch_fused.unit = "ratio"
