"""The library's thread policy (``kernels.THREAD_POLICY``) leaves the user's own NumPy
and Numba code as the user set it up.

Speed is never asserted here (``asv_benchmarks/benchmarks/bench_threads.py --user-code``
measures it); the mechanism is. In a fresh process (a ``subprocess``: the OpenMP
runtimes read their environment once, when they load), the user limits NumPy's BLAS and
Numba's threads, imports ``nn`` and trains; then every thread pool the user had keeps its
count, Numba's thread count is the user's, the environment differs only by the
documented variables the library reports, a user's explicit setting wins, and the
user's own ``prange`` loop and matmul still give the right numbers.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

import kernels

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Everything the policy may set (kernels' docstring and the README document it).
DOCUMENTED = {"OMP_WAIT_POLICY"}
#: Removed from the child's environment unless a case sets them (the test process's
#: own ``import kernels`` has put the policy into os.environ, which children inherit).
CLEARED = ("NUMBA_NN_BLAS", "NUMBA_NN_THREAD_POLICY", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
           "KMP_BLOCKTIME", "KMP_LIBRARY", "MKL_THREADING_LAYER", "NUMBA_THREADING_LAYER",
           "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")

_USER_PROCESS = r"""
import json, os, sys
import numpy as np
import numba
import threadpoolctl
from numba import njit, prange

options = json.loads(sys.argv[1])
options["numba_threads"] = min(options["numba_threads"], numba.config.NUMBA_NUM_THREADS)


@njit(parallel=True)
def user_row_norms(x, out):  # the user's own parallel Numba code
    for i in prange(x.shape[0]):
        s = 0.0
        for j in range(x.shape[1]):
            s += x[i, j] * x[i, j]
        out[i] = s


def pools():
    return {p["filepath"]: p["num_threads"] for p in threadpoolctl.threadpool_info()}


threadpoolctl.threadpool_limits(1, user_api="blas")  # the user's NumPy BLAS: 1 thread
env_before, pools_before = dict(os.environ), pools()
if options["numba_first"]:  # starts Numba's threads (and loads its OpenMP) before nn
    numba.set_num_threads(options["numba_threads"])

import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import kernels
    import nn
if not options["numba_first"]:
    numba.set_num_threads(options["numba_threads"])
numba_before = numba.get_num_threads()

rng = np.random.default_rng(0)
X, y = rng.standard_normal((256, 20)), rng.integers(0, 3, 256)
model = nn.Sequential([nn.Dense(20, 16, activation="relu"), nn.Dense(16, 3)], seed=0)
model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(lr=0.01), epochs=2,
          batch_size=32, verbose=0)

x = rng.standard_normal((4099, 33))
norms = np.empty(4099)
user_row_norms(x, norms)
A, B = rng.standard_normal((70, 50)), rng.standard_normal((50, 60))
pools_after = pools()
changed = {k: os.environ.get(k) for k in set(env_before) | set(os.environ)
           if env_before.get(k) != os.environ.get(k)}
print("RESULT " + json.dumps({
    "backend": kernels.BLAS_BACKEND,
    "warnings": [str(w.message) for w in caught],
    "policy": kernels.THREAD_POLICY,
    "changed": changed,
    "numba_before": numba_before, "numba_after": numba.get_num_threads(),
    "pools_before": pools_before,
    "pools_after": {k: v for k, v in pools_after.items() if k in pools_before},
    "mkl_layers": [p.get("threading_layer") for p in threadpoolctl.threadpool_info()
                   if p["internal_api"] == "mkl"],
    "openmp": sorted(os.path.basename(p["filepath"]) for p in threadpoolctl.threadpool_info()
                     if p["user_api"] == "openmp"),
    "prange_ok": bool(np.allclose(norms, np.einsum("ij,ij->i", x, x), rtol=1e-12)),
    "matmul_ok": bool(np.allclose(A @ B, np.einsum("ik,kj->ij", A, B), rtol=1e-12)),
}))
"""


def _user_process(env, numba_threads=1, numba_first=False):
    full = {k: v for k, v in os.environ.items() if k not in CLEARED}
    full.update(env)
    options = json.dumps({"numba_threads": numba_threads, "numba_first": numba_first})
    out = subprocess.run([sys.executable, "-c", _USER_PROCESS, options],
                         env=full, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def mkl():
    installed = glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*"))
    if kernels.BLAS_BACKEND != "mkl" and not installed:
        pytest.skip("oneMKL is not installed (pip install mkl)")


def _check_user_setup_kept(res):
    """What every case shares: the user's pools and Numba count kept, the environment
    changed by what the library reports only, the user's code right."""
    assert res["pools_after"] == res["pools_before"]
    assert res["numba_after"] == res["numba_before"]
    assert res["changed"] == res["policy"]
    assert set(res["policy"]) <= DOCUMENTED
    assert res["prange_ok"] and res["matmul_ok"]


def test_openblas_sets_passive_wait_only():
    res = _user_process({"NUMBA_NN_BLAS": "openblas"}, numba_threads=1)
    assert res["backend"] == "openblas"
    _check_user_setup_kept(res)
    assert res["numba_after"] == 1
    assert res["policy"] == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert res["warnings"] == []
    assert all("gomp" in name for name in res["openmp"])  # Numba's libgomp only


def test_a_policy_that_comes_too_late_warns():
    """Numba's threads started before the import: libgomp has read its environment
    already, so PASSIVE cannot apply; the user is told, and nothing else changes."""
    res = _user_process({"NUMBA_NN_BLAS": "openblas"}, numba_threads=2, numba_first=True)
    _check_user_setup_kept(res)
    assert any("OMP_WAIT_POLICY=PASSIVE comes too late" in w for w in res["warnings"])


def test_mkl_sets_nothing(mkl):
    """oneMKL keeps Intel's OpenMP and the runtimes' own wait defaults."""
    res = _user_process({"NUMBA_NN_BLAS": "mkl"})
    assert res["backend"] == "mkl"
    _check_user_setup_kept(res)
    assert res["policy"] == {} and res["changed"] == {}
    assert res["mkl_layers"] == ["intel"]
    assert res["warnings"] == []


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1000"}])
def test_the_users_explicit_wait_setting_wins(user):
    res = _user_process({"NUMBA_NN_BLAS": "openblas", **user})
    _check_user_setup_kept(res)
    assert res["policy"] == {} and res["changed"] == {}


def test_policy_none_sets_nothing():
    res = _user_process({"NUMBA_NN_BLAS": "openblas", "NUMBA_NN_THREAD_POLICY": "none"})
    _check_user_setup_kept(res)
    assert res["policy"] == {} and res["changed"] == {}


def test_what_is_set_is_documented_and_in_effect():
    assert set(kernels.THREAD_POLICY) <= DOCUMENTED
    for name, value in kernels.THREAD_POLICY.items():
        assert os.environ.get(name) == value
    for name in DOCUMENTED | {"NUMBA_NN_THREAD_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"}:
        assert name in kernels.__doc__
