"""``python -m nn``: the options, a default run on the embedded digits, and a run on a
folder of MNIST-format IDX files."""
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import nn
from nn.__main__ import main

ACCURACY = re.compile(r"^(train|dev|test) accuracy: ([0-9.]+)$", re.MULTILINE)


def accuracies(text):
    found = {name: float(value) for name, value in ACCURACY.findall(text)}
    assert set(found) == {"train", "dev", "test"}, text
    return found


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nn", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_idx(path, array, magic):
    """An IDX file: big-endian magic (0x0803 images, 0x0801 labels), sizes, uint8 data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape)
    path.write_bytes(header + array.tobytes())


def quadrant_images(n, seed):
    """28x28 noise images with one bright quadrant; the label is the quadrant (0..3)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    rng.shuffle(labels)
    images = rng.integers(0, 80, size=(n, 28, 28))
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        images[i, 14 * r:14 * r + 14, 14 * c:14 * c + 14] += 120
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture
def mnist_folder(tmp_path):
    for prefix, n, seed in (("train", 360, 0), ("t10k", 120, 1)):
        images, labels = quadrant_images(n, seed)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images, 0x00000803)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, 0x00000801)
    return tmp_path


def test_cli_help_lists_the_options():
    result = run_cli("--help", timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--hidden", "--activation", "--epochs", "--batch-size", "--lr", "--seed",
                   "--data", "--quiet"):
        assert option in result.stdout
    assert result.stdout.startswith("usage: python -m nn")


def test_cli_default_run_on_digits_reaches_95_percent_test_accuracy():
    result = run_cli("--epochs", "30", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "data: digits" in result.stdout
    acc = accuracies(result.stdout)
    assert acc["test"] >= 0.95, result.stdout
    assert acc["train"] >= acc["test"] - 0.05
    assert "epoch" not in result.stderr  # --quiet


def test_cli_main_on_an_mnist_format_folder(mnist_folder, capsys):
    code = main(["--data", str(mnist_folder), "--hidden", "16", "--epochs", "4",
                 "--batch-size", "32", "--lr", "0.05", "--seed", "0"])
    assert code == 0
    out, err = capsys.readouterr()
    assert f"MNIST-format files in {mnist_folder}" in out
    assert "300 train, 60 dev, 120 test rows, 784 features, 4 classes" in out
    assert "784 -> 16 -> 4 (relu)" in out
    acc = accuracies(out)
    assert acc["test"] >= 0.95 and acc["dev"] >= 0.95, out
    assert len(re.findall(r"^epoch \d/4", err, re.MULTILINE)) == 4  # progress on stderr


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_cli_main_options_reach_the_model(mnist_folder, capsys, activation):
    code = main(["--data", str(mnist_folder), "--hidden", "8", "6", "--activation",
                 activation, "--epochs", "2", "--dtype", "float64", "--l2", "0.01",
                 "--quiet"])
    assert code == 0
    out, err = capsys.readouterr()
    assert f"784 -> 8 -> 6 -> 4 ({activation})" in out
    assert "2 epochs, float64" in out
    assert err == ""
    accuracies(out)


def test_cli_main_is_deterministic(mnist_folder, capsys):
    args = ["--data", str(mnist_folder), "--hidden", "8", "--epochs", "2", "--quiet"]

    def run(seed):
        main(args + ["--seed", str(seed)])
        out = capsys.readouterr()[0]
        accuracies(out)
        return [line for line in out.splitlines() if not line.startswith("trained in")]
    assert run(3) == run(3)


def test_cli_prints_the_diagnosis_and_saves_model_and_curves(mnist_folder, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "run" / "model.npz"
    target.parent.mkdir()
    code = main(["--data", str(mnist_folder), "--hidden", "16", "--epochs", "3",
                 "--save", str(target), "--quiet"])
    assert code == 0
    out, _ = capsys.readouterr()
    assert "diagnosis: " in out and "avoidable bias" in out
    assert f"model saved to {target}" in out
    png = target.with_suffix(".png")
    assert f"training curves written to {png}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    model = nn.load(target)
    assert model.standardizer is not None  # predicts on raw pixels
    assert model.predict_classes(np.zeros((1, 784))).shape == (1,)
