"""Losses: target validation, the fused loss-and-gradient kernel, outputs and accuracy.

| class | targets | output (``predict``) | kernel |
| --- | --- | --- | --- |
| ``SoftmaxCrossEntropy`` | class indices (n,) or one-hot (n, c) | softmax probabilities | ``softmax_cross_entropy`` |
| ``BinaryCrossEntropy`` | 0/1 or probabilities, (n,) or (n, k) | sigmoid probabilities | ``sigmoid_binary_cross_entropy`` |
| ``MeanSquaredError`` | real values, (n,) or (n, k) | the raw output | ``mean_squared_error`` |

Each takes the last layer's raw output (logits for the two cross-entropies, so the
last ``Dense`` has no activation) and averages as PyTorch does: cross-entropy over
samples, BCE and MSE over all elements.
"""
import numpy as np

import kernels

from ._validation import check_array, check_labels


class Loss:
    """Base class: subclasses set the kernel and how targets and outputs look."""

    #: Whether the loss has an accuracy (a classification loss).
    classification = False

    def targets(self, y, n_outputs, n_rows, dtype, where):
        """Validate y and return it in the layout and dtype the kernel needs."""
        raise NotImplementedError

    def target_buffer(self, n_rows, n_outputs, dtype):
        """An empty array shaped like ``targets``' result, for gathered mini-batches."""
        raise NotImplementedError

    def loss_and_grad(self, out, T, dout, row_loss, weights=None):
        """Mean loss of ``out`` against T (weighted by ``weights`` per row: ``sum w_i
        l_i / sum w_i``); writes d(loss)/d(out) into ``dout``."""
        mean = self._kernel(out, T, dout, row_loss, kernels.parallel_arg(out.size))
        if weights is None:
            return mean
        return kernels.weight_rows(weights, self._per_row(out), dout, row_loss)

    def _per_row(self, out):
        """Elements of a row that the mean averages over (one per output)."""
        return out.shape[1]

    def row_classes(self, T, where):
        """Each row's class (int64), for ``class_weight``; an error for losses without."""
        raise ValueError(f"{where}: class_weight needs a classification loss with one "
                         f"class per row (SoftmaxCrossEntropy, or BinaryCrossEntropy with "
                         f"one output); got {type(self).__name__}. Use sample_weight.")

    def output(self, out, dest=None):
        """The prediction from the last layer's output, written into ``dest`` (a new
        array when None) and returned."""
        if dest is None:
            return out.copy()
        dest[...] = out
        return dest

    def n_correct(self, out, T):
        """Correctly classified samples (or elements), for accuracy."""
        raise NotImplementedError

    def n_scored(self, T):
        """The count that ``n_correct`` is out of."""
        return T.shape[0]

    def config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused and stable (log-sum-exp).

    ``L = mean_i -log softmax(z_i)[y_i]``; the last layer outputs one logit per class.
    Labels are class indices in ``[0, n_classes)``; one-hot rows are accepted.

    Examples
    --------
    >>> import numpy as np, nn
    >>> model = nn.Sequential([nn.Dense(2, 3)], seed=0)
    >>> loss = nn.SoftmaxCrossEntropy()
    >>> round(model.evaluate(np.ones((4, 2)), [0, 1, 2, 0], loss=loss)["loss"], 4) > 0
    True
    """

    classification = True
    _kernel = staticmethod(kernels.softmax_cross_entropy)

    def targets(self, y, n_outputs, n_rows, dtype, where):
        if n_outputs < 2:
            raise ValueError(f"{where}: SoftmaxCrossEntropy needs at least 2 outputs (one "
                             f"logit per class); the model has {n_outputs}. Use "
                             f"BinaryCrossEntropy for one output.")
        return check_labels("y", y, where=where, n_classes=n_outputs, n_rows=n_rows)

    def target_buffer(self, n_rows, n_outputs, dtype):
        return np.empty(n_rows, np.int64)

    def output(self, out, dest=None):
        probs = np.empty_like(out) if dest is None else dest
        kernels.softmax(out, probs, kernels.parallel_arg(out.size))
        return probs

    def n_correct(self, out, T):
        return kernels.count_correct(out, T)

    def _per_row(self, out):
        return 1

    def row_classes(self, T, where):
        return T


def _real_targets(y, n_outputs, n_rows, dtype, where):
    if isinstance(y, (list, tuple)) or getattr(y, "ndim", 2) == 1:
        arr = np.asarray(y)
        if arr.ndim == 1 and n_outputs == 1:
            y = arr.reshape(-1, 1)
    return check_array("y", y, where=where, dtype=dtype, ndim=2, n_cols=n_outputs,
                       n_rows=n_rows)


class BinaryCrossEntropy(Loss):
    """Sigmoid followed by binary cross-entropy, fused and stable.

    ``l = max(z, 0) - z y + log(1 + exp(-|z|))`` per output, averaged over all
    elements (as PyTorch's ``BCEWithLogitsLoss``). Targets are 0/1 (or probabilities
    in [0, 1]) with one column per output; a 1-D y is accepted for one output.
    """

    classification = True
    _kernel = staticmethod(kernels.sigmoid_binary_cross_entropy)

    def targets(self, y, n_outputs, n_rows, dtype, where):
        T = _real_targets(y, n_outputs, n_rows, dtype, where)
        if T.min() < 0 or T.max() > 1:
            raise ValueError(f"{where}: y for BinaryCrossEntropy must lie in [0, 1]; got "
                             f"values in [{T.min()}, {T.max()}].")
        return T

    def target_buffer(self, n_rows, n_outputs, dtype):
        return np.empty((n_rows, n_outputs), dtype)

    def output(self, out, dest=None):
        probs = np.empty_like(out) if dest is None else dest
        kernels.activation_forward(out, kernels.ACT_SIGMOID, probs,
                                   kernels.parallel_arg(out.size))
        return probs

    def n_correct(self, out, T):
        return kernels.count_binary_correct(out, T)

    def row_classes(self, T, where):
        if T.shape[1] != 1 or not np.isin(T, (0, 1)).all():
            super().row_classes(T, where)  # raises: no single 0/1 class per row
        return T[:, 0].astype(np.int64)

    def n_scored(self, T):
        return T.size


class MeanSquaredError(Loss):
    """Mean squared error ``mean (a - y)^2`` over all elements (no 1/2, as PyTorch).

    For regression: the last layer has no activation and one column per target.
    """

    _kernel = staticmethod(kernels.mean_squared_error)

    def targets(self, y, n_outputs, n_rows, dtype, where):
        return _real_targets(y, n_outputs, n_rows, dtype, where)

    def target_buffer(self, n_rows, n_outputs, dtype):
        return np.empty((n_rows, n_outputs), dtype)


LOSS_TYPES = {cls.__name__: cls for cls in (SoftmaxCrossEntropy, BinaryCrossEntropy,
                                            MeanSquaredError)}


def check_loss(loss, where):
    """The loss object, or a TypeError that lists the choices."""
    if isinstance(loss, type) and issubclass(loss, Loss):
        raise TypeError(f"{where}: loss must be a loss object; got the class "
                        f"nn.{loss.__name__} itself. Call it: loss=nn.{loss.__name__}().")
    if not isinstance(loss, Loss):
        raise TypeError(f"{where}: loss must be a loss object such as "
                        f"nn.SoftmaxCrossEntropy(); got {loss!r}.")
    return loss
