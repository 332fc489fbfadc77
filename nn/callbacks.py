"""Callbacks: hooks into ``fit`` that watch, steer, save or stop training.

``Callback`` (the base class), ``EarlyStopping`` (stop when a dev metric stops
improving, and go back to the best weights), ``ModelCheckpoint`` (save the model during
training) and ``Babysitter`` (change a running fit's learning rate, checkpoint it or
stop it, from another thread or a control file), with the helpers they share: which
metric to monitor and whether it improved, and checkpoint names with ``{epoch}``.
"""
import json
import math
import os
import threading
import warnings

from ._validation import check_bool, check_choice, check_lr, check_output_path, check_scalar


class Callback:
    """Hooks into ``fit``. Set ``model.stop_training = True`` to stop after this epoch.

    ``on_epoch_end`` gets the epoch's number counted from 1 (as printed: after epoch 3,
    ``fit(..., initial_epoch=3)`` resumes) and its ``logs``; a metric a callback adds to
    ``logs`` is recorded in the History and can be monitored by callbacks after it.
    """

    def on_train_begin(self, model, history):
        pass

    def on_epoch_end(self, model, epoch, logs, history):
        pass

    def on_train_end(self, model, history):
        pass


#: Whether lower or higher is better for the built-in metrics.
MONITORS = {"dev_loss": "min", "dev_accuracy": "max", "loss": "min", "accuracy": "max"}


def _check_monitor(monitor, mode, where):
    """(monitor, "min" or "max"): any metric name; "auto" mode knows the built-in ones
    and takes names with "loss" or "error" in them as lower-is-better, others higher."""
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{where}: monitor must be a metric name such as 'dev_loss'; got "
                        f"{monitor!r}.")
    check_choice("mode", mode, ("auto", "min", "max"), where=where)
    if monitor.startswith("val_"):
        raise ValueError(f"{where}: this library calls the validation metrics dev_*; "
                         f"use {'dev_' + monitor[4:]!r} for monitor={monitor!r}.")
    if mode == "auto":
        mode = MONITORS.get(monitor) or (
            "min" if "loss" in monitor or "error" in monitor else "max")
    return monitor, mode


def _monitored(logs, monitor, where):
    if monitor not in logs:
        raise ValueError(f"{where}: monitor={monitor!r} is not among this fit's metrics "
                         f"{sorted(logs)}; pass validation_data=(X_dev, y_dev) (and a "
                         f"classification loss for accuracy), or add the metric to logs "
                         f"in a callback listed before this one.")
    return logs[monitor]


def _improved(mode, value, best, min_delta=0.0):
    if best is None:
        return True
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


class EarlyStopping(Callback):
    """Stop when a dev metric stops improving, and go back to the best weights.

    Parameters
    ----------
    monitor : str
        "dev_loss" (default) or "dev_accuracy" need ``fit(validation_data=...)``;
        "loss" and "accuracy" (training) work too, and so does any metric a callback
        listed before this one adds to ``logs``.
    mode : "auto" (default), "min" or "max"
        Whether lower or higher is better. "auto" knows the built-in metrics and takes
        a name containing "loss" or "error" as lower-is-better, any other as higher.
    patience : int >= 1
        Epochs without improvement before stopping.
    min_delta : float >= 0
        An improvement smaller than this does not count.
    restore_best : bool
        At the end of training, put back the parameters and BatchNorm running
        statistics of the best epoch.

    After ``fit``, ``best_epoch`` (counted from 1) and ``best`` hold the best epoch and
    its value, and ``History.stopped_epoch`` and ``History.stop_reason`` say when and
    why it stopped.
    """

    def __init__(self, monitor="dev_loss", patience=5, min_delta=0.0, restore_best=True,
                 mode="auto"):
        where = "EarlyStopping"
        self.monitor, self.mode = _check_monitor(monitor, mode, where)
        self.patience = check_scalar("patience", patience, where=where, low=1, integer=True)
        self.min_delta = check_scalar("min_delta", min_delta, where=where, low=0.0)
        self.restore_best = check_bool("restore_best", restore_best, where=where)
        self.best = self.best_epoch = None

    def on_train_begin(self, model, history):
        self.best = self.best_epoch = None
        self._wait = 0
        self._params, self._buffers = model.params.copy(), model.buffers.copy()

    def on_epoch_end(self, model, epoch, logs, history):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if _improved(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self._wait = value, epoch, 0
            self._params[...] = model.params
            self._buffers[...] = model.buffers
            return
        self._wait += 1
        if self._wait >= self.patience:
            model.stop_training = True
            history.stop_reason = (
                f"EarlyStopping: {self.monitor} did not improve by more than "
                f"{self.min_delta:g} for {self.patience} epochs; best {self.best:.4g} at "
                f"epoch {self.best_epoch}")

    def on_train_end(self, model, history):
        if self.restore_best and self.best_epoch is not None:
            model.params[...] = self._params
            model.buffers[...] = self._buffers
            history.final["epoch"] = self.best_epoch
            if history.stop_reason is not None:
                history.stop_reason += " (weights restored)"


class ModelCheckpoint(Callback):
    """Save the model (with optimizer state and standardizer) during training.

    Parameters
    ----------
    path : str or path-like
        Where ``nn.save`` writes; may hold ``{epoch}`` (e.g. ``"ckpt-{epoch}.safetensors"``) to
        keep one file per save. Each write is atomic. Its folder must exist and be
        writable (checked here and when training starts, not after the first epoch).
    monitor : None or a metric name ("dev_loss", "dev_accuracy", "loss", "accuracy",
        or one a callback listed before this one adds)
        With a metric, save only when it improves on the best so far (the best model
        ends at ``path``). With None (default), save every ``every`` epochs.
    every : int >= 1
        Save period in epochs, when ``monitor`` is None.
    mode : "auto", "min" or "max"
        As in ``EarlyStopping``.

    ``saved`` lists ``(epoch, path)`` of each save. The epoch saved is the number of
    epochs done, so ``fit(..., initial_epoch=epoch)`` resumes after it.
    """

    def __init__(self, path, monitor=None, every=1, mode="auto"):
        where = "ModelCheckpoint"
        self.path = check_output_path("path", path, where=where, format=_epoch_path)
        self.monitor, self.mode = (None, None) if monitor is None else \
            _check_monitor(monitor, mode, where)
        self.every = check_scalar("every", every, where=where, low=1, integer=True)
        self.best = None
        self.saved = []

    def on_train_begin(self, model, history):
        # Checked again here: the folder may have gone since the constructor ran, and
        # finding out after the first epoch would waste it.
        check_output_path("path", self.path, where="ModelCheckpoint", format=_epoch_path)
        self.best = None
        self.saved = []

    def on_epoch_end(self, model, epoch, logs, history):
        from .io import save
        if self.monitor is not None:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not _improved(self.mode, value, self.best):
                return
            self.best = value
        elif epoch % self.every:
            return
        path = _epoch_path(self.path, epoch)
        save(model, path)
        self.saved.append((epoch, path))


def _epoch_path(path, epoch):
    """``path`` with ``{epoch}`` (and format specs such as ``{epoch:03d}``) filled in."""
    return path.format(epoch=epoch) if "{epoch" in path else path


class Babysitter(Callback):
    """Steer a running ``fit``: change its learning rate, checkpoint it, stop it.

    Commands come from another thread (``set_lr``, ``save_checkpoint``, ``stop``) or
    from a small JSON control file polled after every epoch, e.g. ``{"lr": 0.003}``,
    ``{"checkpoint": true}``, ``{"checkpoint": "run-{epoch}.safetensors", "stop": true}``. The
    file is acted on each time it changes (written anew); what it holds when training
    starts is ignored, so a stale command does not fire. Commands take effect at the
    end of the current epoch, in this order: the learning rate (the next epoch uses
    it), the checkpoint (``nn.save``: the saved optimizer carries the new rate), then
    the stop. A ``fit(schedule=...)`` sets the rate every epoch, over the babysitter's.

    Resume from any checkpoint: ``model = nn.load(path)`` and ``model.fit(X, y,
    epochs=total, initial_epoch=epoch_saved, seed=same)``; it continues exactly.

    Parameters
    ----------
    control : path or None
        The JSON control file (need not exist yet). A file that is not valid JSON, or
        holds bad values, is skipped with a warning: training goes on.
    checkpoint : path or None
        Where ``{"checkpoint": true}`` and ``save_checkpoint()`` save; may hold
        ``{epoch}`` (the epochs done).

    Attributes
    ----------
    epoch : epochs done so far (None before the first); ``logs``: that epoch's metrics
    lr_changes : list of (epoch, old lr, new lr), epoch being the epochs done then (a
        command repeating the current rate is not a change)
    saved : list of (epoch, path) of each checkpoint
    """

    def __init__(self, control=None, checkpoint=None):
        where = "Babysitter"
        for name, value in (("control", control), ("checkpoint", checkpoint)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{where}: {name} must be a path or None; got {value!r}.")
        self.control = None if control is None else os.fspath(control)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self._lock = threading.Condition()
        self._pending = {}
        self._seen = None
        self._running = False
        self.epoch = None
        self.logs = None
        self.lr_changes = []
        self.saved = []

    # commands from other threads
    def set_lr(self, lr):
        """Use learning rate ``lr`` (> 0) from the next epoch on."""
        lr = check_lr(lr, "Babysitter.set_lr")
        with self._lock:
            self._pending["lr"] = lr

    def save_checkpoint(self, path=None):
        """Save the model at the end of the current epoch, to ``path`` (default: the
        ``checkpoint`` given to the constructor)."""
        command = self._checkpoint_command(True if path is None else path,
                                           "Babysitter.save_checkpoint", "path")
        with self._lock:
            self._pending["checkpoint"] = command

    def stop(self, checkpoint=False):
        """Stop training at the end of the current epoch; with ``checkpoint`` (True for
        the default path, or a path) save the model at that same epoch first."""
        command = None
        if checkpoint is not False and checkpoint is not None:
            command = self._checkpoint_command(checkpoint, "Babysitter.stop", "checkpoint")
        with self._lock:
            self._pending["stop"] = True
            if command is not None:
                self._pending["checkpoint"] = command

    def _checkpoint_command(self, value, where, arg):
        """True (the constructor's path) or a path, for a checkpoint asked for by a call
        to ``where`` with argument ``arg``."""
        if value is True:
            if self.checkpoint is None:
                raise ValueError(f"{where}: no path; pass {arg}=PATH or create the "
                                 f"Babysitter with checkpoint=PATH.")
            return True
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{where}: {arg} must be True, False or a path; got {value!r}.")
        return os.fspath(value)

    def start(self, model, X, y, **fit_kwargs):
        """Run ``model.fit(X, y, **fit_kwargs)`` in a background thread, with this
        babysitter among its callbacks, and return at once; ``join()`` waits for it."""
        if getattr(self, "_thread", None) is not None and self._thread.is_alive():
            raise RuntimeError("Babysitter.start: a fit is already running; join() it first.")
        callbacks = list(fit_kwargs.pop("callbacks", ()) or ())
        if self not in callbacks:
            callbacks.append(self)
        self._outcome = {}
        with self._lock:
            self._running = True
            self.epoch = self.logs = None

        def target():
            try:
                self._outcome["history"] = model.fit(X, y, callbacks=callbacks, **fit_kwargs)
            except BaseException as exc:  # noqa: BLE001  (re-raised by join)
                self._outcome["error"] = exc
            finally:
                with self._lock:
                    self._running = False
                    self._lock.notify_all()
        self._thread = threading.Thread(target=target, name="nn-babysitter-fit", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout=None):
        """Wait for the fit started by ``start``; return its ``History`` (re-raise its
        exception, e.g. ``nn.DivergenceError``). Raises TimeoutError after ``timeout``
        seconds."""
        thread = getattr(self, "_thread", None)
        if thread is None:
            raise RuntimeError("Babysitter.join: no fit was started; call start() first.")
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"Babysitter.join: the fit still runs after {timeout} s.")
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["history"]

    def wait(self, epoch, timeout=None):
        """Block until ``epoch`` epochs are done (True) or training ended or ``timeout``
        seconds passed (False): lets a watching thread react epoch by epoch."""
        with self._lock:
            self._lock.wait_for(lambda: (self.epoch or 0) >= epoch or not self._running,
                                timeout)
            return (self.epoch or 0) >= epoch

    # the callback
    def _stat(self):
        try:
            st = os.stat(self.control)
            with open(self.control, "rb") as fh:
                return (st.st_mtime_ns, fh.read())
        except OSError:
            return None

    def on_train_begin(self, model, history):
        with self._lock:
            self._running = True
            if self.control is not None:
                self._seen = self._stat()

    def _read_control(self):
        state = self._stat()
        if state is None or state == self._seen:
            return {}
        self._seen = state
        where = f"Babysitter: control file {self.control!r}"
        try:
            commands = json.loads(state[1].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.warn(f"{where} is not valid JSON ({exc}); ignored.", stacklevel=3)
            return {}
        if not isinstance(commands, dict):
            warnings.warn(f"{where} must hold a JSON object; ignored.", stacklevel=3)
            return {}
        out = {}
        for key, value in commands.items():
            if key == "lr":
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or not math.isfinite(value) or value <= 0):
                    warnings.warn(f"{where}: lr must be a number > 0; got {value!r}; "
                                  f"ignored.", stacklevel=3)
                    continue
                out["lr"] = float(value)
            elif key == "checkpoint":
                if value is False or value is None:
                    continue
                if value is True and self.checkpoint is None:
                    warnings.warn(f"{where}: checkpoint is true but the Babysitter has no "
                                  f"checkpoint path; ignored.", stacklevel=3)
                    continue
                if value is not True and (not isinstance(value, str) or not value):
                    warnings.warn(f"{where}: checkpoint must be true or a path; got "
                                  f"{value!r}; ignored.", stacklevel=3)
                    continue
                out["checkpoint"] = value
            elif key == "stop":
                if value is True:
                    out["stop"] = True
                elif value is not False:
                    warnings.warn(f"{where}: stop must be true or false; got {value!r}; "
                                  f"ignored.", stacklevel=3)
            else:
                warnings.warn(f"{where}: unknown command {key!r} (known: lr, checkpoint, "
                              f"stop); ignored.", stacklevel=3)
        return out

    def on_epoch_end(self, model, epoch, logs, history):
        from .io import save
        done = epoch   # counted from 1: the epochs done
        with self._lock:
            commands = self._read_control() if self.control is not None else {}
            commands.update(self._pending)
            self._pending = {}
        if ("lr" in commands and model.optimizer is not None
                and commands["lr"] != model.optimizer.lr):
            old = model.optimizer.lr
            model.optimizer.lr = commands["lr"]
            self.lr_changes.append((done, old, model.optimizer.lr))
        if "checkpoint" in commands:
            path = self.checkpoint if commands["checkpoint"] is True else commands["checkpoint"]
            path = _epoch_path(path, done)
            save(model, path)
            self.saved.append((done, path))
        if commands.get("stop"):
            model.stop_training = True
            history.stop_reason = f"stopped by the Babysitter after epoch {done}"
        with self._lock:
            self.epoch, self.logs = done, dict(logs)
            self._lock.notify_all()

    def on_train_end(self, model, history):
        with self._lock:
            self._running = False
            self._lock.notify_all()
