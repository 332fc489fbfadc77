"""Model files: round trips, atomic writes, bad files, resuming bit for bit, version-1
(.npz) files, save errors. Hostile files (bounds on memory and time): test_io_bounds.py."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest
import safetensors
import safetensors.numpy

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


def _save_v1(model, path):
    """A version-1 file, written exactly as nn.save wrote them before version 2."""
    arrays = {"params": model.params, "buffers": model.buffers}
    header = {"format": "numba-nn model", "version": 1, "model": model.config(),
              "loss": None if model.loss is None else type(model.loss).__name__,
              "optimizer": None, "layer_states": model.layer_states(),
              "standardizer": model.standardizer is not None}
    opt = model.optimizer
    if opt is not None:
        names = [] if opt.state is None else [k for k, v in opt.state._asdict().items()
                                              if isinstance(v, np.ndarray)]
        header["optimizer"] = {"type": type(opt).__name__, "config": opt.config(),
                               "step": None if opt.state is None else int(opt.state.step),
                               "arrays": names}
        for name in names:
            arrays["optimizer." + name] = getattr(opt.state, name)
    if model.standardizer is not None:
        arrays["standardizer.mean"] = model.standardizer.mean_
        arrays["standardizer.scale"] = model.standardizer.scale_
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_save_load_round_trip(tmp_path):
    model, X, y = _trained()
    path = nn.save(model, tmp_path / "m.safetensors")
    loaded = nn.load(path)
    _assert_same(model, loaded)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_the_file_is_safetensors_that_other_tools_read(tmp_path):
    model, _, _ = _trained(epochs=1)
    path = nn.save(model, tmp_path / "m.npz")  # safetensors whatever the suffix
    tensors = safetensors.numpy.load_file(path)
    assert sorted(tensors) == ["buffers", "optimizer.m", "optimizer.v", "params",
                               "standardizer.mean", "standardizer.scale"]
    np.testing.assert_array_equal(tensors["params"], model.params)
    np.testing.assert_array_equal(tensors["optimizer.v"], model.optimizer.state.v)
    with safetensors.safe_open(path, framework="numpy") as f:
        header = json.loads(f.metadata()["numba-nn"])
    assert header["version"] == FORMAT_VERSION == 2
    assert header["model"] == model.config()
    assert header["optimizer"]["step"] == model.optimizer.state.step


def test_a_never_trained_model_round_trips(tmp_path):
    model = nn.Sequential([nn.Dense(3, 2)], dtype=np.float64, seed=4)
    loaded = nn.load(nn.save(model, tmp_path / "m.safetensors"))
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
    nn.save(first, tmp_path / "half.safetensors")
    script = tmp_path / "resume.py"
    script.write_text(_RESUME)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "half.safetensors"),
                             str(tmp_path / "done.safetensors")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_same(straight, nn.load(tmp_path / "done.safetensors"))


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
    path = tmp_path / "m.safetensors"
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
        == {"m.safetensors", "writer.py"}


def _read(path):
    """The tensors and the JSON header of a saved model."""
    with safetensors.safe_open(path, framework="numpy") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["numba-nn"])


def _metadata(header, tensors):
    """The ``__metadata__`` nn.save writes: the JSON header and a CRC-32 of it and of
    the tensors in name order."""
    text = header if isinstance(header, str) else json.dumps(header)
    crc = zlib.crc32(text.encode())
    for name in sorted(tensors):
        crc = zlib.crc32(np.ascontiguousarray(tensors[name]), crc)
    return {"numba-nn": text, "numba-nn.crc32": f"{crc:08x}"}


def _rewrite(path, header=None, tensors=None, text=None, metadata=None):
    """Rewrite a saved model with a changed header or tensors, with a valid checksum:
    what is refused is the change itself."""
    content, h = _read(path)
    if header is not None:
        header(h)
    if tensors is not None:
        tensors(content)
    if metadata is None:
        metadata = _metadata(h if text is None else text, content)
    with open(path, "wb") as fh:
        fh.write(safetensors.numpy.save(content, metadata=metadata))


@pytest.mark.parametrize("change, message", [
    (dict(header=lambda h: h.update(version=FORMAT_VERSION + 1)), "newer than"),
    (dict(header=lambda h: h.update(version=1)), "version 1 is a zip"),
    (dict(header=lambda h: h.pop("loss")), "lacks"),
    (dict(header=lambda h: h.update(extra=1)), "unknown fields"),
    (dict(header=lambda h: h.update(format="other")), "not a numba-nn model file"),
    (dict(header=lambda h: h["model"]["layers"][0].update(n_out=33)), "width 33"),
    (dict(header=lambda h: h["model"]["layers"][0].update(n_in=65)), "architecture needs"),
    (dict(header=lambda h: h["model"]["layers"][0].update(n_in=0)), "n_in must be >= 1"),
    (dict(header=lambda h: h["model"]["layers"][0].update(type="Conv2D")), "Conv2D"),
    (dict(header=lambda h: h["model"].update(dtype="float16")), "float16"),
    (dict(header=lambda h: h["optimizer"].update(type="Lion")), "unknown optimizer"),
    (dict(header=lambda h: h["optimizer"]["config"].update(lr=-1)), "lr must be > 0"),
    (dict(header=lambda h: h["optimizer"].update(step=-1)), "optimizer step must be an int"),
    (dict(header=lambda h: h["optimizer"].update(arrays=["m"])), "state arrays"),
    (dict(header=lambda h: h.update(loss="Hinge")), "unknown loss"),
    (dict(header=lambda h: h.update(layer_states={})), "layer_states must map"),
    (dict(header=lambda h: h.update(standardizer=1)), "standardizer must be true or false"),
    (dict(tensors=lambda t: t.update(params=np.zeros(3, np.float32))), "architecture needs"),
    (dict(tensors=lambda t: t.update(params=t["params"].astype(np.float64))), "'F64'"),
    (dict(tensors=lambda t: t.update(params=np.full_like(t["params"], np.nan))), "NaN"),
    (dict(tensors=lambda t: t.update({"standardizer.scale": -t["standardizer.scale"]})),
     "statistics are not finite and positive"),
    (dict(tensors=lambda t: t.update(extra=np.zeros(1))), "unexpected arrays 'extra'"),
    (dict(tensors=lambda t: t.pop("optimizer.m")), "missing array 'optimizer.m'"),
    (dict(metadata={}), "__metadata__ must hold"),
    (dict(text="{not json"), "not valid JSON"),
    (dict(text='{"format": 1, "format": 2}'), "a key appears twice"),
])
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path, change, message):
    model, _, _ = _trained(epochs=1)
    path = nn.save(model, tmp_path / "m.safetensors")
    _rewrite(path, **change)
    with pytest.raises(ModelFileError, match=message) as info:
        nn.load(path)
    assert str(path) in str(info.value)


def test_a_changed_value_fails_the_checksum(tmp_path):
    model, _, _ = _trained(epochs=1)
    path = nn.save(model, tmp_path / "m.safetensors")
    with safetensors.safe_open(path, framework="numpy") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["params"][7] += 1  # a valid file in every other respect
    with open(path, "wb") as fh:
        fh.write(safetensors.numpy.save(tensors, metadata=metadata))
    with pytest.raises(ModelFileError, match="checksum"):
        nn.load(path)


def test_truncated_and_non_model_files(tmp_path):
    model, _, _ = _trained(epochs=1)
    for name, save in (("m.safetensors", nn.save), ("m.npz", _save_v1)):
        path = tmp_path / name
        save(model, path)
        data = path.read_bytes()
        for cut in (0, 10, len(data) // 2, len(data) - 1):
            bad = tmp_path / f"cut{cut}-{name}"
            bad.write_bytes(data[:cut])
            with pytest.raises(ModelFileError, match=str(bad)):
                nn.load(bad)
    for text in ("hello", "hello, a longer text"):
        notes = tmp_path / "notes.txt"
        notes.write_text(text)
        with pytest.raises(ModelFileError):
            nn.load(notes)
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("name, save, trials", [("m.safetensors", nn.save, 300),
                                                ("m.npz", _save_v1, 100)])
def test_random_byte_flips_load_the_same_model_or_raise_the_clear_error(tmp_path, name, save,
                                                                        trials):
    model, _, _ = _trained(epochs=1)
    save(model, tmp_path / name)
    data = bytearray((tmp_path / name).read_bytes())
    rng = np.random.default_rng(0)
    outcomes = {"same": 0, "error": 0}
    for trial in range(trials):
        corrupt = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(0, len(corrupt)))
            corrupt[i] ^= 1 << int(rng.integers(0, 8))
        bad = tmp_path / ("flipped-" + name)
        bad.write_bytes(bytes(corrupt))
        try:
            loaded = nn.load(bad)
        except ModelFileError:
            outcomes["error"] += 1
            continue
        _assert_same(model, loaded)  # anything else is a silent corruption
        outcomes["same"] += 1
    assert outcomes["error"] > 0


# -- version 1 (.npz) files --------------------------------------------------------

def test_a_version_1_file_loads_bit_for_bit(tmp_path):
    model, X, _ = _trained()
    _save_v1(model, tmp_path / "old.npz")
    loaded = nn.load(tmp_path / "old.npz")
    _assert_same(model, loaded)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    # saved again, it is a version-2 file holding the same model
    _assert_same(model, nn.load(nn.save(loaded, tmp_path / "new.safetensors")))
    bare = nn.Sequential([nn.Dense(3, 2)], dtype=np.float64, seed=4)
    _save_v1(bare, tmp_path / "bare.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "bare.npz").params, bare.params)


def _rewrite_v1(path, header=None, arrays=None, drop=(), savez=np.savez):
    """Rewrite a version-1 file with a changed header or arrays (no pickles)."""
    with np.load(path, allow_pickle=False) as npz:
        content = {k: npz[k] for k in npz.files if k not in drop}
    if header is not None:
        h = json.loads(content["header"].tobytes())
        header(h)
        content["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    content.update(arrays or {})
    with open(path, "wb") as fh:
        savez(fh, **content)


@pytest.mark.parametrize("change, message", [
    (dict(header=lambda h: h.update(version=2)), "version 2 safetensors"),
    (dict(header=lambda h: h.pop("loss")), "lacks"),
    (dict(header=lambda h: h["optimizer"].update(step=-1)), "optimizer step must be an int"),
    (dict(arrays={"params": np.zeros(3, np.float32)}), "architecture needs"),
    (dict(arrays={"params": np.zeros(2442, np.float64)}), "architecture needs"),
    (dict(arrays={"params": np.zeros(4884, np.float16)}), "has dtype float16"),
    (dict(arrays={"extra": np.zeros(1)}), "unexpected arrays 'extra'"),
    (dict(drop=("optimizer.m",)), "missing array 'optimizer.m'"),
    (dict(drop=("header",)), "missing array 'header'"),
    (dict(arrays={"header": np.frombuffer(b"{not json", np.uint8)}), "not valid JSON"),
    (dict(savez=np.savez_compressed), "compressed"),
])
def test_bad_version_1_files_raise_a_clear_error_naming_the_file(tmp_path, change, message):
    model, _, _ = _trained(epochs=1)
    assert model.params.size == 2442
    path = tmp_path / "m.npz"
    _save_v1(model, path)
    _rewrite_v1(path, **change)
    with pytest.raises(ModelFileError, match=message) as info:
        nn.load(path)
    assert str(path) in str(info.value)


def test_a_version_1_object_array_is_refused_unread(tmp_path):
    model, _, _ = _trained(epochs=1)
    path = tmp_path / "m.npz"
    _save_v1(model, path)
    with np.load(path) as npz:
        content = {k: npz[k] for k in npz.files}
    content["params"] = np.array([object()], dtype=object)  # NumPy pickles it
    with open(path, "wb") as fh:
        np.savez(fh, **content)
    with pytest.raises(ModelFileError, match="'params'"):
        nn.load(path)


# -- save errors ---------------------------------------------------------------------

def test_save_errors_name_the_path_the_user_passed(tmp_path, monkeypatch):
    model = nn.Sequential([nn.Dense(3, 2)], seed=0)
    missing = tmp_path / "no-such-folder" / "m.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        nn.save(model, missing)
    assert info.value.filename == str(missing)
    assert str(info.value) == (f"[Errno 2] nn.save: No such file or directory: "
                               f"{str(missing)!r}")

    target = tmp_path / "m.safetensors"

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), src, None, dst)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    for name, fake, code in (("replace", read_only, errno.EROFS),
                             ("fsync", full, errno.ENOSPC)):
        with monkeypatch.context() as patch:
            patch.setattr(os, name, fake)
            with pytest.raises(OSError) as info:
                nn.save(model, target)
        assert info.value.errno == code and info.value.filename == str(target)
        assert str(info.value) == f"[Errno {code}] nn.save: {os.strerror(code)}: {str(target)!r}"
        assert ".tmp-" not in str(info.value)
        assert list(tmp_path.iterdir()) == []  # the temporary is removed


def test_save_rejects_what_is_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="nn.Sequential"):
        nn.save("model", tmp_path / "m.safetensors")


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
