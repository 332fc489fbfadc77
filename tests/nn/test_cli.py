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


# -- every option is checked before training ------------------------------------------------

def usage_error(capsys, argv):
    """The stderr of ``main(argv)``, which must end with a usage error (exit code 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: python -m nn")   # nothing ran
    return err


def threads_above_the_cpus():
    import numba
    return str(numba.config.NUMBA_NUM_THREADS + 1)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be in [1, "),
    (["--threads", threads_above_the_cpus()], "--threads must be in [1, "),
    (["--epochs", "0"], "--epochs must be >= 1; got 0"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--lr", "-1"], "--lr must be > 0; got -1.0"),
    (["--lr", "nan"], "--lr must be > 0; got nan"),
    (["--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    (["--hidden", "8", "0"], "--hidden must be >= 1; got 0"),
    (["--l2", "-1"], "--l2 must be >= 0; got -1.0"),
    (["--seed", "-1"], "--seed must be >= 0; got -1"),
    (["--base-error", "1.5"], "--base-error must be in [0, 1]; got 1.5"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--activation", "gelu"], "argument --activation: invalid choice: 'gelu'"),
    (["--data", "no-such-folder"], "--data must be a folder of MNIST-format files; got "
                                   "'no-such-folder', which does not exist"),
])
def test_cli_rejects_bad_values_with_a_usage_error(capsys, argv, message):
    assert message in usage_error(capsys, argv)


@pytest.mark.parametrize("argv, message", [
    (["--trials", "0"], "--trials must be >= 1; got 0"),
    (["--epochs", "0"], "--epochs must be >= 1; got 0"),
    (["--min-epochs", "0"], "--min-epochs must be >= 1; got 0"),
    (["--workers", "-1"], "--workers must be >= 0; got -1"),
    (["--threads", "0"], "--threads must be in [1, "),
    (["--threads", threads_above_the_cpus()], "--threads must be in [1, "),
    (["--seed", "-1"], "--seed must be >= 0; got -1"),
    (["--eta", "1"], "--eta must be >= 2; got 1"),
    (["--lr", "0", "1"], "--lr must be two numbers LOW HIGH with 0 < LOW < HIGH; got 0.0 1.0"),
    (["--lr", "0.1", "0.01"], "0 < LOW < HIGH; got 0.1 0.01"),
    (["--hidden", "0", "8"], "--hidden must be two sizes LOW HIGH with 1 <= LOW <= HIGH"),
    (["--hidden", "16", "8"], "1 <= LOW <= HIGH; got 16 8"),
    (["--halving", "--min-epochs", "4", "--epochs", "2"],
     "--min-epochs (4) must be <= --epochs (2)"),
    (["--plot", "x.png", "--no-plot"], "argument --no-plot: not allowed with argument --plot"),
    (["--data", "no-such-folder"], "--data must be a folder of MNIST-format files"),
])
def test_cli_tune_rejects_bad_values_with_a_usage_error(capsys, argv, message):
    err = usage_error(capsys, ["tune", *argv])
    assert err.startswith("usage: python -m nn tune") and message in err


@pytest.mark.parametrize("option", ["--save", "--plot", "tune --plot"])
def test_cli_checks_output_paths_before_training(capsys, tmp_path, option):
    *command, option = option.split()
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    missing = tmp_path / "missing"
    for path, message in (
            (missing / "out.x", f"must be a file in an existing folder; got "
                                f"'{missing / 'out.x'}', and {missing} is not a folder"),
            (a_file / "out.x", f"must be a file in an existing folder; got "
                               f"'{a_file / 'out.x'}', and {a_file} is not a folder"),
            (tmp_path, f"must be a file name; got '{tmp_path}', a folder")):
        assert f"{option} {message}" in usage_error(capsys, [*command, option, str(path)])


def test_cli_refuses_an_output_folder_it_cannot_write(capsys, tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    err = usage_error(capsys, ["--save", str(tmp_path / "model.npz")])
    assert (f"--save must be a file in a writable folder; got '{tmp_path / 'model.npz'}', "
            f"and {tmp_path} cannot be written (Permission denied)") in err


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)


def test_cli_plot_without_matplotlib_is_an_error_before_training(capsys, tmp_path,
                                                                  no_matplotlib):
    err = usage_error(capsys, ["--plot", str(tmp_path / "curves.png")])
    assert '--plot needs matplotlib, which is not installed: pip install "numba-nn[plot]"' \
        in err
    err = usage_error(capsys, ["tune", "--plot", str(tmp_path / "lr.png")])
    assert '"numba-nn[plot]"' in err
    assert not list(tmp_path.iterdir())


def test_cli_save_without_matplotlib_saves_the_model_and_says_why_no_png(
        capsys, tmp_path, no_matplotlib):
    target = tmp_path / "model.npz"
    assert main(["--hidden", "4", "--epochs", "1", "--quiet", "--save", str(target)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("note: no training curves next to the model: they need matplotlib")
    assert f"model saved to {target}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_cli_tune_default_plot_without_matplotlib_is_a_note(capsys, tmp_path, monkeypatch,
                                                            no_matplotlib):
    monkeypatch.chdir(tmp_path)
    code = main(["tune", "--trials", "1", "--epochs", "1", "--workers", "0", "--hidden", "4",
                 "8", "--quiet"])
    assert code == 0
    out, err = capsys.readouterr()
    assert err.startswith('note: no PNG: it needs matplotlib, which is not installed: pip '
                          'install "numba-nn[plot]"')
    assert "best: trial 0" in out and not list(tmp_path.iterdir())


def test_cli_keeps_the_model_when_saving_fails_at_the_end(capsys, tmp_path, monkeypatch):
    import errno
    real_save = nn.save
    calls = []

    def save(model, path):
        calls.append(str(path))
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(model, path)
    monkeypatch.setattr(nn, "save", save)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    target = tmp_path / "model.npz"
    code = main(["--hidden", "4", "--epochs", "1", "--quiet", "--save", str(target)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"error: cannot save the model to {target}: [Errno 28] No space left on device" \
        in err
    rescued = list(here.glob("model-*.safetensors"))
    assert len(rescued) == 1 and calls == [str(target), str(rescued[0])]
    assert f"the model was saved to {rescued[0]} instead" in err
    assert nn.load(rescued[0]).predict_classes(np.zeros((1, 64))).shape == (1,)
    assert not target.exists()


def test_the_cli_reports_compile_time_apart_from_training(capsys):
    from nn.__main__ import main
    main(["--epochs", "1", "--quiet"])
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("trained in"))
    assert "s compiling kernels" in line and "s training (" in line and "samples/s)" in line


def test_compile_timer_counts_a_compilation_once():
    import numba

    from nn.warmup import CompileTimer

    @numba.njit
    def inner(x):
        return x + 1

    @numba.njit
    def outer(x):
        return inner(x) * 2

    with CompileTimer() as timer:
        outer(1.0)
    compiled = timer.seconds
    with CompileTimer() as again:
        outer(2.0)          # compiled already: nothing to count
    assert compiled > 0 and again.seconds == 0
