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


def parallel_arg(n_elements, min_size):
    """The parallel argument the nn API passes: True from min_size elements, else None."""
    return True if n_elements >= min_size else None


def ordered_sum(values):
    """values[0] + values[1] + ... in index order, one float64 addition at a time."""
    acc = 0.0
    for v in _f64(values):
        acc += float(v)
    return acc


def sgd_step(params, grads, lr):
    """The updated parameters: params - lr * grads."""
    return _f64(params) - lr * _f64(grads)


# --- batch normalization ------------------------------------------------------------

def batchnorm_forward_train(Z, gamma, beta, running_mean, running_var, momentum, eps,
                            act_code):
    """Returns (A, mean, inv_std, new_running_mean, new_running_var):
    biased batch variance, A = act(gamma * (Z - mean) / sqrt(var + eps) + beta),
    running = momentum * running + (1 - momentum) * batch."""
    Z = _f64(Z)
    mean = Z.mean(axis=0)
    var = ((Z - mean) ** 2).mean(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    Y = _f64(gamma) * (Z - mean) * inv_std + _f64(beta)
    rm = momentum * _f64(running_mean) + (1.0 - momentum) * mean
    rv = momentum * _f64(running_var) + (1.0 - momentum) * var
    return activation_forward(Y, act_code), mean, inv_std, rm, rv


def batchnorm_forward_infer(Z, gamma, beta, running_mean, running_var, eps, act_code):
    """A = act(gamma * (Z - running_mean) / sqrt(running_var + eps) + beta)."""
    Y = _f64(gamma) * (_f64(Z) - _f64(running_mean)) / np.sqrt(_f64(running_var) + eps) \
        + _f64(beta)
    return activation_forward(Y, act_code)


def batchnorm_backward(Z, dA, gamma, beta, eps, act_code):
    """Returns (dZ, dgamma, dbeta) of the training forward, by the textbook chain rule
    through mean and variance (not the simplified form the kernel uses)."""
    Z, dA, gamma, beta = _f64(Z), _f64(dA), _f64(gamma), _f64(beta)
    m = Z.shape[0]
    mean = Z.mean(axis=0)
    var = ((Z - mean) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    X_hat = (Z - mean) / std
    dY = activation_backward(gamma * X_hat + beta, dA, act_code)
    dbeta = dY.sum(axis=0)
    dgamma = (dY * X_hat).sum(axis=0)
    dX_hat = dY * gamma
    dvar = (dX_hat * (Z - mean) * -0.5 * std ** -3).sum(axis=0)
    dmean = (-dX_hat / std).sum(axis=0) + dvar * (-2.0 * (Z - mean)).mean(axis=0)
    dZ = dX_hat / std + dvar * 2.0 * (Z - mean) / m + dmean / m
    return dZ, dgamma, dbeta


# --- dropout ------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def uniform_from_counter(seed, step, index):
    """splitmix64's finalizer on seed * golden ^ step * C ^ index, with Python ints
    masked to 64 bits; the top 53 bits as a float in [0, 1)."""
    z = ((seed * 0x9E3779B97F4A7C15) & _MASK64) ^ ((step * 0xD1B54A32D192ED03) & _MASK64) \
        ^ (index & _MASK64)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z = z ^ (z >> 31)
    return (z >> 11) / 9007199254740992.0


def dropout_mask(shape, keep_prob, seed, step):
    """mask[i, j] = uniform_from_counter(seed, step, i * d + j) < keep_prob (slow: small
    shapes only)."""
    n, d = shape
    return np.array([[uniform_from_counter(seed, step, i * d + j) < keep_prob
                      for j in range(d)] for i in range(n)], dtype=bool)


def dropout_forward(X, keep_prob, seed, step):
    """Returns (mask, out) with out = X * mask / keep_prob."""
    mask = dropout_mask(np.shape(X), keep_prob, seed, step)
    return mask, np.where(mask, _f64(X) / keep_prob, 0.0)


def dropout_backward(dA, mask, keep_prob):
    """dX = dA * mask / keep_prob."""
    return np.where(mask, _f64(dA) / keep_prob, 0.0)


def momentum_step(params, grads, v, lr, beta):
    """(params, v) after one step: v = beta*v + (1-beta)*grads; params - lr*v."""
    v = beta * _f64(v) + (1 - beta) * _f64(grads)
    return _f64(params) - lr * v, v


def rmsprop_step(params, grads, s, lr, beta, eps):
    """(params, s) after one step: s = beta*s + (1-beta)*grads**2;
    params - lr*grads/(sqrt(s)+eps)."""
    g = _f64(grads)
    s = beta * _f64(s) + (1 - beta) * g ** 2
    return _f64(params) - lr * g / (np.sqrt(s) + eps), s


def adam_step(params, grads, m, v, lr, beta1, beta2, eps, bc1, bc2_sqrt):
    """(params, m, v) after one step, textbook form: m_hat = m/bc1, v_hat = v/bc2_sqrt**2,
    params - lr*m_hat/(sqrt(v_hat)+eps)."""
    g = _f64(grads)
    m = beta1 * _f64(m) + (1 - beta1) * g
    v = beta2 * _f64(v) + (1 - beta2) * g ** 2
    return _f64(params) - lr * (m / bc1) / (np.sqrt(v / bc2_sqrt ** 2) + eps), m, v


# --- BLAS ------------------------------------------------------------------------

def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    opA = _f64(A).T if trans_a else _f64(A)
    opB = _f64(B).T if trans_b else _f64(B)
    return alpha * (opA @ opB) + beta * _f64(C)


# --- augmentation ---------------------------------------------------------------------

import math  # noqa: E402  (here, to keep this section's edit at the end of the file)


def normal_from_counter(seed, step, k):
    """Box-Muller on the pair p = k // 2: r = sqrt(-2 log(1 - u1)), t = 2 pi u2 with
    u1, u2 the uniforms at 2p and 2p + 1; r cos(t) for even k, r sin(t) for odd k."""
    p = k // 2
    r = math.sqrt(-2.0 * math.log(1.0 - uniform_from_counter(seed, step, 2 * p)))
    t = 2.0 * math.pi * uniform_from_counter(seed, step, 2 * p + 1)
    return r * math.cos(t) if k % 2 == 0 else r * math.sin(t)


def gaussian_noise(shape, seed, step, row_offset=0):
    """z[i, j] = normal_from_counter(seed, step, (row_offset + i) * d + j) (slow: small
    shapes only). row_offset: the global index of the first row of a block of rows."""
    n, d = shape
    return np.array([[normal_from_counter(seed, step, (row_offset + i) * d + j)
                      for j in range(d)] for i in range(n)], dtype=np.float64).reshape(n, d)


def add_gaussian_noise(X, sigma, seed, step, row_offset=0):
    """X + sigma * z, z from ``gaussian_noise`` (X: the rows from row_offset on)."""
    X = _f64(X)
    return X + sigma * gaussian_noise(X.shape, seed, step, row_offset)


def image_draws(n_rows, max_shift, flip, seed, step, row_offset=0):
    """(n_rows, 3) int64 rows (dy, dx, flip): dy and dx = min(floor(u * (2s + 1)), 2s) - s
    from the uniforms at 3i and 3i + 1, flip = flip and (uniform at 3i + 2) < 0.5."""
    span = 2 * max_shift + 1

    def shift(u):
        return min(int(u * span), span - 1) - max_shift

    draws = np.zeros((n_rows, 3), np.int64)
    for r in range(n_rows):
        i = row_offset + r
        draws[r, 0] = shift(uniform_from_counter(seed, step, 3 * i))
        draws[r, 1] = shift(uniform_from_counter(seed, step, 3 * i + 1))
        draws[r, 2] = bool(flip) and uniform_from_counter(seed, step, 3 * i + 2) < 0.5
    return draws


def shift_images(X, channels, height, width, draws):
    """Each row as (channels, height, width): flipped left-right where draws[i, 2], then
    out[c, y, x] = src[c, y - dy, x - dx], 0 off the image."""
    imgs = _f64(X).reshape(-1, channels, height, width)
    out = np.zeros_like(imgs)
    for r, (dy, dx, flip) in enumerate(draws):
        src = imgs[r, :, :, ::-1] if flip else imgs[r]
        sy, sx = np.arange(height) - dy, np.arange(width) - dx
        oy, ox = (sy >= 0) & (sy < height), (sx >= 0) & (sx < width)
        out[r][np.ix_(np.arange(channels), oy, ox)] = \
            src[np.ix_(np.arange(channels), sy[oy], sx[ox])]
    return out.reshape(np.shape(X))


def shift_flip_images(X, channels, height, width, max_shift, flip, seed, step, row_offset=0):
    """``shift_images`` with the draws of ``image_draws`` (X: the rows from row_offset on)."""
    draws = image_draws(np.shape(X)[0], max_shift, flip, seed, step, row_offset)
    return shift_images(X, channels, height, width, draws)


def weight_rows(w, per_row, dZ, row_loss):
    """The weighted mean ``sum w_i l_i / (sum w * per_row)`` and dZ's rows scaled by
    ``w_i n / sum w`` (0 and a zero dZ for a zero total), in float64."""
    w = np.asarray(w, np.float64)
    total = w.sum()
    if total == 0:
        return 0.0, np.zeros(dZ.shape)
    scale = w * w.shape[0] / total
    return float((w * row_loss).sum() / (total * per_row)), dZ.astype(np.float64) * scale[:, None]


# -- bfloat16 (kernels.bf16) ------------------------------------------------------------

def round_to_bf16(x):
    """float32 -> nearest bf16 value (ties to even) as float32; NaN stays NaN."""
    x = np.asarray(x, np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)
    out = r.view(np.float32).copy()
    out[np.isnan(x)] = np.nan
    return out


def to_bf16_bits(x):
    """The bf16 bit patterns (uint16) of ``round_to_bf16(x)``."""
    return (round_to_bf16(x).view(np.uint32) >> 16).astype(np.uint16)


def gemm_bf16(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """alpha * op(A) @ op(B) + beta * C in float64, A and B first rounded to bf16."""
    a = round_to_bf16(A).astype(np.float64)
    b = round_to_bf16(B).astype(np.float64)
    return gemm(a, b, C, trans_a, trans_b, alpha, beta)


# -- CSR first layer (kernels.sparse): the dense references of the densified batch ------

def csr_dense_forward(X, W, b, act_code):
    """(Z, A) of a scipy.sparse batch X: ``dense_forward`` of ``X.toarray()``."""
    return dense_forward(X.toarray(), W, b, act_code)


def csr_dense_backward(X, W, Z, dA, act_code, l2, l1):
    """(dZ, db, dW) of a scipy.sparse batch X: ``dense_backward`` of the dense batch,
    but for the dX a first layer does not need."""
    return dense_backward(X.toarray(), W, Z, dA, act_code, l2, l1)[:3]


def csr_take_rows(X, rows):
    """The rows ``rows`` of a scipy.sparse CSR matrix, in that order (SciPy's slicing)."""
    return X[rows]


def csr_transpose(X):
    """The batch by columns, float64: {feature: (rows in order, values)} for every
    feature present (repeated entries of a row kept apart, as the kernel keeps them)."""
    out = {}
    for i in range(X.shape[0]):
        for k in range(X.indptr[i], X.indptr[i + 1]):
            rows, vals = out.setdefault(int(X.indices[k]), ([], []))
            rows.append(i)
            vals.append(float(X.data[k]))
    return out
