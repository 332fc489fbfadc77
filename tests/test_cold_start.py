"""Cold start: a run compiles only what it uses.

In a fresh process with an empty Numba cache (``NUMBA_NN_CACHE_DIR``), training a model
whose arrays all stay below ``kernels.PARALLEL_MIN_SIZE`` compiles no parallel build (the
``nn`` API passes ``parallel=None``, and Numba prunes the call); an input that reaches the
threshold then compiles the parallel build it needs, with the same bits as the serial
one; and a second process with the same cache compiles nothing at all (a warm start).
"""
import os
import subprocess
import sys

import kernels

_RUN = r"""
import json, sys
from numba.core import event

compiled = []


class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)

    def on_end(self, ev):
        pass


event.register("numba:compile", Listener())

import numba
import numpy as np
import kernels
import nn

rng = np.random.default_rng(0)
X = rng.standard_normal((40, 8)).astype(np.float32)
y = rng.integers(0, 3, 40)
model = nn.Sequential([nn.Dense(8, 16, activation="relu"), nn.Dense(16, 3)], seed=0)
model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(0.1), epochs=2,
          batch_size=16)
model.evaluate(X, y)
small = list(compiled)

# 4096 rows x 16 hidden units = PARALLEL_MIN_SIZE: the hidden layer's forward goes parallel.
big = rng.standard_normal((4096, 8)).astype(np.float32)
assert big.shape[0] * 16 >= kernels.PARALLEL_MIN_SIZE
model.predict(big)
large = compiled[len(small):]

# The dense kernel on that input: parallel=None (serial) and True, 1 and 2 threads.
layer = model.layers[0]
bits = []
for parallel, threads in ((None, 1), (True, 1), (True, 2)):
    if threads > numba.config.NUMBA_NUM_THREADS:
        continue
    numba.set_num_threads(threads)
    Z, A = np.full((4096, 16), np.nan, np.float32), np.full((4096, 16), np.nan, np.float32)
    kernels.dense_forward(big, layer.W, layer.b, layer.act_code, Z, A, parallel)
    bits.append((Z.tobytes() + A.tobytes()).hex())
print(json.dumps(dict(small=small, large=large, n_bits=len(bits),
                      same=len(set(bits)) == 1, nan=bool(np.isnan(A).any()))))
"""


def test_cold_start_compiles_parallel_builds_only_past_the_threshold(tmp_path, fresh_python):
    cold = fresh_python(_RUN, tmp_path)
    small, large = cold["small"], cold["large"]
    assert "dense_forward" in small  # (fit may run its steps as one compiled plan)
    assert [name for name in small if name.endswith("_parallel")] == []
    # past the threshold: the dense forward's parallel build, and nothing else parallel
    assert [name for name in large if name.endswith("_parallel")] == ["_bias_act_parallel"]
    assert cold["n_bits"] >= 2 and cold["same"] and not cold["nan"]

    warm = fresh_python(_RUN, tmp_path)  # the same cache: everything loads, nothing compiles
    assert warm["small"] == [] and warm["large"] == []
    assert warm["same"]


_NESTED = r"""
import sys
import numpy as np
import kernels
from kernels import optim

params, grads = np.ones(kernels.PARALLEL_MIN_SIZE), np.full(kernels.PARALLEL_MIN_SIZE, 2.0)
if sys.argv[1] == "build":
    optim._sgd_parallel(params, grads, 0.25)  # compiled and cached on its own
else:
    kernels.sgd_step(params, grads, 0.25, True)  # its parallel build comes from the cache
print(params[:3].tolist())
"""


def test_kernel_cached_over_a_cached_parallel_build_loads_in_a_fresh_process(tmp_path):
    """numba/numba#9938: a kernel compiled in a process that loaded its parallel build
    from the cache must still start Numba's threading layer when a later process loads
    it (it crashed: kernels._cache.keep_reload_hooks)."""
    env = dict(os.environ, NUMBA_NN_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    root = os.path.dirname(os.path.dirname(kernels.__file__))
    for step in ("build", "compile", "load"):
        out = subprocess.run([sys.executable, "-c", _NESTED, step], env=env, cwd=root,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (step, out.returncode, out.stderr[-2000:])
        assert out.stdout.split() == ["[0.5,", "0.5,", "0.5]"], step
