"""The README's code runs as written."""
import pathlib
import re

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
    monkeypatch.chdir(tmp_path)  # it writes best.npz
    namespace = {}
    exec(compile(block, "README.md workflow", "exec"), namespace)
    assert namespace["history"].stopped_epoch is not None
    assert namespace["model"].evaluate(namespace["Xte"], namespace["yte"])["accuracy"] > 0.9
    assert (tmp_path / "best.npz").exists()


def test_readme_tuning_runs(tmp_path, monkeypatch):
    blocks = python_blocks()
    workflow = next(b for b in blocks if "nn.EarlyStopping" in b)
    tuning_block = next(b for b in blocks if "tuning.random_search" in b)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(workflow, "README.md workflow", "exec"), namespace)   # the data
    exec(compile(tuning_block, "README.md tuning", "exec"), namespace)
    results = namespace["results"]
    assert len(results) == 30 and results.best is not None
    assert (tmp_path / "lr.png").exists()
