"""Gradient checking, and the bias/variance diagnosis of the notes' basic recipe."""
from typing import NamedTuple

import numpy as np

from ._validation import check_array, check_scalar
from .losses import check_loss


def gradient_check(model, X, y, loss, eps=1e-6, l2=0.0, l1=0.0, sample_weight=None):
    """Compare backprop's gradient with two-sided differences, in float64.

    The model is copied to float64; for every parameter theta_i the numerical gradient
    is ``(J(theta_i + eps) - J(theta_i - eps)) / (2 eps)`` where J is the cost (mean
    loss plus the L2/L1 penalty) of a training-mode forward on X. Dropout masks are held
    fixed (every forward uses each Dropout's current step) and BatchNorm's running
    statistics are restored after each forward. ``sample_weight`` weighs the rows'
    losses as ``fit(sample_weight=...)`` does.

    Returns
    -------
    float
        The relative error ``||g_num - g|| / (||g_num|| + ||g||)``: below 1e-7 is right,
        above 1e-5 deserves a look, above 1e-3 is a bug (the notes' thresholds).

    Examples
    --------
    >>> import numpy as np, nn
    >>> model = nn.Sequential([nn.Dense(3, 4, activation="tanh"), nn.Dense(4, 2)], seed=0)
    >>> X = np.random.default_rng(0).standard_normal((5, 3))
    >>> nn.gradient_check(model, X, [0, 1, 1, 0, 1], loss=nn.SoftmaxCrossEntropy()) < 1e-7
    True
    """
    where = "gradient_check"
    from .model import Sequential
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: model must be an nn.Sequential; got {model!r}.")
    loss = check_loss(loss, where)
    eps = check_scalar("eps", eps, where=where, low=0.0, low_open=True)
    l2 = check_scalar("l2", l2, where=where, low=0.0)
    l1 = check_scalar("l1", l1, where=where, low=0.0)
    m64 = model.copy(dtype=np.float64)
    # Dropout draws a new mask at each training forward; hold every Dropout's step at
    # its current value so backprop and both sides of each difference see one mask.
    steps = {i: layer.step for i, layer in enumerate(m64.layers) if hasattr(layer, "step")}

    def freeze_masks():
        for i, step in steps.items():
            m64.layers[i].step = step

    X = m64._check_X(X, where)
    T = loss.targets(y, m64.n_outputs, X.shape[0], m64.dtype, where)
    weights = None
    if sample_weight is not None:
        weights = check_array("sample_weight", sample_weight, where=where, dtype=np.float64,
                              ndim=1, n_rows=X.shape[0])
    freeze_masks()
    out = m64._forward(X, True)
    dout = np.empty_like(out)
    row_loss = np.empty(X.shape[0])
    loss.loss_and_grad(out, T, dout, row_loss, weights)
    m64._backward(dout, l2, l1)
    analytic = m64.grads.copy()
    state = m64.buffers.copy()

    def cost():
        m64.buffers[...] = state  # BatchNorm running statistics do not drift
        freeze_masks()
        value = loss.loss_and_grad(m64._forward(X, True), T, dout, row_loss, weights)
        return value + m64.penalty(l2, l1, X.shape[0])

    theta = m64.params
    numeric = np.empty_like(theta)
    for i in range(theta.shape[0]):
        saved = theta[i]
        theta[i] = saved + eps
        plus = cost()
        theta[i] = saved - eps
        minus = cost()
        theta[i] = saved
        numeric[i] = (plus - minus) / (2.0 * eps)
    denom = np.linalg.norm(numeric) + np.linalg.norm(analytic)
    return 0.0 if denom == 0.0 else float(np.linalg.norm(numeric - analytic) / denom)


#: The notes' basic recipe: what to try for each problem, in order.
RECIPE = {
    "high bias": ("train a bigger network (more hidden units or layers)",
                  "train longer, or with a better optimizer (Adam, momentum)",
                  "try another architecture"),
    "high variance": ("get more training data (or augment it)",
                      "regularize: L2 (fit(l2=...)), dropout (nn.Dropout)",
                      "try another architecture"),
    "neither": ("done: training and dev errors are both close to the base error",),
}


class Diagnosis(NamedTuple):
    """What ``diagnose`` found: ``problem`` is "high bias", "high variance", "high bias
    and high variance" or "neither"; ``recipe`` lists what to try, bias first."""
    problem: str
    avoidable_bias: float
    variance: float
    recipe: tuple

    def __str__(self):
        lines = [f"{self.problem} (avoidable bias {self.avoidable_bias:.4f} = train error - "
                 f"base error; variance {self.variance:.4f} = dev error - train error)"]
        lines += [f"  - {step}" for step in self.recipe]
        return "\n".join(lines)


def diagnose(train_error, dev_error, base_error=0.0, threshold=0.02):
    """Name the problem from the training and dev errors, as in the notes.

    avoidable bias = train_error - base_error (the base error is the best achievable,
    e.g. human-level error, 0 when unknown); variance = dev_error - train_error. Each is
    "high" above ``threshold`` (0.02 = 2 points of error rate). High bias comes first
    in the recipe: fix the fit to the training set before the gap to the dev set.

    >>> import nn
    >>> nn.diagnose(0.01, 0.11).problem
    'high variance'
    >>> nn.diagnose(0.15, 0.16).problem
    'high bias'
    >>> nn.diagnose(0.15, 0.30).problem
    'high bias and high variance'
    >>> nn.diagnose(0.005, 0.01).problem
    'neither'
    """
    where = "diagnose"
    train_error = check_scalar("train_error", train_error, where=where, low=0.0, high=1.0)
    dev_error = check_scalar("dev_error", dev_error, where=where, low=0.0, high=1.0)
    base_error = check_scalar("base_error", base_error, where=where, low=0.0, high=1.0)
    threshold = check_scalar("threshold", threshold, where=where, low=0.0, high=1.0)
    bias = train_error - base_error
    variance = dev_error - train_error
    high_bias, high_variance = bias > threshold, variance > threshold
    if high_bias and high_variance:
        problem = "high bias and high variance"
        recipe = RECIPE["high bias"] + RECIPE["high variance"][:2]
    elif high_bias:
        problem, recipe = "high bias", RECIPE["high bias"]
    elif high_variance:
        problem, recipe = "high variance", RECIPE["high variance"]
    else:
        problem, recipe = "neither", RECIPE["neither"]
    return Diagnosis(problem, bias, variance, recipe)
