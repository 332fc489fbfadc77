"""The README's code runs as written."""
import os
import pathlib
import re
import subprocess
import sys


README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs():
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace = {}
    exec(compile(blocks[0], "README.md example", "exec"), namespace)
    assert namespace["model"].evaluate(namespace["Xte"], namespace["yte"])["accuracy"] > 0.9
    assert namespace["err"] < 1e-7


def test_readme_kernel_example_runs():
    import numpy as np
    import kernels
    namespace = {}
    exec(compile(python_blocks()[1], "README.md kernels", "exec"), namespace)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    W = rng.standard_normal((3, 4))
    b = rng.standard_normal(4)
    y = np.array([0, 1, 2, 3, 0])
    Z, dZ, rows = np.empty((5, 4)), np.empty((5, 4)), np.empty(5)
    loss = namespace["logits_and_loss"](X, W, b, y, Z, dZ, rows)
    logits = X @ W + b
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    assert np.isclose(loss, np.mean(lse - logits[np.arange(5), y]), rtol=1e-12)
    assert kernels.ACT_IDENTITY == 0


def test_readme_workflow_runs(tmp_path, monkeypatch):
    block = next(b for b in python_blocks() if "nn.EarlyStopping" in b)
    monkeypatch.chdir(tmp_path)  # it writes best.safetensors
    namespace = {}
    exec(compile(block, "README.md workflow", "exec"), namespace)
    history = namespace["history"]
    assert history.stopped_epoch is not None
    assert namespace["model"].evaluate(namespace["Xte"], namespace["yte"])["accuracy"] > 0.9
    assert (tmp_path / "best.safetensors").exists()
    # The diagnosis the README prints is the one a student would make: no training error,
    # a dev error well above it.
    diagnosis = history.diagnose()
    assert diagnosis.problem == "high variance" and diagnosis.avoidable_bias == 0.0


def _run_script(source, folder, name, timeout=300):
    script = folder / f"readme_{name}.py"
    script.write_text(source)
    env = dict(os.environ, PYTHONPATH=str(README.parent))
    result = subprocess.run([sys.executable, script.name], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"README block {name}:\n{result.stderr[-3000:]}"
    return result


def test_every_readme_block_runs_as_a_script_in_order(tmp_path):
    """Each block as a user pastes it into a file and runs it: it defines what it uses,
    guards what starts processes, and finishes within the time limit (a hang fails the
    test instead of blocking the suite). In order, in one folder."""
    blocks = python_blocks()
    for k, block in enumerate(blocks):
        result = _run_script(block, tmp_path, str(k))
        if "tuning.random_search" in block:   # 30 trials in spawned workers, a plot
            assert "rank" in result.stdout and "dev_accuracy" in result.stdout
            assert (tmp_path / "lr.png").exists()
    assert (tmp_path / "best.safetensors").exists()
