"""nn: train fully connected networks on the CPU, fast, with Numba kernels underneath.

The public names (see README.md):

>>> import nn
>>> model = nn.Sequential([nn.Dense(64, 32, activation="relu"), nn.Dense(32, 10)], seed=0)
"""
from . import data, datasets, initializers, schedules, tuning
from ._threads import get_num_threads, set_num_threads
from .diagnostics import Diagnosis, diagnose, gradient_check
from .layers import Activation, Dense, Layer
from .layers import BatchNorm, Dropout
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy
from .model import Sequential
from .optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from .io import ModelFileError, load, save
from .training import Callback, DivergenceError, EarlyStopping, History, ModelCheckpoint
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
