"""serial_and_parallel: every serial/parallel pair is one body built twice, and Numba's
cache keeps the two builds apart (a fresh process loads each one's own machine code);
every public kernel with a parallel build takes ``parallel`` last (``parallel_arg``)."""
import importlib
import inspect
import os
import pkgutil
import re

import pytest
from numba.core.caching import FunctionCache

import kernels
import reference as ref


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
        assert options.pop("no_cfunc_wrapper") is True
        serial_options = dict(serial.targetoptions)
        assert serial_options.pop("inline") == "always", where  # into the public kernel
        assert serial_options == options, where  # error_model and the rest
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


def test_fresh_process_loads_each_build_from_the_cache(tmp_path, fresh_python):
    first = fresh_python(_PROBE, tmp_path)
    assert first["same"]
    serial, parallel = first["stats"]["serial"], first["stats"]["parallel"]
    assert serial["misses"] == 1 and parallel["misses"] == 1
    assert serial["gufunc"] is False and parallel["gufunc"] is True
    assert not serial["threads"] and parallel["threads"]

    second = fresh_python(_PROBE, tmp_path)
    assert second["same"]
    for build in ("serial", "parallel"):
        stats = second["stats"][build]
        assert stats["hits"] == 1 and stats["misses"] == 0, build
    # only the parallel build's cached code starts Numba's threads
    assert not second["stats"]["serial"]["threads"]
    assert second["stats"]["parallel"]["threads"]
    files = {name.split("-")[0] for name in os.listdir(next(tmp_path.glob("*/kernels_*")))}
    assert {"optim._sgd_serial", "optim._sgd_parallel"} <= files


#: The public kernels with a parallel build (the issue's list).
# (dense_backward reaches its parallel build through dense.grad_and_bias, inlined)
WITH_PARALLEL_BUILD = {
    "dense_forward", "activation_forward", "activation_backward",
    "softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error", "softmax",
    "sgd_step", "momentum_step", "rmsprop_step", "adam_step", "batchnorm_forward_train",
    "batchnorm_forward_infer", "batchnorm_backward", "dropout_forward", "dropout_backward",
    "add_gaussian_noise", "shift_flip_images", "column_sums", "csr_dense_forward",
    "csr_dense_backward",
}


def test_kernels_with_a_parallel_build_take_parallel_last():
    """Each calls a parallel build only under ``if parallel is not None:`` (the form
    Numba's branch pruning reads: an argument typed None drops the call), and the
    parameter, defaulting to True, is the last but for options defaulting to None
    (``bf16``), so positional callers keep their order."""
    found = set()
    for name in kernels.__all__:
        obj = getattr(kernels, name)
        if not hasattr(obj, "py_func"):
            continue
        source = inspect.getsource(obj.py_func)
        calls = re.findall(r"\b(_\w+_parallel)\(", source)
        if not calls:
            continue
        found.add(name)
        params = list(inspect.signature(obj.py_func).parameters.values())
        names = [p.name for p in params]
        last = names.index("parallel")  # then only options that default to None (bf16)
        assert params[last].default is True, name
        assert all(p.default is None for p in params[last + 1:]), name
        body = source.split('"""')[-1]
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if re.search(r"\b_\w+_parallel\(", line):
                guards, indent = [], len(line) - len(line.lstrip())
                for prev in reversed(lines[:i]):  # the enclosing statements
                    depth = len(prev) - len(prev.lstrip())
                    if prev.strip() and depth < indent:
                        guards.append(prev.strip())
                        indent = depth
                assert "if parallel is not None:" in guards, (name, line)
        assert "parallel: True (default)" in obj.__doc__, name
    assert found == WITH_PARALLEL_BUILD


@pytest.mark.parametrize("n", [0, 1, kernels.PARALLEL_MIN_SIZE - 1, kernels.PARALLEL_MIN_SIZE,
                               10 * kernels.PARALLEL_MIN_SIZE])
def test_parallel_arg_matches_reference(n):
    assert kernels.parallel_arg(n) is ref.parallel_arg(n, kernels.PARALLEL_MIN_SIZE)
