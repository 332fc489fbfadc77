"""``python -m asv_benchmarks.compare``: its worker processes and its report's structure.

Tiny sizes (256 rows, batch 64, one round, one timed epoch), seeded, no timing asserts.
A missing package is simulated with ``NUMBA_NN_COMPARE_HIDE``, which makes the named
modules unimportable in the worker processes.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from asv_benchmarks import compare  # noqa: E402

TINY = ["--rows", "256", "--batches", "64", "--threads", "1", "--warmup", "1",
        "--epochs-per-process", "1", "--seed", "0"]


def run(args, hide=None, timeout=120):
    env = dict(os.environ)
    env.pop(compare.HIDE_ENV, None)
    if hide:
        env[compare.HIDE_ENV] = hide
    return subprocess.run([sys.executable, "-m", "asv_benchmarks.compare", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def result(proc):
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(compare.RESULT_PREFIX)]
    assert len(lines) == 1, (proc.stdout, proc.stderr[-2000:])
    assert proc.stdout.strip() == lines[0]  # nothing else on stdout
    return json.loads(lines[0][len(compare.RESULT_PREFIX):])


def test_worker_ours_reports_json():
    proc = run(["--worker", "train", "--contender", "ours", "--model", "mlp", *TINY])
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = result(proc)
    assert res["status"] == "ok", res
    assert (res["contender"], res["model"], res["batch"], res["threads"], res["rows"]) == \
        ("ours", "mlp", 64, 1, 256)
    assert len(res["epoch_seconds"]) == 1
    assert res["samples_per_s"] > 0
    assert res["blas_backend"] in ("mkl", "openblas")
    for key in ("cpu_per_wall", "others_cores", "contention"):
        assert res[key] is None or res[key] >= 0


def test_missing_package_is_skipped_not_crashed():
    proc = run(["--worker", "probe", "--contender", "jax"], hide="jax,torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = result(proc)
    assert res["status"] == "skipped"
    assert "jax" in res["reason"]


def test_report_ours_with_a_missing_peer(tmp_path):
    md, js = tmp_path / "table.md", tmp_path / "report.json"
    proc = run(["--sections", "training", "--contenders", "ours", "torch",
                "--ours-blas", "default", "--models", "mlp", "--rounds", "1", *TINY,
                "--wait-quiet", "0", "--retries", "0",   # no waiting on a busy machine
                "--markdown", str(md), "--json", str(js)], hide="torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith("CPU: ")
    assert "Versions: Python" in out and "Numba" in out
    assert "BLAS: ours (default): " in out
    assert "Note: torch skipped (skipped: ModuleNotFoundError" in out
    header = ("| batch | ours (default) | best fp32 peer | ours / best peer | GEMM limit "
              "| ours of limit |")
    assert header in out
    row = next(ln for ln in out.splitlines() if ln.startswith("| 64 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 6
    assert float(cells[1].rstrip("*").replace(",", "")) > 0
    assert cells[2:4] == ["n/a", "n/a"]     # no peer ran
    assert cells[5].endswith("%")           # the GEMM-limit fraction
    assert header in md.read_text()
    report = json.loads(js.read_text())
    assert report["probes"]["torch"]["status"] == "skipped"
    assert report["probes"]["ours (default)"]["status"] == "ok"
    (row,) = report["rows"]
    assert (row["model"], row["threads"], row["batch"]) == ("mlp", 1, 64)
    assert row["best_peer"] is None and row["samples_per_s"]["ours (default)"] > 0
    assert 0 < row["ours_of_limit"]
    assert set(report["rounds"]) == {"ours (default)"}


@pytest.mark.parametrize("threads, eigen", [(1, "false"), (2, "true")])
def test_worker_env(threads, eigen):
    env = compare.worker_env("jax", threads=threads)
    assert env["NPROC"] == env["OMP_NUM_THREADS"] == str(threads)
    assert f"--xla_cpu_multi_thread_eigen={eigen}" in env["XLA_FLAGS"]
    assert f"intra_op_parallelism_threads={threads}" in env["XLA_FLAGS"]
    assert env[compare.PEERS_ONLY_ENV] == "1"
    assert "NUMBA_NN_BLAS" not in env
    ours = compare.worker_env("ours", "mkl", threads)
    assert ours["NUMBA_NN_BLAS"] == "mkl" and compare.PEERS_ONLY_ENV not in ours
    assert "NUMBA_NN_BLAS" not in compare.worker_env("ours", "default", threads)
