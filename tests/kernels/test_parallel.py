"""serial_and_parallel: every serial/parallel pair is one body built twice, and Numba's
cache keeps the two builds apart (a fresh process loads each one's own machine code)."""
import importlib
import json
import os
import pkgutil
import subprocess
import sys

from numba.core.caching import FunctionCache

import kernels


def _twins():
    """{(module, body name): (serial, parallel)} over every module of kernels/."""
    twins = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"kernels.{info.name}")
        for name, obj in vars(module).items():
            if getattr(obj, "targetoptions", {}).get("parallel"):
                body = name.removesuffix("_parallel")
                twins[info.name, body] = (getattr(module, body + "_serial"), obj)
    return twins


def test_every_twin_is_one_body_built_twice():
    twins = _twins()
    assert twins
    for (module, body), (serial, parallel) in twins.items():
        where = f"kernels.{module}.{body}"
        assert serial.py_func.__code__ is parallel.py_func.__code__, where
        assert "prange" in parallel.py_func.__code__.co_names, where
        # distinct qualified names: distinct cache entries, under the names callers use
        assert serial.py_func.__qualname__ == body + "_serial", where
        assert parallel.py_func.__qualname__ == body + "_parallel", where
        options = dict(parallel.targetoptions)
        assert options.pop("parallel") is True
        assert serial.targetoptions == options, where  # error_model and the rest
        for build in (serial, parallel):
            assert isinstance(build._cache, FunctionCache), where  # cache=True


# Run twice in fresh processes sharing one cache folder. The parallel build must hold a
# parfor and launch Numba's threads (loaded from the cache too); the serial one neither.
_PROBE = """
import json, numba, numpy as np
from kernels import optim

results, stats = [], {}
for name in ("serial", "parallel"):
    build = getattr(optim, "_sgd_" + name)
    params = np.arange(1000.0)
    build(params, np.ones(1000), 0.5)
    results.append(params.tolist())
    sig = build.signatures[0]
    hits, misses = build.stats.cache_hits[sig], build.stats.cache_misses[sig]
    gufunc = "__numba_parfor_gufunc" in build.inspect_llvm(sig) if misses else None
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel build has run or been loaded
        layer = None
    stats[name] = dict(hits=hits, misses=misses, gufunc=gufunc, threads=layer is not None)
print(json.dumps(dict(stats=stats, same=results[0] == results[1])))
"""


def _probe(cache_dir):
    env = dict(os.environ, NUMBA_NN_CACHE_DIR=str(cache_dir))
    root = os.path.dirname(os.path.dirname(kernels.__file__))
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fresh_process_loads_each_build_from_the_cache(tmp_path):
    first = _probe(tmp_path)
    assert first["same"]
    serial, parallel = first["stats"]["serial"], first["stats"]["parallel"]
    assert serial["misses"] == 1 and parallel["misses"] == 1
    assert serial["gufunc"] is False and parallel["gufunc"] is True
    assert not serial["threads"] and parallel["threads"]

    second = _probe(tmp_path)
    assert second["same"]
    for build in ("serial", "parallel"):
        stats = second["stats"][build]
        assert stats["hits"] == 1 and stats["misses"] == 0, build
    # only the parallel build's cached code starts Numba's threads
    assert not second["stats"]["serial"]["threads"]
    assert second["stats"]["parallel"]["threads"]
    files = {name.split("-")[0] for name in os.listdir(next(tmp_path.glob("*/kernels_*")))}
    assert {"optim._sgd_serial", "optim._sgd_parallel"} <= files
