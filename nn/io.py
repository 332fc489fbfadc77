"""Model files: safetensors, checked against their architecture before anything is
allocated, written atomically.

Format (version 2): a safetensors file, readable by other tools (e.g.
``safetensors.numpy.load_file``): an 8-byte little-endian header length, a JSON header
giving each tensor's dtype, shape and byte range, then the raw little-endian tensors.
No compression, no pickle. The tensors: ``params`` and ``buffers`` (the model's flat
buffers: every weight, bias, gamma, beta and BatchNorm running statistic), the
optimizer's state arrays (``optimizer.<name>``), and the standardizer's
``standardizer.mean`` and ``standardizer.scale`` if the model holds one. The header's
``__metadata__`` holds two strings: ``numba-nn``, our JSON header (format name and
version, the architecture ``Sequential.config()`` (layers, dtype, seed and precision;
a file written before precision existed loads as "fp32"), the loss, the optimizer's type,
hyperparameters, step count and array names, the layers' counters ``layer_states``
(Dropout's seed and step), whether a standardizer is saved); and ``numba-nn.crc32``,
the CRC-32 (8 hex digits) of that JSON's UTF-8 bytes followed by the tensors' bytes in
name order (safetensors checks no content; this catches a corrupted file). ``save``
writes this format whatever the suffix (``.safetensors`` is the usual one). Version-1
files (``.npz`` from ``np.savez``: the same arrays plus a ``header`` array of JSON
bytes) still load; the format is told by content (a zip starts with ``PK\\x03\\x04``),
not by suffix.

Loading is bounded whatever the file declares. Before reading any array, ``load``
reads the header itself and checks: its length (at most ``MAX_HEADER_BYTES``), the
number of arrays (at most ``MAX_ENTRIES``; for a zip, the central directory's count and
size before ``zipfile`` parses it), every array's name, dtype, shape and stored size
against the architecture (its parameter count is computed from the layers'
``param_shapes``, nothing allocated), that the arrays fit the file (safetensors: byte
ranges that follow one another and end with the file; zip: members stored
uncompressed whose sizes add up within the file), and the counters: Dropout seeds and
steps and the optimizer step in [0, ``MAX_COUNTER``] (the kernels take int64), the
model seed in [0, ``MAX_SEED``], layer widths in [1, ``MAX_WIDTH``]. Only then is the
model allocated and its arrays read (a megabyte at a time): a load takes the model's
own memory plus the header's (a 1 MiB header parses in 0.15 s into at most ~30 MB).

Nothing in a model file can run code. Every problem with a file (not a model file,
truncated, corrupted, over a cap, missing or unknown fields, a newer format, arrays
that disagree with the architecture, NaN in the parameters) raises
``ModelFileError`` (a ``ValueError``) naming the file, in a message of a few lines.
"""
import json
import math
import os
import reprlib
import struct
import zipfile
import zlib

import numpy as np
import safetensors
import safetensors.numpy

from ._files import atomic_write
from ._validation import all_finite
from .model import MAX_SEED

FORMAT = "numba-nn model"
FORMAT_VERSION = 2
#: Longest JSON header accepted (a real one is a few KB).
MAX_HEADER_BYTES = 1 << 20
#: Most arrays in a file (a model has at most 7).
MAX_ENTRIES = 16
#: Largest layer width (Dense ``n_in``/``n_out``, BatchNorm ``n``).
MAX_WIDTH = 2**31 - 1
#: Largest Dropout seed or step and optimizer step: the kernels take an int64.
MAX_COUNTER = 2**63 - 1

_HEADER_FIELDS = {"format", "version", "model", "loss", "optimizer", "layer_states",
                  "standardizer"}
_META_KEY, _CRC_KEY = "numba-nn", "numba-nn.crc32"
_DTYPE_CODES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}  # safetensors'
_MAX_NPY_HEADER = 4096            # a version-1 member's .npy header (NumPy writes 128 bytes)
_MAX_ZIP_DIRECTORY = 64 * 1024    # a version-1 file's central directory (about 500 bytes)
_CHUNK = 1 << 20                  # bytes of an array read at a time
# A zip's end of central directory record, and the zip64 locator and record.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")

_short = reprlib.Repr()   # values quoted in messages: long strings, lists, ints cut short
_short.maxstring = _short.maxother = 60
_short.maxlong = 40


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the problem."""


def save(model, path):
    """Write ``model`` (and its optimizer and standardizer) to ``path`` atomically.

    The file is safetensors whatever the suffix (``.safetensors`` is the usual one).
    It is written to a temporary name in the same folder, flushed and fsynced, then
    renamed over ``path``: a crash or a full disk during ``save`` leaves any previous
    file at ``path`` intact. Returns the path. An ``OSError`` names ``path``.
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
        arrays["standardizer.mean"] = np.ascontiguousarray(model.standardizer.mean_)
        arrays["standardizer.scale"] = np.ascontiguousarray(model.standardizer.scale_)
    text = json.dumps(header)
    metadata = {_META_KEY: text, _CRC_KEY: _crc32(text, arrays)}
    data = safetensors.numpy.save(arrays, metadata=metadata)
    try:
        return atomic_write(path, lambda fh: fh.write(data), suffix=".safetensors")
    except OSError as exc:
        # The temporary file's name, or none (a full disk), would not tell which save failed.
        # OSError's str adds the file name: "[Errno 30] nn.save: Read-only ...: 'm'".
        raise type(exc)(exc.errno, f"nn.save: {exc.strerror or exc}", path) from exc


def load(path):
    """The model saved at ``path``, with its loss, optimizer (and state) and standardizer.

    ``model.optimizer`` continues where it stopped: ``fit(..., optimizer=model.optimizer,
    initial_epoch=k)`` resumes training. Reads version-2 (safetensors) and version-1
    (``.npz``) files. Raises ``ModelFileError`` for any bad file, ``FileNotFoundError``
    if there is none.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            return _load(fh, path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ModelFileError as exc:
        raise ModelFileError(f"nn.load: {path!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (untrusted bytes: any parse failure is theirs)
        # The zip, .npy and safetensors readers fail in many ways on corrupted bytes
        # (BadZipFile and bad CRCs, EOFError, a mangled .npy header, SafetensorError):
        # all mean a bad file.
        raise ModelFileError(f"nn.load: {path!r} is not a readable model file "
                             f"({type(exc).__name__}: {_clip(exc)}).") from None


def _load(fh, path):
    size = os.fstat(fh.fileno()).st_size
    start = fh.read(8)
    if start[:4] == b"PK\x03\x04":
        return _load_npz(fh, size)
    if len(start) < 8:
        raise ModelFileError(f"the file is {size} bytes long, too short for a model file")
    return _load_safetensors(fh, path, size, int.from_bytes(start, "little"))


# -- version 2: safetensors -----------------------------------------------------------

def _load_safetensors(fh, path, size, n):
    if n > MAX_HEADER_BYTES:
        raise ModelFileError(f"the safetensors header is {n} bytes long; a model file's is "
                             f"at most {MAX_HEADER_BYTES} (or this is not a model file)")
    if 8 + n > size:
        raise ModelFileError(f"the header claims {n} bytes but the file holds {size - 8} "
                             f"after the length: it is truncated")
    entries = _parse_json(fh.read(n), "the safetensors header")
    if not isinstance(entries, dict):
        raise ModelFileError("the safetensors header is not a JSON object")
    meta = entries.pop("__metadata__", None)
    if len(entries) > MAX_ENTRIES:
        raise ModelFileError(f"the file holds {len(entries)} arrays; a model file holds at "
                             f"most {MAX_ENTRIES}")
    if not (isinstance(meta, dict) and set(meta) == {_META_KEY, _CRC_KEY}
            and all(isinstance(v, str) for v in meta.values())):
        raise ModelFileError(f"not a {FORMAT} file: the safetensors __metadata__ must hold "
                             f"the strings {_META_KEY!r} and {_CRC_KEY!r}; got "
                             f"{_short.repr(meta)}")
    text = meta[_META_KEY]
    # A lone surrogate (escaped in the outer JSON) fails the parse below as bad UTF-8.
    plan = _Plan(_parse_json(text.encode("utf-8", "surrogatepass"), "the numba-nn header"), 2)
    _check_entries(entries, plan.arrays, size - 8 - n)
    model, targets = plan.allocate()
    with safetensors.safe_open(path, framework="numpy") as f:
        for name, out in targets.items():
            tensor = f.get_slice(name)
            # The file may have been replaced since its header was read.
            if tensor.get_shape() != list(out.shape) \
                    or tensor.get_dtype() != _DTYPE_CODES[out.dtype]:
                raise ModelFileError(f"array {name!r} changed while the file was read")
            step = _CHUNK // out.itemsize   # a chunk at a time: no temporary of its size
            for start in range(0, out.size, step):
                stop = min(start + step, out.size)
                out[start:stop] = tensor[start:stop]
    if _crc32(text, targets) != meta[_CRC_KEY]:
        raise ModelFileError(f"the content does not match its checksum "
                             f"{_short.repr(meta[_CRC_KEY])}: the file is corrupted, or was "
                             f"changed after saving")
    return plan.finish(model, targets)


def _check_entries(entries, arrays, data_size):
    """Each safetensors entry against the array the architecture needs, and the
    byte ranges against the file: before anything is allocated or read."""
    _check_names(set(entries), set(arrays))
    spans = []
    for name, entry in entries.items():
        dtype, shape = arrays[name]
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
            raise ModelFileError(f"array {name!r} must have exactly 'dtype', 'shape' and "
                                 f"'data_offsets'; got {_short.repr(entry)}")
        if entry["dtype"] != _DTYPE_CODES[dtype] or entry["shape"] != list(shape) \
                or not all(_is_int(d) for d in entry["shape"]):
            raise ModelFileError(f"array {name!r} has dtype {_short.repr(entry['dtype'])} "
                                 f"and shape {_short.repr(entry['shape'])}; the architecture "
                                 f"needs {_DTYPE_CODES[dtype]} and {list(shape)}")
        offsets = entry["data_offsets"]
        need = dtype.itemsize * math.prod(shape)
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(_is_int(o) for o in offsets) and 0 <= offsets[0]
                and offsets[1] - offsets[0] == need):
            raise ModelFileError(f"array {name!r} has data_offsets {_short.repr(offsets)}; "
                                 f"its dtype and shape need a range of {need} bytes")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise ModelFileError(f"array {name!r} starts at byte {begin} of the data; the "
                                 f"arrays must follow one another from 0 (expected {end})")
        end = stop
    if end != data_size:
        raise ModelFileError(f"the arrays need {end} bytes after the header; the file holds "
                             f"{data_size}")


def _crc32(text, arrays):
    """CRC-32 (8 hex digits) of the JSON header and the arrays, in name order."""
    crc = zlib.crc32(text.encode("utf-8"))
    for name in sorted(arrays):
        crc = zlib.crc32(arrays[name], crc)
    return f"{crc:08x}"


# -- version 1: .npz (a zip of .npy members) ------------------------------------------

def _load_npz(fh, size):
    _check_zip_directory(fh, size)
    with zipfile.ZipFile(fh) as zf:
        members = {}
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if not info.filename.endswith(".npy"):
                raise ModelFileError(f"member {_short.repr(info.filename)} is not an .npy "
                                     f"array")
            if name in members:
                raise ModelFileError(f"member {_short.repr(info.filename)} appears twice")
            if info.compress_type != zipfile.ZIP_STORED \
                    or info.compress_size != info.file_size:
                raise ModelFileError(f"member {_short.repr(info.filename)} is compressed; "
                                     f"model files store arrays uncompressed")
            members[name] = info
        if "header" not in members:
            raise ModelFileError("missing array 'header'")
        info = members["header"]
        if info.file_size > MAX_HEADER_BYTES + _MAX_NPY_HEADER:
            raise ModelFileError(f"the header array is {info.file_size} bytes long; a model "
                                 f"file's is at most {MAX_HEADER_BYTES}")
        with zf.open(info) as fp:
            dtype, shape = _npy_header(fp, info)
            if dtype != np.uint8 or len(shape) != 1:
                raise ModelFileError(f"the header array has dtype {dtype} and shape "
                                     f"{_short.repr(shape)}; expected uint8 bytes")
            plan = _Plan(_parse_json(fp.read(), "the header"), 1)
        del members["header"]
        _check_names(set(members), set(plan.arrays))
        for name, info in members.items():
            dtype, shape = plan.arrays[name]
            need = dtype.itemsize * math.prod(shape)
            if not need < info.file_size <= need + _MAX_NPY_HEADER:
                raise ModelFileError(f"member {name!r} is {info.file_size} bytes long; the "
                                     f"architecture needs a {dtype} array of shape {shape} "
                                     f"({need} bytes and an .npy header)")
        stored = sum(info.compress_size for info in zf.infolist())
        if stored > size:
            raise ModelFileError(f"the zip's members add up to {stored} bytes; the file "
                                 f"holds {size}")
        model, targets = plan.allocate()
        for name, out in targets.items():
            with zf.open(members[name]) as fp:
                dtype, shape = _npy_header(fp, members[name])
                if (dtype, shape) != plan.arrays[name]:
                    raise ModelFileError(f"array {name!r} has dtype {dtype} and shape "
                                         f"{_short.repr(shape)}; expected "
                                         f"{plan.arrays[name][0]} and {plan.arrays[name][1]}")
                _read_into(fp, out)
    return plan.finish(model, targets)


def _check_zip_directory(fh, size):
    """Refuse a zip whose central directory lists more than MAX_ENTRIES members or
    spans more than _MAX_ZIP_DIRECTORY bytes, before ``zipfile`` parses (and allocates
    for) every entry. The end records are found as ``zipfile`` finds them; of the two
    places a zip64 record may be looked for, both are checked."""
    search = max(size - _EOCD.size - (1 << 16), 0)   # where zipfile looks (a comment's room)
    first = max(search - _EOCD64_LOCATOR.size - _EOCD64.size, 0)
    fh.seek(first)
    tail = fh.read()
    at = len(tail) - _EOCD.size
    if not (at >= 0 and tail.startswith(b"PK\x05\x06", at) and tail.endswith(b"\0\0")):
        at = tail.rfind(b"PK\x05\x06", search - first)
        if at < 0 or len(tail) - at < _EOCD.size:
            raise ModelFileError("not a zip file: no end of central directory record")
    records = [_EOCD.unpack_from(tail, at)[4:6]]
    locator = at - _EOCD64_LOCATOR.size
    if locator >= 0 and tail.startswith(b"PK\x06\x07", locator):
        offset = _EOCD64_LOCATOR.unpack_from(tail, locator)[2]
        for where in (first + locator - _EOCD64.size, offset):
            if 0 <= where <= size - _EOCD64.size:
                fh.seek(where)
                record = fh.read(_EOCD64.size)
                if record.startswith(b"PK\x06\x06"):
                    records.append(_EOCD64.unpack(record)[7:9])
    entries = max(count for count, _ in records)
    directory = max(length for _, length in records)
    if entries > MAX_ENTRIES:
        raise ModelFileError(f"the zip holds {entries} members; a model file holds at most "
                             f"{MAX_ENTRIES}")
    if directory > _MAX_ZIP_DIRECTORY:
        raise ModelFileError(f"the zip's central directory is {directory} bytes long; a "
                             f"model file's is at most {_MAX_ZIP_DIRECTORY}")


def _npy_header(fp, info):
    """The dtype and shape of an .npy member, its header read with a bounded size and
    its data size checked against the member's."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(
            fp, max_header_size=_MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(
            fp, max_header_size=_MAX_NPY_HEADER)
    else:
        raise ModelFileError(f"member {_short.repr(info.filename)} has .npy format "
                             f"version {version}; expected 1.0 or 2.0")
    data = dtype.itemsize * math.prod(shape)
    if fp.tell() + data != info.file_size:
        raise ModelFileError(f"member {_short.repr(info.filename)} declares {data} bytes of "
                             f"data; it holds {info.file_size - fp.tell()}")
    return dtype, shape


def _read_into(fp, out):
    """Fill ``out`` from ``fp`` a chunk at a time (no temporary of its size)."""
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        got = fp.readinto(view[done:done + _CHUNK])
        if not got:
            raise ModelFileError("an array is truncated")
        done += got


# -- the header, the architecture, the model -------------------------------------------

class _Plan:
    """What a header describes, checked: the layers (built, nothing allocated), the
    arrays the file must hold (``arrays``: name -> (dtype, shape)), the counters."""

    def __init__(self, header, version):
        from .layers import Dense
        from .losses import LOSS_TYPES
        _check_header(header, version)
        self.header = header
        self.layers, self.dtype, self.seed, self.precision = _architecture(header["model"])
        n_params = sum(math.prod(shape) for layer in self.layers
                       for _, shape in layer.param_shapes())
        n_buffers = sum(math.prod(shape) for layer in self.layers
                        for _, shape in layer.buffer_shapes())
        self.n_features = next(layer.n_in for layer in self.layers
                               if isinstance(layer, Dense))
        self.arrays = {"params": (self.dtype, (n_params,)),
                       "buffers": (self.dtype, (n_buffers,))}
        self.optimizer, self.step, self.state_names = _optimizer(header["optimizer"],
                                                                 self.dtype)
        for name in self.state_names:
            self.arrays["optimizer." + name] = (self.dtype, (n_params,))
        if not isinstance(header["standardizer"], bool):
            raise ModelFileError(f"standardizer must be true or false; got "
                                 f"{_short.repr(header['standardizer'])}")
        if header["standardizer"]:
            for name in ("standardizer.mean", "standardizer.scale"):
                self.arrays[name] = (np.dtype(np.float64), (self.n_features,))
        loss = header["loss"]
        if loss is not None and not (isinstance(loss, str) and loss in LOSS_TYPES):
            raise ModelFileError(f"unknown loss {_short.repr(loss)}; expected null or one of "
                                 f"{sorted(LOSS_TYPES)}")
        _check_layer_states(header["layer_states"], self.layers)

    def allocate(self):
        """The model and the arrays to read into, name -> array: the first allocation."""
        from .model import Sequential
        model = Sequential(self.layers, dtype=self.dtype, seed=self.seed,
                           precision=self.precision)
        targets = {"params": model.params, "buffers": model.buffers}
        if self.step is not None:
            state = self.optimizer.init(model.params)._replace(step=self.step)
            self.optimizer.state = state
            for name in self.state_names:
                targets["optimizer." + name] = getattr(state, name)
        if self.header["standardizer"]:
            for name in ("standardizer.mean", "standardizer.scale"):
                targets[name] = np.empty(self.n_features)
        return model, targets

    def finish(self, model, arrays):
        """The model with what was read, after the checks that need the values."""
        from .data import Standardizer
        from .losses import LOSS_TYPES
        if not (all_finite(model.params) and all_finite(model.buffers)):
            raise ModelFileError("the parameters hold NaN or infinity")
        model.set_layer_states(self.header["layer_states"])
        if self.header["loss"] is not None:
            model.loss = LOSS_TYPES[self.header["loss"]]()
        model.optimizer = self.optimizer
        if self.header["standardizer"]:
            scaler = Standardizer()
            scaler.mean_ = arrays["standardizer.mean"]
            scaler.scale_ = arrays["standardizer.scale"]
            if not (np.isfinite(scaler.mean_).all() and (scaler.scale_ > 0).all()
                    and np.isfinite(scaler.scale_).all()):
                raise ModelFileError("the standardizer's statistics are not finite and "
                                     "positive")
            scaler.n_features_ = self.n_features
            model.standardizer = scaler
        return model


def _check_header(header, version):
    if not isinstance(header, dict):
        raise ModelFileError("the header is not a JSON object")
    if header.get("format") != FORMAT:
        raise ModelFileError(f"not a {FORMAT} file (format "
                             f"{_short.repr(header.get('format'))})")
    got = header.get("version")
    if not _is_int(got) or got < 1:
        raise ModelFileError(f"bad format version {_short.repr(got)}; expected an integer "
                             f">= 1")
    if got > FORMAT_VERSION:
        raise ModelFileError(f"format version {_short.repr(got)} is newer than this "
                             f"library's {FORMAT_VERSION}; upgrade numba-nn to load it")
    if got != version:
        raise ModelFileError(f"a format-version-{got} header in a "
                             f"{'zip' if version == 1 else 'safetensors'} file; version 1 "
                             f"is a zip (.npz), version 2 safetensors")
    missing = _HEADER_FIELDS - set(header)
    unknown = set(header) - _HEADER_FIELDS
    if missing:
        raise ModelFileError(f"the header lacks {sorted(missing)}")
    if unknown:
        raise ModelFileError(f"the header has unknown fields {_names(unknown)}")


def _architecture(config):
    """The layers of ``config`` (built: they allocate nothing), its dtype, seed and
    precision ("fp32" when absent: files from before precision existed)."""
    from .layers import LAYER_TYPES, Dense
    from .model import PRECISIONS
    if not isinstance(config, dict) or not (
            {"layers", "dtype", "seed"} <= set(config) <= {"layers", "dtype", "seed",
                                                           "precision"}):
        raise ModelFileError("the architecture must have exactly 'layers', 'dtype', 'seed' "
                             "(and optionally 'precision')")
    specs, dtype = config["layers"], config["dtype"]
    precision = config.get("precision", "fp32")
    if not isinstance(specs, list) or not specs:
        raise ModelFileError(f"the architecture's layers must be a non-empty list; got "
                             f"{_short.repr(specs)}")
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"the architecture's dtype must be 'float32' or 'float64'; got "
                             f"{_short.repr(dtype)}")
    _check_int("the model seed", config["seed"], 0, MAX_SEED)
    if not (isinstance(precision, str) and precision in PRECISIONS):
        raise ModelFileError(f"the architecture's precision must be 'fp32' or 'bf16'; got "
                             f"{_short.repr(precision)}")
    if precision == "bf16" and dtype != "float32":
        raise ModelFileError(f"the architecture's precision 'bf16' needs dtype 'float32'; "
                             f"got {_short.repr(dtype)}")
    layers = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ModelFileError(f"layer {i} must be an object; got {_short.repr(spec)}")
        kind = spec.get("type")
        if not (isinstance(kind, str) and kind in LAYER_TYPES):
            raise ModelFileError(f"layer {i} has type {_short.repr(kind)}; expected one of "
                                 f"{sorted(LAYER_TYPES)}")
        try:
            layer = LAYER_TYPES[kind](**{k: v for k, v in spec.items() if k != "type"})
        except (TypeError, ValueError, OverflowError) as exc:
            raise ModelFileError(f"layer {i}: {_clip(exc)}") from None
        for name, shape in layer.param_shapes() + layer.buffer_shapes():
            if max(shape) > MAX_WIDTH:
                raise ModelFileError(f"layer {i} ({kind}) has {name} of shape "
                                     f"{_short.repr(shape)}; widths are at most {MAX_WIDTH}")
        layers.append(layer)
    if not any(isinstance(layer, Dense) for layer in layers):
        raise ModelFileError("the architecture has no Dense layer")
    width = None
    try:  # chain the widths as Sequential will, before it allocates
        for layer in layers:
            width = layer.output_width(width)
    except ValueError as exc:
        raise ModelFileError(f"the architecture is invalid: {_clip(exc)}") from None
    return layers, np.dtype(dtype), config["seed"], precision


def _optimizer(spec, dtype):
    """The optimizer (built, no state yet), its step and its state arrays' names."""
    from .optimizers import OPTIMIZER_TYPES
    if spec is None:
        return None, None, []
    if not isinstance(spec, dict) or set(spec) != {"type", "config", "step", "arrays"}:
        raise ModelFileError("the optimizer needs exactly 'type', 'config', 'step', 'arrays'")
    kind = spec["type"]
    if not (isinstance(kind, str) and kind in OPTIMIZER_TYPES):
        raise ModelFileError(f"unknown optimizer {_short.repr(kind)}; expected one of "
                             f"{sorted(OPTIMIZER_TYPES)}")
    if not isinstance(spec["config"], dict):
        raise ModelFileError(f"the optimizer's config must be an object; got "
                             f"{_short.repr(spec['config'])}")
    try:
        optimizer = OPTIMIZER_TYPES[kind](**spec["config"])
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"optimizer {kind}: {_clip(exc)}") from None
    names = []
    if spec["step"] is not None:
        _check_int("the optimizer step", spec["step"], 0, MAX_COUNTER)
        # A state for an empty buffer: the names of the arrays, nothing allocated.
        names = [k for k, v in optimizer.init(np.zeros(0, dtype))._asdict().items()
                 if isinstance(v, np.ndarray)]
    if not (isinstance(spec["arrays"], list) and spec["arrays"] == names):
        raise ModelFileError(f"optimizer {kind} with step {_short.repr(spec['step'])} has "
                             f"state arrays {names}; the file lists "
                             f"{_short.repr(spec['arrays'])}")
    return optimizer, spec["step"], names


def _check_layer_states(states, layers):
    stateful = {str(i): layer for i, layer in enumerate(layers) if hasattr(layer, "state")}
    if not isinstance(states, dict) or set(states) != set(stateful):
        raise ModelFileError(f"layer_states must map exactly the layers with state "
                             f"{_names(stateful)} to their counters; got "
                             f"{_short.repr(states)}")
    for key, state in states.items():
        fields = set(stateful[key].state())
        if not isinstance(state, dict) or set(state) != fields:
            raise ModelFileError(f"layer_states[{key!r}] must have exactly {sorted(fields)}; "
                                 f"got {_short.repr(state)}")
        for name, value in state.items():
            _check_int(f"layer_states[{key!r}][{name!r}]", value, 0, MAX_COUNTER)


# -- helpers ----------------------------------------------------------------------------

def _parse_json(raw, what):
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ModelFileError(f"{what} nests too deeply") from None
    except ValueError as exc:  # bad UTF-8 or JSON, a repeated key, an int of 4300+ digits
        raise ModelFileError(f"{what} is not valid JSON ({_clip(exc)})") from None


def _unique_keys(pairs):
    # A repeated key would mean one thing here and maybe another to another reader.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in an object")
    return result


def _check_names(got, expected):
    missing, unexpected = expected - got, got - expected
    if missing:
        raise ModelFileError(f"missing array {_names(missing)}")
    if unexpected:
        raise ModelFileError(f"unexpected arrays {_names(unexpected)}")


def _check_int(what, value, low, high):
    if not _is_int(value) or not low <= value <= high:
        raise ModelFileError(f"{what} must be an integer in [{low}, {high}]; got "
                             f"{_short.repr(value)}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _names(names, limit=5):
    """Up to ``limit`` names, each cut short, and how many more."""
    shown = sorted(names, key=str)[:limit]
    text = ", ".join(_short.repr(n) for n in shown)
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _clip(exc, limit=300):
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
