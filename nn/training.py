"""The training loop: mini-batch gradient descent over a ``Sequential``.

One step is: gather the batch's rows into a reused buffer, forward through the layer
kernels, the fused loss-and-gradient kernel, backward through the layer kernels, and
one optimizer kernel over the flat parameter buffer. After the first batch of each
size nothing is allocated.
"""
import math
import threading
import time
from collections.abc import Mapping

import numpy as np

from ._progress import Progress, resolve_verbose
from ._threads import training_threads
from ._validation import (all_finite, check_bool, check_choice, check_lr, check_scalar,
                          check_weights)
from .augment import Augment
# EarlyStopping and ModelCheckpoint lived here: imports and pickles that name
# nn.training still find them.
from .callbacks import Callback, EarlyStopping, ModelCheckpoint  # noqa: F401
from .data import epoch_order
from .layers import BatchNorm, Dense, gives_one_row_batch, is_library_layer
from .optimizers import SGD, check_optimizer
from . import _plan, _sparse

#: Whether ``fit`` runs each step as one compiled call (``nn._plan``) where it can. The
#: per-layer path it replaces gives the same bytes; tests switch between the two.
USE_PLAN = True


class DivergenceError(FloatingPointError, ValueError):
    """Training produced a NaN or infinite cost or gradient; the model holds the last
    finite weights. A ValueError too: the inputs or hyperparameters were unworkable."""


class History(dict):
    """Per-epoch records of a ``fit``: a dict ``metric -> list``.

    ``history["loss"]`` (the cost: mean mini-batch loss plus the penalty),
    ``"accuracy"`` (training accuracy over the epoch's mini-batches, in training mode:
    with dropout and augmentation on), ``"dev_loss"``, ``"dev_accuracy"`` (with
    ``validation_data``, in eval mode), ``"lr"``, ``"time"`` (seconds) and any metric a
    callback adds to ``logs`` are lists with one value per epoch (NaN for the epochs
    before a callback first added it). ``epochs`` lists the epoch numbers, counted from
    1 as printed. ``pandas.DataFrame(history)`` gives a table; ``history.history`` is
    the History itself (Keras's name).

    ``final`` holds the metrics of the weights the model keeps (after EarlyStopping
    restored its best epoch), all in eval mode: ``{"epoch", "loss", "accuracy",
    "dev_loss", "dev_accuracy"}`` as available; ``diagnose`` uses it. They are
    computed on first access, from a copy of the weights ``fit`` returned with (an
    eval-mode pass over the training and dev data that a ``fit`` whose ``final`` is
    never read does not pay: a third of an epoch's work); until then the History holds
    that copy and the data.
    ``stopped_epoch`` and ``stop_reason`` say why training ended early.
    """

    def __init__(self):
        super().__init__()
        self.epochs = []
        self._final = {}
        self.stopped_epoch = None
        self.stop_reason = None
        #: ``{layer index: [norm per epoch]}``: the Frobenius norm of each Dense layer's
        #: weight gradient at the last step of each epoch. Norms that shrink layer by
        #: layer toward the input show vanishing gradients; that grow, exploding ones.
        self.grad_norms = {}

    def record(self, epoch, logs):
        """Append one epoch: ``epoch`` (counted from 1) and the values of ``logs``."""
        self.epochs.append(epoch)
        self._extend(logs)

    def _extend(self, logs):
        """Take the values of ``logs`` for the last epoch recorded that are not there
        yet (metrics that callbacks added after ``record``)."""
        n = len(self.epochs)
        for key, value in logs.items():
            column = self.setdefault(key, [])
            if len(column) < n:
                column.extend([math.nan] * (n - 1 - len(column)))
                column.append(value)

    @property
    def history(self):
        return self

    @property
    def final(self):
        pending = self.__dict__.pop("_pending_final", None)
        if pending is not None:
            self._final.update(pending())
        return self._final

    @final.setter
    def final(self, value):
        self.__dict__.pop("_pending_final", None)
        self._final = dict(value)

    def _release_data(self):
        """Forget the pending ``final`` measurement and with it the references to the
        training data and the weights' copy (``final`` then holds only the epoch):
        for an owner, such as the scikit-learn estimators, that keeps the History
        but must not keep the data."""
        self.__dict__.pop("_pending_final", None)

    def last(self):
        """The last epoch's values as a dict."""
        return {k: v[-1] for k, v in self.items()}

    def diagnose(self, base_error=0.0, threshold=0.02):
        """``nn.diagnose`` for the weights the model keeps: training error ``1 -
        accuracy`` against dev error ``1 - dev_accuracy``, both measured in eval mode
        (no dropout, no augmentation) at the end of ``fit``, at the epoch whose weights
        the model holds (``final["epoch"]``). Needs a classification loss and
        ``validation_data``."""
        from .diagnostics import diagnose
        if "accuracy" not in self.final or "dev_accuracy" not in self.final:
            raise ValueError("History.diagnose: needs the final train and dev accuracy; "
                             "fit with a classification loss and validation_data=(X_dev, "
                             "y_dev).")
        return diagnose(1.0 - self.final["accuracy"], 1.0 - self.final["dev_accuracy"],
                        base_error=base_error, threshold=threshold)

    def plot(self, path):
        """Write a PNG of the cost and accuracy per epoch, train and dev, to ``path``.

        Needs matplotlib (``pip install "numba-nn[plot]"``). The file is written to a
        temporary name in the same folder and renamed, so a reader never sees half a
        picture. Returns the path.
        """
        from ._plot import plot_history
        return plot_history(self, path)

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items()) if self.epochs else ""
        return f"History(epochs={len(self.epochs)}{', ' if last else ''}{last})"

    # A dict's equality and pickling would leave the attributes out.
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    def __reduce__(self):
        self.final  # noqa: B018  (measured now: the pending pass does not pickle)
        return (History._restore, (dict(self), self.__dict__))

    @staticmethod
    def _restore(columns, attributes):
        history = History()
        history.update(columns)
        history.__dict__.update(attributes)
        return history


def _format_logs(epoch, epochs, logs):
    parts = [f"epoch {epoch}/{epochs}"]
    parts += [f"{k} {v:.4f}" if k != "lr" else f"lr {v:.3g}" for k, v in logs.items()
              if k != "time"]
    parts.append(f"{logs['time']:.2f}s")
    return "  ".join(parts)


def fit(model, X, y, *, loss=None, optimizer=None, epochs=10, batch_size=32, l2=0.0, l1=0.0,
        schedule=None, validation_data=None, callbacks=(), shuffle=True, seed=0,
        verbose="auto", initial_epoch=0, augment=None, sample_weight=None,
        class_weight=None):
    """Train ``model`` by mini-batch gradient descent and return a ``History``.

    Parameters
    ----------
    X : array (n_samples, n_features), or a scipy.sparse matrix
        A sparse X (CSR; CSC, COO and the other formats are converted to CSR once) is
        never densified: the first layer, a Dense, runs CSR kernels over each batch's
        rows (``nn._sparse``). It takes no standardizer and no ``augment``.
    y : targets for ``loss`` (class indices or one-hot for SoftmaxCrossEntropy)
    loss : SoftmaxCrossEntropy, BinaryCrossEntropy or MeanSquaredError
        Default: the model's loss from its last ``fit`` (or ``nn.load``).
    optimizer : an optimizer object
        Default: the model's optimizer, with its state (after a ``fit`` or ``nn.load``:
        training resumes where it stopped), else ``SGD(lr=0.01)``. Kept as
        ``model.optimizer``.
    epochs : int > 0
        Train until this many epochs are done (counting those of ``initial_epoch``).
        Epochs are numbered from 1 everywhere people read them: progress lines,
        ``History.epochs``, callbacks, ``stopped_epoch`` and errors.
    batch_size : int > 0
        Rows per step; the last partial batch is kept. ``batch_size >= n_samples`` is
        batch gradient descent.
    l2, l1 : float >= 0
        Penalties ``l2/(2m) sum ||W||^2`` and ``l1/m sum |W|`` over Dense weights, m the
        rows in the mini-batch; their gradients enter in the dense backward kernel.
    schedule : callable ``schedule(epoch) -> lr`` or None
        Sets the optimizer's learning rate at the start of each epoch; ``epoch`` is the
        number of epochs done before it (0 for the first, as the notes' formulas count).
        A schedule with ``per_step = True`` (``nn.schedules.InverseSqrtStepDecay``) is
        called before every step instead, with the step count from 0 over the whole
        training, ``epoch * ceil(n_samples / batch_size) + step``.
    validation_data : (X_dev, y_dev), (X_dev, y_dev, sample_weight_dev) or None
        Evaluated in eval mode after each epoch (``dev_loss``, ``dev_accuracy``).
        ``dev_loss`` is weighted as the training loss is (by ``class_weight`` and the
        third element, when given), so early stopping watches the objective trained;
        ``dev_accuracy`` is not weighted.
    callbacks : list of Callback
    shuffle : bool
        Reshuffle the rows every epoch from ``(seed, epoch)``.
    seed : int
        Seeds the shuffling: the same seed gives the same bits.
    verbose : "auto", 0, 1 or 2
        0 silent; 1 a progress bar on stderr (tqdm, with the cost and dev metrics per
        epoch; one line per epoch when tqdm is not installed); 2 one line per epoch.
        "auto" (default) is 1 when stderr is a terminal and 0 otherwise, so library
        code and scripts whose output is captured stay silent.
    initial_epoch : int >= 0
        Epochs already done (resuming): the next epoch is number ``initial_epoch + 1``,
        and schedules, shuffling, dropout masks and augmentation continue as if
        training had not stopped.
    augment : nn.Augment or None
        Data augmentation applied to each training mini-batch (after the model's
        standardizer, if any), never to dev data or in ``predict``; drawn from
        ``(seed, epoch, step)``, so it is reproducible and resumes exactly.
    sample_weight : array (n_samples,) of floats >= 0, or None
        Each row's weight in the training loss and its gradient: a mini-batch's loss is
        the weighted mean ``sum w_i l_i / sum w_i`` (PyTorch's and scikit-learn's
        convention). Accuracies stay unweighted; for the dev loss see
        ``validation_data``.
    class_weight : dict ``{class index: weight}``, "balanced" or None
        Multiplies each row's weight by its class's (classes not named weigh 1);
        "balanced" is scikit-learn's ``n_samples / (n_classes * count(class))``. Needs
        SoftmaxCrossEntropy, or BinaryCrossEntropy with one output and 0/1 targets.

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
    if not model._training_lock.acquire(blocking=False):
        raise RuntimeError(f"{where}: the model is already training "
                           f"({model._training_state}); two runs would overwrite each "
                           f"other's weights and buffers. Wait for that fit to return, or "
                           f"train a copy (model.copy()).")
    try:
        model._training_state = f"fit running in thread {threading.current_thread().name!r}"
        with training_threads():
            return _fit(model, X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                        batch_size=batch_size, l2=l2, l1=l1, schedule=schedule,
                        validation_data=validation_data, callbacks=callbacks,
                        shuffle=shuffle, seed=seed, verbose=verbose,
                        initial_epoch=initial_epoch, augment=augment,
                        sample_weight=sample_weight, class_weight=class_weight)
    finally:
        model._training_state = "not training"
        model._training_lock.release()


def _fit(model, X, y, *, loss, optimizer, epochs, batch_size, l2, l1, schedule,
         validation_data, callbacks, shuffle, seed, verbose, initial_epoch, augment,
         sample_weight, class_weight):
    where = "Sequential.fit"
    loss = model._loss_or_own(loss, where)
    if optimizer is None:
        optimizer = model.optimizer if model.optimizer is not None else SGD()
    optimizer = check_optimizer(optimizer, where)
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
    verbose = resolve_verbose(verbose, where)
    shuffle = check_bool("shuffle", shuffle, where=where)
    if schedule is not None and not callable(schedule):
        raise TypeError(f"{where}: schedule must be a callable epoch -> lr; got {schedule!r}.")
    if augment is not None:
        if not isinstance(augment, Augment):
            raise TypeError(f"{where}: augment must be an nn.Augment or None; got "
                            f"{augment!r}.")
        augment.check(model.n_features, where)
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"{where}: callbacks must be nn.Callback objects; got {cb!r}.")
    X = model._check_X(X, where)
    sparse = _sparse.is_sparse(X)   # a CSR matrix: nn._sparse
    if sparse:
        _sparse.check_training(X, augment, where)
    n = X.shape[0]
    if gives_one_row_batch(n, batch_size) and any(isinstance(layer, BatchNorm)
                                                  for layer in model.layers):
        # Said before training, not at the last partial batch of the first epoch.
        raise ValueError(
            f"{where}: a model with BatchNorm needs at least 2 rows per batch; "
            f"batch_size={batch_size} with {n} samples gives a batch of 1 row. Choose "
            f"a batch_size whose remainder n % batch_size is not 1 (or drop a row).")
    T = loss.targets(y, model.n_outputs, n, model.dtype, where)
    weights = _row_weights(loss, T, n, model.n_outputs, sample_weight, class_weight, where)
    dev = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
            raise TypeError(f"{where}: validation_data must be (X_dev, y_dev) or (X_dev, "
                            f"y_dev, sample_weight_dev); got {type(validation_data).__name__}.")
        X_dev = model._check_X(validation_data[0], where, "X_dev")
        T_dev = loss.targets(validation_data[1], model.n_outputs, X_dev.shape[0],
                             model.dtype, where + " (y_dev)")
        w_dev = validation_data[2] if len(validation_data) == 3 else None
        dev = X_dev, T_dev, _row_weights(loss, T_dev, X_dev.shape[0], model.n_outputs, w_dev,
                                         class_weight, where + " (validation_data)")

    model.loss, model.optimizer = loss, optimizer
    bs = min(batch_size, n)
    per_step = schedule is not None and getattr(schedule, "per_step", False) is True
    steps_per_epoch = -(-n // bs)
    plan = None
    if USE_PLAN and not sparse and _plan.supports(model, loss, optimizer, augment):
        plan = _plan.TrainingPlan(model, loss, optimizer, bs, targets=T, weights=weights,
                                  augment=augment, l2=l2, l1=l1)
    else:   # the reference path's buffers
        if sparse:
            X_batch = _sparse.Batches(X, bs)
            _sparse.prepare(model.layers[0], X_batch.capacity, model.dtype)
        else:
            X_batch = np.empty((bs, X.shape[1]), model.dtype)
        T_batch = loss.target_buffer(bs, model.n_outputs, model.dtype)
        dout_batch = np.empty((bs, model.n_outputs), model.dtype)
        row_loss = np.empty(bs)
        w_batch = None if weights is None else np.empty(bs)
        augment_work = {}

    dense_layers = [(i, layer) for i, layer in enumerate(model.layers)
                    if isinstance(layer, Dense)]
    history = History()
    history.grad_norms = {i: [] for i, _ in dense_layers}
    progress = Progress(verbose, epochs, "epoch", initial=initial_epoch)
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin(model, history)
    try:
        # Restored on divergence: the weights at the start of the last epoch whose first
        # step gave a finite cost (the given weights until one did). An epoch's start is
        # kept in start_* and swapped in once its first cost is finite.
        good_params, good_buffers = model.params.copy(), model.buffers.copy()
        start_params, start_buffers = np.empty_like(good_params), np.empty_like(good_buffers)
        good_epoch = initial_epoch

        def diverged(what, hint):
            # Put back the last good weights; the error says where training broke.
            model.params[...] = good_params
            model.buffers[...] = good_buffers
            return DivergenceError(
                f"{where}: {what} at epoch {epoch + 1}, step {step + 1}; the model keeps "
                f"the weights from the start of epoch {good_epoch + 1}. Try a lower "
                f"learning rate "
                f"(lr was {optimizer.lr:g}) or {hint}.")

        thread = threading.current_thread().name
        for epoch in range(initial_epoch, epochs):
            start = time.perf_counter()
            model._training_state = (f"fit running in thread {thread!r}, epoch "
                                     f"{epoch + 1} of {epochs}")
            if schedule is not None and not per_step:
                optimizer.lr = check_lr(schedule(epoch), where, name=f"schedule({epoch})")
            order = epoch_order(n, shuffle, seed, epoch, where=where)
            start_params[...] = model.params
            start_buffers[...] = model.buffers
            total_cost = 0.0
            hits = scored = 0
            if plan is not None:
                plan.load_steps()
            for step, lo in enumerate(range(0, n, bs)):
                idx = order[lo:lo + bs]
                r = idx.shape[0]
                if per_step:
                    optimizer.lr = check_lr(schedule(epoch * steps_per_epoch + step), where,
                                            name="schedule(step)")
                if plan is not None:
                    cost, plan_hits, plan_scored = plan.step(X, idx, seed, epoch, step)
                else:
                    tb, dout = T_batch[:r], dout_batch[:r]
                    if sparse:
                        xb = X_batch.take(idx)
                    else:
                        xb = X_batch[:r]
                        np.take(X, idx, axis=0, out=xb, mode="clip")   # clip: no copy
                    np.take(T, idx, axis=0, out=tb, mode="clip")
                    wb = None
                    if weights is not None:
                        wb = w_batch[:r]
                        np.take(weights, idx, out=wb, mode="clip")
                    if augment is not None:
                        xb = augment.apply(xb, seed, epoch, step, augment_work)
                    out = model._forward(xb, True)
                    cost = loss.loss_and_grad(out, tb, dout, row_loss[:r], wb)
                    cost += model._backward(dout, l2, l1)
                if not math.isfinite(cost):   # the plan returns before its update
                    raise diverged(f"the cost became {cost}", "normalized inputs")
                if step == 0:
                    good_params, start_params = start_params, good_params
                    good_buffers, start_buffers = start_buffers, good_buffers
                    good_epoch = epoch
                total_cost += cost * r
                if plan is not None:
                    optimizer._advance()   # the plan made the update
                    hits += plan_hits
                    scored += plan_scored
                else:
                    optimizer.step(model.params, model.grads)
                    if loss.classification:
                        hits += loss.n_correct(out, tb)
                        scored += loss.n_scored(tb)
            if plan is not None:
                plan.store_steps()
            if not (all_finite(model.params) and all_finite(model.buffers)):
                # A NaN or infinite gradient at the epoch's last step reached the weights
                # with a finite cost (any earlier one made the next step's cost NaN), or
                # a BatchNorm running variance overflowed on huge inputs.
                raise diverged("a gradient or a running statistic became NaN or infinite",
                               "inputs of a smaller scale")
            logs = {"loss": total_cost / n}
            if loss.classification:
                logs["accuracy"] = hits / scored
            if dev is not None:
                for k, v in model._evaluate(dev[0], dev[1], loss, where=where,
                                                prepared=True, weights=dev[2]).items():
                    logs["dev_" + k] = v
            logs["lr"] = optimizer.lr
            logs["time"] = time.perf_counter() - start
            history.record(epoch + 1, logs)
            with np.errstate(over="ignore"):  # a diverging run's norm is inf, truly
                for i, layer in dense_layers:
                    history.grad_norms[i].append(float(np.linalg.norm(layer.dW)))
            progress.update(_format_logs(epoch + 1, epochs, logs),
                            {k: f"{v:.4g}" for k, v in logs.items() if k not in ("time", "lr")})
            for cb in callbacks:
                cb.on_epoch_end(model, epoch + 1, logs, history)
            history._extend(logs)  # metrics the callbacks added
            if model.stop_training:
                history.stopped_epoch = epoch + 1
                if history.stop_reason is None:
                    history.stop_reason = "a callback set model.stop_training"
                break
    finally:
        if plan is not None:
            plan.store_steps()   # a Dropout's next mask follows the last one trained
        progress.close()
    for cb in callbacks:
        cb.on_train_end(model, history)
    # The weights the model keeps, measured the same way on train and dev (eval mode:
    # no dropout, no augmentation), for the diagnosis.
    history.final.setdefault("epoch", history.epochs[-1])
    # Sequential.copy rebuilds only the library's layer classes.
    copyable = all(is_library_layer(layer) for layer in model.layers)
    measure = _final_metrics(model, copyable, X, T, dev, loss, where)
    if copyable:
        history._pending_final = measure
    else:
        history.final.update(measure())
    return history


def _final_metrics(model, copyable, X, T, dev, loss, where):
    """History.final's metrics of the model's weights now, as a function that measures
    them when called: on a copy of the model made then, with the weights, statistics
    and layer states of now (copied now: a few arrays, where a model copy would also
    run the initializers)."""
    if copyable:
        params, buffers = model.params.copy(), model.buffers.copy()
        states = model.layer_states()

    def measure():
        kept = model
        if copyable:
            kept = model.copy()
            kept.params[...] = params
            kept.buffers[...] = buffers
            kept.set_layer_states(states)
        final = kept._evaluate(X, T, loss, where=where, prepared=True)
        if dev is not None:
            for k, v in kept._evaluate(dev[0], dev[1], loss, where=where, prepared=True,
                                       weights=dev[2]).items():
                final["dev_" + k] = v
        return final
    return measure


def _row_weights(loss, T, n, n_outputs, sample_weight, class_weight, where):
    """Each row's loss weight (float64), or None when all weigh the same."""
    if sample_weight is None and class_weight is None:
        return None
    weights = np.ones(n) if sample_weight is None else \
        check_weights(sample_weight, n, where).copy()
    if class_weight is not None:
        classes = loss.row_classes(T, where)
        n_classes = max(n_outputs, 2)
        if isinstance(class_weight, str):
            check_choice("class_weight", class_weight, ("balanced",), where=where)
            counts = np.bincount(classes, minlength=n_classes)
            per_class = np.divide(n, np.count_nonzero(counts) * counts,
                                  out=np.ones(n_classes), where=counts > 0)
        elif isinstance(class_weight, Mapping):
            per_class = np.ones(n_classes)
            for label, value in class_weight.items():
                label = check_scalar("a class_weight key", label, where=where, low=0,
                                     high=n_classes - 1, integer=True)
                per_class[label] = check_scalar(f"class_weight[{label}]", value,
                                                where=where, low=0.0)
        else:
            raise TypeError(f"{where}: class_weight must be a dict {{class index: weight}}, "
                            f"'balanced' or None; got {class_weight!r}.")
        weights *= per_class[classes]
        if not weights.sum() > 0:
            raise ValueError(f"{where}: the sample weights (sample_weight times "
                             f"class_weight) are all zero; at least one row must count.")
    return weights
