"""Model files: round trips, atomic writes, hostile files, resuming bit for bit."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import nn
from nn.io import FORMAT_VERSION, ModelFileError


def _trained(tmp_path=None, epochs=2, seed=0):
    d = nn.datasets.load_digits()
    X, y = d.X[:400], d.y[:400]
    model = nn.Sequential([nn.Dense(64, 32, use_bias=False), nn.BatchNorm(32),
                           nn.Activation("relu"), nn.Dropout(0.8), nn.Dense(32, 10)],
                          seed=seed)
    model.standardizer = nn.data.Standardizer().fit(X)
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(0.01), epochs=epochs,
              batch_size=32)
    return model, X, y


def _assert_same(a, b):
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.buffers, b.buffers)
    assert a.config() == b.config()
    assert a.layer_states() == b.layer_states()
    assert type(a.loss) is type(b.loss)
    assert type(a.optimizer) is type(b.optimizer)
    assert a.optimizer.config() == b.optimizer.config()
    assert a.optimizer.state.step == b.optimizer.state.step
    for x, y in zip(a.optimizer.state, b.optimizer.state):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.standardizer.mean_, b.standardizer.mean_)
    np.testing.assert_array_equal(a.standardizer.scale_, b.standardizer.scale_)


def test_save_load_round_trip(tmp_path):
    model, X, y = _trained()
    path = nn.save(model, tmp_path / "m.npz")
    loaded = nn.load(path)
    _assert_same(model, loaded)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left


def test_a_never_trained_model_round_trips(tmp_path):
    model = nn.Sequential([nn.Dense(3, 2)], dtype=np.float64, seed=4)
    loaded = nn.load(nn.save(model, tmp_path / "m.npz"))
    np.testing.assert_array_equal(model.params, loaded.params)
    assert loaded.optimizer is None and loaded.loss is None and loaded.standardizer is None
    assert loaded.dtype == np.float64


_RESUME = textwrap.dedent("""
    import sys, numpy as np, nn
    path, out = sys.argv[1], sys.argv[2]
    d = nn.datasets.load_digits()
    X, y = d.X[:400], d.y[:400]
    model = nn.load(path)
    model.fit(X, y, epochs=4, initial_epoch=2, batch_size=32, seed=3,
              schedule=nn.schedules.ExponentialDecay(0.01, 0.5))
    nn.save(model, out)
""")


def test_resume_in_a_new_process_gives_the_same_bytes_as_training_straight(tmp_path):
    """4 epochs straight == 2 epochs, save, load in a new process, epochs 2..4: with
    dropout, BatchNorm, Adam, a schedule, shuffling and the model's standardizer."""
    d = nn.datasets.load_digits()
    X, y = d.X[:400], d.y[:400]

    def fresh():
        model = nn.Sequential([nn.Dense(64, 32, use_bias=False), nn.BatchNorm(32),
                               nn.Activation("relu"), nn.Dropout(0.8), nn.Dense(32, 10)],
                              seed=1)
        model.standardizer = nn.data.Standardizer().fit(X)
        return model

    kwargs = dict(loss=nn.SoftmaxCrossEntropy(), batch_size=32, seed=3,
                  schedule=nn.schedules.ExponentialDecay(0.01, 0.5))
    straight = fresh()
    straight.fit(X, y, optimizer=nn.Adam(0.01), epochs=4, **kwargs)
    first = fresh()
    first.fit(X, y, optimizer=nn.Adam(0.01), epochs=2, **kwargs)
    nn.save(first, tmp_path / "half.npz")
    script = tmp_path / "resume.py"
    script.write_text(_RESUME)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "half.npz"),
                             str(tmp_path / "done.npz")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_same(straight, nn.load(tmp_path / "done.npz"))


_WRITER = textwrap.dedent("""
    import sys, numpy as np, nn
    path = sys.argv[1]
    model = nn.Sequential([nn.Dense(784, 512), nn.Dense(512, 512), nn.Dense(512, 10)], seed=0)
    version = 1
    print("ready", flush=True)
    while True:
        model.params[...] = version
        nn.save(model, path)
        version += 1
""")


def test_a_writer_killed_mid_save_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "m.npz"
    model = nn.Sequential([nn.Dense(784, 512), nn.Dense(512, 512), nn.Dense(512, 10)], seed=0)
    model.params[...] = 0
    nn.save(model, path)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rng = np.random.default_rng(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(script), str(path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))  # somewhere in a save (each takes ~10 ms)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        loaded = nn.load(path)
        values = np.unique(loaded.params)
        assert values.size == 1  # one whole version, never a mix
    # A killed writer may leave its temporary behind, but never a second model file.
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-")} \
        == {"m.npz", "writer.py"}


def _rewrite(path, header=None, arrays=None, drop=()):
    """Rewrite a saved model with a changed header or arrays (no pickles)."""
    with np.load(path, allow_pickle=False) as npz:
        content = {k: npz[k] for k in npz.files if k not in drop}
    if header is not None:
        h = json.loads(content["header"].tobytes())
        header(h)
        content["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    content.update(arrays or {})
    with open(path, "wb") as fh:
        np.savez(fh, **content)


@pytest.mark.parametrize("change, message", [
    (dict(header=lambda h: h.update(version=FORMAT_VERSION + 1)), "newer than"),
    (dict(header=lambda h: h.pop("loss")), "lacks"),
    (dict(header=lambda h: h.update(extra=1)), "unknown fields"),
    (dict(header=lambda h: h.update(format="other")), "not a numba-nn model file"),
    (dict(header=lambda h: h["model"]["layers"][0].update(n_out=33)), "width 33"),
    (dict(header=lambda h: h["model"]["layers"][0].update(n_in=65)), "has shape"),
    (dict(header=lambda h: h["model"]["layers"][0].update(type="Conv2D")), "Conv2D"),
    (dict(header=lambda h: h["optimizer"].update(type="Lion")), "unknown optimizer"),
    (dict(header=lambda h: h["optimizer"].update(step=-1)), "bad optimizer step"),
    (dict(arrays={"params": np.zeros(3, np.float32)}), "shape"),
    (dict(arrays={"params": None}), "object|pickle|dtype"),
    (dict(arrays={"extra": np.zeros(1)}), "unexpected arrays"),
    (dict(drop=("optimizer.m",)), "missing array 'optimizer.m'"),
    (dict(drop=("header",)), "missing array 'header'"),
    (dict(arrays={"header": np.frombuffer(b"{not json", np.uint8)}), "not valid JSON"),
])
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path, change, message):
    model, _, _ = _trained(epochs=1)
    path = nn.save(model, tmp_path / "m.npz")
    if change.get("arrays", {}).get("params", 0) is None:
        # an object array: written with pickle by NumPy, refused on load
        with np.load(path) as npz:
            content = {k: npz[k] for k in npz.files}
        content["params"] = np.array([object()], dtype=object)
        with open(path, "wb") as fh:
            np.savez(fh, **content)
    else:
        _rewrite(path, **change)
    with pytest.raises(ModelFileError, match=message) as info:
        nn.load(path)
    assert str(path) in str(info.value)


def test_truncated_and_non_model_files(tmp_path):
    model, _, _ = _trained(epochs=1)
    path = nn.save(model, tmp_path / "m.npz")
    data = open(path, "rb").read()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match=str(bad)):
            nn.load(bad)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError):
        nn.load(text)
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "missing.npz")


def test_random_byte_flips_load_the_same_model_or_raise_the_clear_error(tmp_path):
    model, _, _ = _trained(epochs=1)
    path = nn.save(model, tmp_path / "m.npz")
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(0)
    outcomes = {"same": 0, "error": 0}
    for trial in range(300):
        corrupt = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(0, len(corrupt)))
            corrupt[i] ^= 1 << int(rng.integers(0, 8))
        bad = tmp_path / "flipped.npz"
        bad.write_bytes(bytes(corrupt))
        try:
            loaded = nn.load(bad)
        except ModelFileError:
            outcomes["error"] += 1
            continue
        _assert_same(model, loaded)  # anything else is a silent corruption
        outcomes["same"] += 1
    assert outcomes["error"] > 0


def test_save_rejects_what_is_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="nn.Sequential"):
        nn.save("model", tmp_path / "m.npz")


def test_two_threads_training_two_models_match_training_them_in_turn():
    import threading
    d = nn.datasets.load_digits()
    X = (d.X / 16).astype(np.float32)

    def train(seed):
        model = nn.Sequential([nn.Dense(64, 256, activation="relu"), nn.Dropout(0.9),
                               nn.Dense(256, 256, use_bias=False), nn.BatchNorm(256),
                               nn.Activation("relu"), nn.Dense(256, 10)], seed=seed)
        model.fit(X, d.y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.Adam(1e-3),
                  epochs=2, batch_size=300, seed=seed)
        return model.params.copy()

    expected = [train(0), train(1)]
    results = [None, None]

    def worker(k):
        results[k] = train(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_pickled_model_trains_on_like_the_original():
    import pickle
    model, X, y = _trained(epochs=1)
    clone = pickle.loads(pickle.dumps(model))
    _assert_same(model, clone)
    assert np.shares_memory(clone.layers[0].W, clone.params)  # views again, not copies
    model.fit(X, y, epochs=2, initial_epoch=1, batch_size=32)
    clone.fit(X, y, epochs=2, initial_epoch=1, batch_size=32)
    _assert_same(model, clone)
