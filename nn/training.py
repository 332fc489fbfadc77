"""The training loop: mini-batch gradient descent over a ``Sequential``.

One step is: gather the batch's rows into a reused buffer, forward through the layer
kernels, the fused loss-and-gradient kernel, backward through the layer kernels, and
one optimizer kernel over the flat parameter buffer. After the first batch of each
size nothing is allocated.
"""
import math
import sys
import time

import numpy as np

from ._validation import check_bool, check_scalar
from .data import epoch_order
from .losses import check_loss
from .optimizers import SGD, check_optimizer


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite cost; the model holds the last finite weights."""


class History:
    """Per-epoch records of a ``fit``.

    ``history["loss"]`` (the cost: mean mini-batch loss plus the penalty),
    ``"accuracy"`` (training accuracy over the epoch's mini-batches, for classification),
    ``"dev_loss"``, ``"dev_accuracy"`` (with ``validation_data``), ``"lr"`` and
    ``"time"`` (seconds) are lists with one value per epoch; ``epochs`` lists the
    epoch numbers. ``stopped_epoch`` and ``stop_reason`` say why training ended early.
    """

    def __init__(self):
        self.history = {}
        self.epochs = []
        self.stopped_epoch = None
        self.stop_reason = None

    def record(self, epoch, logs):
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def last(self):
        """The last epoch's values as a dict."""
        return {k: v[-1] for k, v in self.history.items()}

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items()) if self.epochs else ""
        return f"History(epochs={len(self.epochs)}{', ' if last else ''}{last})"


class Callback:
    """Hooks into ``fit``. Set ``model.stop_training = True`` to stop after this epoch."""

    def on_train_begin(self, model, history):
        pass

    def on_epoch_end(self, model, epoch, logs, history):
        pass

    def on_train_end(self, model, history):
        pass


def _format_logs(epoch, epochs, logs):
    parts = [f"epoch {epoch + 1}/{epochs}"]
    parts += [f"{k} {v:.4f}" if k != "lr" else f"lr {v:.3g}" for k, v in logs.items()
              if k != "time"]
    parts.append(f"{logs['time']:.2f}s")
    return "  ".join(parts)


def fit(model, X, y, *, loss, optimizer=None, epochs=10, batch_size=32, l2=0.0, l1=0.0,
        schedule=None, validation_data=None, callbacks=(), shuffle=True, seed=0,
        verbose=0, initial_epoch=0):
    """Train ``model`` by mini-batch gradient descent and return a ``History``.

    Parameters
    ----------
    X : array (n_samples, n_features)
    y : targets for ``loss`` (class indices or one-hot for SoftmaxCrossEntropy)
    loss : SoftmaxCrossEntropy, BinaryCrossEntropy or MeanSquaredError
    optimizer : an optimizer object; default ``SGD(lr=0.01)``. Kept as ``model.optimizer``.
    epochs : int > 0
        Train until this epoch count (counting from ``initial_epoch``).
    batch_size : int > 0
        Rows per step; the last partial batch is kept. ``batch_size >= n_samples`` is
        batch gradient descent.
    l2, l1 : float >= 0
        Penalties ``l2/(2m) sum ||W||^2`` and ``l1/m sum |W|`` over Dense weights, m the
        rows in the mini-batch; their gradients enter in the dense backward kernel.
    schedule : callable ``schedule(epoch) -> lr`` or None
        Sets the optimizer's learning rate at the start of each epoch (epoch from 0).
        A schedule with ``per_step = True`` (``nn.schedules.InverseSqrtStepDecay``) is
        called before every step instead, with the step count from 0 over the whole
        training, ``epoch * ceil(n_samples / batch_size) + step``.
    validation_data : (X_dev, y_dev) or None
        Evaluated in eval mode after each epoch (``dev_loss``, ``dev_accuracy``).
    callbacks : list of Callback
    shuffle : bool
        Reshuffle the rows every epoch from ``(seed, epoch)``.
    seed : int
        Seeds the shuffling: the same seed gives the same bits.
    verbose : int
        0 silent, 1 one line per epoch on stderr.
    initial_epoch : int >= 0
        Epoch to start counting from (resuming).

    Raises
    ------
    ValueError, TypeError
        For bad arguments, before any kernel runs.
    DivergenceError
        When the cost turns NaN or infinite; the model keeps the weights it had at the
        start of the last epoch whose first step gave a finite cost (the weights it was
        given if none did).
    """
    where = "Sequential.fit"
    loss = check_loss(loss, where)
    optimizer = SGD() if optimizer is None else check_optimizer(optimizer, where)
    epochs = check_scalar("epochs", epochs, where=where, low=1, integer=True)
    initial_epoch = check_scalar("initial_epoch", initial_epoch, where=where, low=0,
                                 integer=True)
    if initial_epoch >= epochs:
        raise ValueError(f"{where}: initial_epoch must be < epochs ({epochs}); "
                         f"got {initial_epoch}.")
    batch_size = check_scalar("batch_size", batch_size, where=where, low=1, integer=True)
    l2 = check_scalar("l2", l2, where=where, low=0.0)
    l1 = check_scalar("l1", l1, where=where, low=0.0)
    seed = check_scalar("seed", seed, where=where, low=0, integer=True)
    verbose = check_scalar("verbose", verbose, where=where, low=0, integer=True)
    shuffle = check_bool("shuffle", shuffle, where=where)
    if schedule is not None and not callable(schedule):
        raise TypeError(f"{where}: schedule must be a callable epoch -> lr; got {schedule!r}.")
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"{where}: callbacks must be nn.Callback objects; got {cb!r}.")
    X = model._check_X(X, where)
    n = X.shape[0]
    T = loss.targets(y, model.n_outputs, n, model.dtype, where)
    dev = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise TypeError(f"{where}: validation_data must be a pair (X_dev, y_dev); "
                            f"got {type(validation_data).__name__}.")
        X_dev = model._check_X(validation_data[0], where, "X_dev")
        dev = X_dev, loss.targets(validation_data[1], model.n_outputs, X_dev.shape[0],
                                  model.dtype, where + " (y_dev)")

    model.loss, model.optimizer = loss, optimizer
    bs = min(batch_size, n)
    per_step = schedule is not None and getattr(schedule, "per_step", False) is True
    steps_per_epoch = -(-n // bs)
    X_batch = np.empty((bs, X.shape[1]), model.dtype)
    T_batch = loss.target_buffer(bs, model.n_outputs, model.dtype)
    dout = np.empty((bs, model.n_outputs), model.dtype)
    row_loss = np.empty(bs)
    # Restored on divergence: the weights at the start of the last epoch whose first
    # step gave a finite cost (the given weights until one did). An epoch's start is
    # kept in start_* and swapped in once its first cost is finite.
    good_params, good_buffers = model.params.copy(), model.buffers.copy()
    start_params, start_buffers = np.empty_like(good_params), np.empty_like(good_buffers)
    good_epoch = initial_epoch

    history = History()
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin(model, history)
    for epoch in range(initial_epoch, epochs):
        start = time.perf_counter()
        if schedule is not None and not per_step:
            optimizer.lr = check_scalar(f"schedule({epoch})", schedule(epoch), where=where,
                                        low=0.0, low_open=True)
        order = epoch_order(n, shuffle, seed, epoch, where=where)
        start_params[...] = model.params
        start_buffers[...] = model.buffers
        total_cost = 0.0
        hits = scored = 0
        for step, lo in enumerate(range(0, n, bs)):
            idx = order[lo:lo + bs]
            r = idx.shape[0]
            xb, tb, db = X_batch[:r], T_batch[:r], dout[:r]
            np.take(X, idx, axis=0, out=xb, mode="clip")   # clip: no internal copy
            np.take(T, idx, axis=0, out=tb, mode="clip")
            out = model._forward(xb, True)
            cost = loss.loss_and_grad(out, tb, db, row_loss[:r])
            cost += model._backward(db, l2, l1)
            if not math.isfinite(cost):
                model.params[...] = good_params
                model.buffers[...] = good_buffers
                raise DivergenceError(
                    f"{where}: the cost became {cost} at epoch {epoch}, step {step}; the "
                    f"model keeps the weights from the start of epoch {good_epoch}. Try a "
                    f"lower learning rate (lr was {optimizer.lr:g}) or normalized inputs.")
            if step == 0:
                good_params, start_params = start_params, good_params
                good_buffers, start_buffers = start_buffers, good_buffers
                good_epoch = epoch
            if per_step:
                optimizer.lr = check_scalar("schedule(step)", schedule(
                    epoch * steps_per_epoch + step), where=where, low=0.0, low_open=True)
            optimizer.step(model.params, model.grads)
            total_cost += cost * r
            if loss.classification:
                hits += loss.n_correct(out, tb)
                scored += loss.n_scored(tb)
        logs = {"loss": total_cost / n}
        if loss.classification:
            logs["accuracy"] = hits / scored
        if dev is not None:
            for k, v in model._evaluate(dev[0], dev[1], loss).items():
                logs["dev_" + k] = v
        logs["lr"] = optimizer.lr
        logs["time"] = time.perf_counter() - start
        history.record(epoch, logs)
        if verbose:
            print(_format_logs(epoch, epochs, logs), file=sys.stderr, flush=True)
        for cb in callbacks:
            cb.on_epoch_end(model, epoch, logs, history)
        if model.stop_training:
            history.stopped_epoch = epoch
            break
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history
