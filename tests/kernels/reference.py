"""Plain-NumPy float64 references for the kernels, one per kernel.

Written for obviousness, not speed: each function takes arrays, converts them to
float64, and returns new arrays computed with the textbook formula. The only
concession to numerics is the stable form of sigmoid and log-sum-exp, so that the
references stay exact (and free of overflow) for inputs of magnitude 1e3, where the
kernels are tested too.
"""
import numpy as np

from kernels import (
    ACT_IDENTITY, ACT_LEAKY_RELU, ACT_RELU, ACT_SIGMOID, ACT_TANH, LEAKY_RELU_SLOPE,
)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# --- activations -----------------------------------------------------------------

def identity(z):
    return _f64(z).copy()


def identity_grad(z):
    return np.ones_like(_f64(z))


def relu(z):
    z = _f64(z)
    return np.where(z > 0, z, 0.0)


def relu_grad(z):
    return np.where(_f64(z) > 0, 1.0, 0.0)


def leaky_relu(z):
    z = _f64(z)
    return np.where(z > 0, z, LEAKY_RELU_SLOPE * z)


def leaky_relu_grad(z):
    return np.where(_f64(z) > 0, 1.0, LEAKY_RELU_SLOPE)


def tanh(z):
    return np.tanh(_f64(z))


def tanh_grad(z):
    return 1.0 - np.tanh(_f64(z)) ** 2


def sigmoid(z):
    """1 / (1 + exp(-z)), written as e / (1 + e) with e = exp(-|z|) <= 1 for z < 0."""
    z = _f64(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(z):
    s = sigmoid(z)
    return s * (1.0 - s)


#: act_code -> (act, d act / dz), both as functions of the pre-activation z.
ACTIVATIONS = {
    ACT_IDENTITY: (identity, identity_grad),
    ACT_RELU: (relu, relu_grad),
    ACT_LEAKY_RELU: (leaky_relu, leaky_relu_grad),
    ACT_TANH: (tanh, tanh_grad),
    ACT_SIGMOID: (sigmoid, sigmoid_grad),
}


def activation_forward(Z, act_code):
    """A = act(Z)."""
    return ACTIVATIONS[act_code][0](Z)


def activation_backward(Z, dA, act_code):
    """dZ = dA * act'(Z)."""
    return _f64(dA) * ACTIVATIONS[act_code][1](Z)


# --- dense -----------------------------------------------------------------------

def dense_forward(X, W, b, act_code):
    """Z = X @ W + b (no b when b has shape (0,)), A = act(Z). Returns (Z, A)."""
    Z = _f64(X) @ _f64(W)
    if np.size(b) != 0:
        Z = Z + _f64(b)
    return Z, activation_forward(Z, act_code)


def dense_backward(X, W, Z, dA, act_code, l2, l1):
    """Returns (dZ, db, dW, dX) with m = X.shape[0] (the kernel also returns
    ``weight_penalty(W, l2, l1, m)``):

    dZ = dA * act'(Z); db = sum_rows dZ; dW = X.T @ dZ + (l2/m) W + (l1/m) sign(W);
    dX = dZ @ W.T.
    """
    X, W = _f64(X), _f64(W)
    m = X.shape[0]
    dZ = activation_backward(Z, dA, act_code)
    db = dZ.sum(axis=0)
    dW = X.T @ dZ + (l2 / m) * W + (l1 / m) * np.sign(W)
    dX = dZ @ W.T
    return dZ, db, dW, dX


def weight_penalty(W, l2, l1, m):
    """(l2 / (2 m)) ||W||_F^2 + (l1 / m) sum |W|."""
    W = _f64(W)
    return l2 / (2.0 * m) * np.sum(W * W) + l1 / m * np.sum(np.abs(W))


# --- losses ----------------------------------------------------------------------

def logsumexp(Z):
    """Row-wise log(sum(exp(z))), with the row maximum taken out first."""
    Z = _f64(Z)
    zmax = Z.max(axis=1, keepdims=True)
    return (zmax + np.log(np.exp(Z - zmax).sum(axis=1, keepdims=True)))[:, 0]


def softmax(Z):
    """Row-wise exp(z) / sum(exp(z)), with the row maximum taken out first.

    (Not exp(z - logsumexp(z)): for |z| ~ 1e3 that subtraction alone costs 1e3 ulps.)
    """
    e = np.exp(_f64(Z) - _f64(Z).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(Z, y):
    """Returns (mean loss, dZ, row_loss): row_loss_i = logsumexp(z_i) - z_i[y_i],
    loss = mean_i row_loss_i, dZ = (softmax(Z) - onehot(y)) / n."""
    Z = _f64(Z)
    n, c = Z.shape
    rows = np.arange(n)
    row_loss = logsumexp(Z) - Z[rows, y]
    onehot = np.zeros((n, c))
    onehot[rows, y] = 1.0
    return row_loss.mean(), (softmax(Z) - onehot) / n, row_loss


def sigmoid_binary_cross_entropy(Z, Y):
    """Returns (mean loss, dZ, row_loss) for l = -(y log s + (1 - y) log(1 - s)),
    s = sigmoid(z), written as max(z, 0) - z y + log(1 + exp(-|z|)); the mean is over
    all n k elements, row_loss sums each row, dZ = (sigmoid(Z) - Y) / (n k)."""
    Z, Y = _f64(Z), _f64(Y)
    elem = np.maximum(Z, 0.0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
    return elem.mean(), (sigmoid(Z) - Y) / Z.size, elem.sum(axis=1)


def mean_squared_error(A, Y):
    """Returns (mean loss, dA, row_loss) for l = (a - y)^2 (no 1/2); the mean is over
    all n k elements, row_loss sums each row, dA = 2 (A - Y) / (n k)."""
    A, Y = _f64(A), _f64(Y)
    diff = A - Y
    return np.mean(diff * diff), 2.0 * diff / A.size, (diff * diff).sum(axis=1)


def count_correct(Z, y):
    """Rows whose argmax (first on ties) is the label."""
    return int(np.sum(np.argmax(Z, axis=1) == np.asarray(y)))


def count_binary_correct(Z, Y):
    """Elements with (z > 0) == (y > 0.5)."""
    return int(np.sum((np.asarray(Z) > 0) == (np.asarray(Y) > 0.5)))


# --- reductions and optimizers -----------------------------------------------------

def column_sums(X):
    """out[j] = sum_i X[i, j]."""
    return _f64(X).sum(axis=0)


def n_blocks(n_rows, block_rows):
    """ceil(n_rows / block_rows)."""
    return -(-n_rows // block_rows)


def ordered_sum(values):
    """values[0] + values[1] + ... in index order, one float64 addition at a time."""
    acc = 0.0
    for v in _f64(values):
        acc += float(v)
    return acc


def sgd_step(params, grads, lr):
    """The updated parameters: params - lr * grads."""
    return _f64(params) - lr * _f64(grads)
