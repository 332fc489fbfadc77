"""Model files: one ``.npz`` of plain arrays plus a JSON header, written atomically.

Contents: ``params`` and ``buffers`` (the model's flat buffers: every weight, bias,
gamma, beta and BatchNorm running statistic), the optimizer's state arrays
(``optimizer.<name>``), the standardizer's ``mean`` and ``scale`` if the model holds
one, and ``header``: UTF-8 JSON (as a uint8 array) with the format version, the
architecture (``Sequential.config()``), the loss, the optimizer's type,
hyperparameters and step count, and the layers' counters (Dropout's seed and step).

``load`` opens the file with ``allow_pickle=False``: nothing in a model file can run
code. Every problem with a file (not an npz, truncated, object arrays, missing or
unknown fields, a newer format, shapes that disagree with the architecture, NaN in
the parameters) raises ``ModelFileError`` (a ``ValueError``) naming the file.
"""
import json
import os

import numpy as np

from ._files import atomic_write
from ._validation import all_finite

FORMAT = "numba-nn model"
FORMAT_VERSION = 1
_HEADER_FIELDS = {"format", "version", "model", "loss", "optimizer", "layer_states",
                  "standardizer"}


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the problem."""


def save(model, path):
    """Write ``model`` (and its optimizer and standardizer) to ``path`` atomically.

    The file is written to a temporary name in the same folder, flushed and fsynced,
    then renamed over ``path``: a crash or a full disk during ``save`` leaves any
    previous file at ``path`` intact. Returns the path. Without a ``.npz`` suffix
    the name is used as given.
    """
    from .model import Sequential
    if not isinstance(model, Sequential):
        raise TypeError(f"nn.save: model must be an nn.Sequential; got {type(model).__name__}.")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise TypeError(f"nn.save: path must be a file name; got {path!r}.")
    arrays = {"params": model.params, "buffers": model.buffers}
    header = {"format": FORMAT, "version": FORMAT_VERSION, "model": model.config(),
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
    return atomic_write(path, lambda fh: np.savez(fh, **arrays), suffix=".npz")


def load(path):
    """The model saved at ``path``, with its loss, optimizer (and state) and standardizer.

    ``model.optimizer`` continues where it stopped: ``fit(..., optimizer=model.optimizer,
    initial_epoch=k)`` resumes training. Raises ``ModelFileError`` for any bad file,
    ``FileNotFoundError`` if there is none.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001  (untrusted bytes: any parse failure is theirs)
        # NumPy's reader can fail in many ways on corrupted bytes (BadZipFile and bad
        # CRCs, ValueError, EOFError, tokenize errors in a mangled .npy header, a
        # MemoryError for a header claiming a huge shape): all mean a bad file.
        raise ModelFileError(f"nn.load: {path!r} is not a readable model file "
                             f"({type(exc).__name__}: {exc}).") from None
    try:
        return _build(arrays)
    except ModelFileError as exc:
        raise ModelFileError(f"nn.load: {path!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (as above: the file's content is at fault)
        raise ModelFileError(f"nn.load: {path!r}: the file does not describe a valid model "
                             f"({type(exc).__name__}: {exc}).") from None


def _array(arrays, name, dtype=None, shape=None):
    if name not in arrays:
        raise ModelFileError(f"missing array {name!r}")
    a = arrays[name]
    if dtype is not None and a.dtype != dtype:
        raise ModelFileError(f"array {name!r} has dtype {a.dtype}; expected {np.dtype(dtype)}")
    if shape is not None and a.shape != shape:
        raise ModelFileError(f"array {name!r} has shape {a.shape}; expected {shape}")
    return a


def _header(arrays):
    raw = _array(arrays, "header", np.uint8)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"the header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError("the header is not a JSON object")
    if header.get("format") != FORMAT:
        raise ModelFileError(f"not a {FORMAT} file (format {header.get('format')!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"format version {version} is newer than this library's "
                             f"{FORMAT_VERSION}; upgrade numba-nn to load it")
    missing = _HEADER_FIELDS - set(header)
    unknown = set(header) - _HEADER_FIELDS
    if missing:
        raise ModelFileError(f"the header lacks {sorted(missing)}")
    if unknown:
        raise ModelFileError(f"the header has unknown fields {sorted(unknown)}")
    return header


def _build(arrays):
    from .data import Standardizer
    from .losses import LOSS_TYPES
    from .model import Sequential
    from .optimizers import OPTIMIZER_TYPES
    header = _header(arrays)
    config = header["model"]
    if not isinstance(config, dict) or set(config) != {"layers", "dtype", "seed"}:
        raise ModelFileError("the architecture must have exactly 'layers', 'dtype', 'seed'")
    model = Sequential.from_config(config)
    expected = {"header", "params", "buffers"}
    params = _array(arrays, "params", model.dtype, model.params.shape)
    buffers = _array(arrays, "buffers", model.dtype, model.buffers.shape)
    if not (all_finite(params) and all_finite(buffers)):
        raise ModelFileError("the parameters hold NaN or infinity")
    model.params[...] = params
    model.buffers[...] = buffers
    states = header["layer_states"]
    if not isinstance(states, dict):
        raise ModelFileError("layer_states must be an object")
    for key, state in states.items():
        i = int(key)
        if not (0 <= i < len(model.layers)) or not hasattr(model.layers[i], "set_state"):
            raise ModelFileError(f"layer_states names layer {key}, which has no state")
        model.layers[i].set_state(state)
    if header["loss"] is not None:
        if header["loss"] not in LOSS_TYPES:
            raise ModelFileError(f"unknown loss {header['loss']!r}")
        model.loss = LOSS_TYPES[header["loss"]]()
    opt = header["optimizer"]
    if opt is not None:
        if not isinstance(opt, dict) or set(opt) != {"type", "config", "step", "arrays"}:
            raise ModelFileError("the optimizer needs exactly 'type', 'config', 'step', "
                                 "'arrays'")
        if opt["type"] not in OPTIMIZER_TYPES:
            raise ModelFileError(f"unknown optimizer {opt['type']!r}")
        optimizer = OPTIMIZER_TYPES[opt["type"]](**opt["config"])
        if opt["step"] is not None:
            state = optimizer.init(model.params)
            names = [k for k, v in state._asdict().items() if isinstance(v, np.ndarray)]
            if sorted(opt["arrays"]) != sorted(names):
                raise ModelFileError(f"optimizer {opt['type']} state needs arrays {names}; "
                                     f"the file lists {opt['arrays']}")
            step = opt["step"]
            if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                raise ModelFileError(f"bad optimizer step {step!r}")
            for name in names:
                key = "optimizer." + name
                getattr(state, name)[...] = _array(arrays, key, model.dtype, model.params.shape)
                expected.add(key)
            optimizer.state = state._replace(step=step)
        model.optimizer = optimizer
    if header["standardizer"]:
        scaler = Standardizer()
        n = model.n_features
        scaler.mean_ = _array(arrays, "standardizer.mean", np.float64, (n,)).copy()
        scaler.scale_ = _array(arrays, "standardizer.scale", np.float64, (n,)).copy()
        if not (np.isfinite(scaler.mean_).all() and (scaler.scale_ > 0).all()
                and np.isfinite(scaler.scale_).all()):
            raise ModelFileError("the standardizer's statistics are not finite and positive")
        scaler.n_features_ = n
        model.standardizer = scaler
        expected |= {"standardizer.mean", "standardizer.scale"}
    extra = set(arrays) - expected
    if extra:
        raise ModelFileError(f"unexpected arrays {sorted(extra)}")
    return model
