"""nn: train fully connected networks on the CPU, fast, with Numba kernels underneath.

The public names (see README.md):

>>> import nn
>>> model = nn.Sequential([nn.Dense(64, 32, activation="relu"), nn.Dense(32, 10)], seed=0)

``nn.tuning`` and ``nn.sklearn`` are imported on first use, so that ``import nn`` stays
quick and needs neither scikit-learn nor Dask.
"""
from . import callbacks, data, datasets, initializers, schedules
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from ._threads import get_num_threads, set_num_threads
from .diagnostics import Diagnosis, diagnose, gradient_check
from .layers import Activation, Dense, Layer
from .layers import BatchNorm, Dropout
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy
from .model import Sequential, mlp
from .optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from .io import ModelFileError, load, save
from .training import DivergenceError, History
from .warmup import warmup
from .augment import Augment

__version__ = "0.1.0"

__all__ = [
    "Activation", "BinaryCrossEntropy", "Callback", "Dense", "DivergenceError", "History",
    "Layer", "Loss", "MeanSquaredError", "Optimizer", "SGD", "Sequential",
    "SoftmaxCrossEntropy", "data", "datasets", "get_num_threads", "gradient_check",
    "initializers", "set_num_threads", "tuning",
    "Adam", "Momentum", "RMSprop", "schedules",
]
__all__ += ["BatchNorm", "Dropout", "warmup"]
__all__ += ["Diagnosis", "EarlyStopping", "ModelCheckpoint", "ModelFileError", "diagnose",
            "load", "save"]
__all__ += ["Augment"]
__all__ += ["callbacks", "mlp"]
__all__ += ["export_onnx"]


def export_onnx(model, path):
    """Write ``model`` to ``path`` as an ONNX inference graph that gives ``predict``'s
    output (input ``"X"`` [N, n_features], output ``"Y"``; opset 17). Needs ``onnx``:
    ``pip install "numba-nn[onnx]"``. Full documentation: ``nn.onnx_export.export_onnx``.
    """
    from .onnx_export import export_onnx as export   # imports onnx: on first use only
    return export(model, path)


_LAZY = ("sklearn", "tuning")


def __getattr__(name):
    # Only for a submodule not imported yet: importing it makes it an attribute.
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
