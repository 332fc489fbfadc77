"""A whole training step in one call: the compiled plan's interpreter.

``train_step`` runs what ``Sequential.fit``'s reference loop runs for one mini-batch,
calling the same kernels with the same arguments in the same order, so it gives the
same bytes: gather the batch rows, augment them, forward through the layers, the loss
and its gradient, backward with the L2/L1 terms, the optimizer update and the
accuracy count. What the Python loop did between kernel calls (choosing the arrays,
counting dropout steps) is an op table here; what it allocated is one workspace.

The plan (``nn._plan``) describes the model as:

- ``ops`` (n_ops, OP_FIELDS) int64: one row per layer, the fields ``F_*`` below
  (indices into the array tuples, codes, seeds);
- ``reals`` (n_ops, 3) float64: a layer's keep_prob, momentum and eps;
- ``steps`` (n_ops,) int64: each Dropout's step counter, incremented here;
- ``mats``: a tuple of 2-D arrays in the model's dtype (batch buffers, weights,
  weight gradients, each layer's outputs and gradients), ``vecs`` a tuple of 1-D ones
  (biases, BatchNorm's parameters, running statistics and their gradients),
  ``stats`` 2-D and ``rows`` 1-D float64 tuples (scratch, batch statistics, row
  losses, row weights), ``masks`` 2-D bool (dropout masks).

The loss, the optimizer, row weights, augmentation and the layer kinds beyond Dense
come in arguments that are None when unused: Numba prunes a branch on ``x is not
None`` for an argument typed None, so a plan compiles only the kernels its model uses.
``parallel`` (None or True) is passed to every kernel: None keeps their parallel
builds out of the compilation when no array of the plan reaches
``PARALLEL_MIN_SIZE``. ``bf16`` (None or True) is passed to every Dense kernel: True
runs their GEMMs in bfloat16 (``kernels.bf16.gemm_bf16``), None in the plan's dtype
and leaves the bf16 GEMM out of the compilation.
"""
import numpy as np
from numba import njit

from .activations import activation_backward, activation_forward
from .augment import add_gaussian_noise, shift_flip_images
from .batchnorm import batchnorm_backward, batchnorm_forward_train
from .dense import dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward
from .losses import (count_binary_correct, count_correct, mean_squared_error,
                     sigmoid_binary_cross_entropy, softmax_cross_entropy, weight_rows)
from .optim import adam_step, momentum_step, rmsprop_step, sgd_step

#: Layer kinds (ops[:, F_KIND]).
OP_DENSE, OP_ACTIVATION, OP_BATCHNORM, OP_DROPOUT, OP_PASS = 0, 1, 2, 3, 4

#: Op table fields, each an index into one of the array tuples. Into ``mats``: IN and
#: OUT (the layer's input and output), W and DW, Z (Dense's pre-activation), DZ (the
#: gradient at the layer's own output side) and DX (to its input: the (0, 0) array
#: for a first Dense, which skips it). Into ``vecs``: B, DB, GAMMA, BETA, DGAMMA, DBETA,
#: RMEAN, RVAR. Into ``stats``: SCRATCH; into ``rows``: MEAN, INV_STD; into ``masks``:
#: MASK. ACT is the activation code, SEED a Dropout's seed.
(F_KIND, F_ACT, F_IN, F_OUT, F_W, F_DW, F_B, F_DB, F_Z, F_DZ, F_DX, F_SCRATCH, F_MEAN,
 F_INV_STD, F_MASK, F_SEED, F_GAMMA, F_BETA, F_DGAMMA, F_DBETA, F_RMEAN, F_RVAR) = range(22)
OP_FIELDS = 22
#: reals fields.
R_KEEP, R_MOMENTUM, R_EPS = 0, 1, 2


@njit(cache=True, inline="always")
def _gather_rows(src, idx, dst):
    # np.take(src, idx, axis=0, out=dst): a copy, so the same bytes.
    for i in range(idx.shape[0]):
        row = idx[i]
        for j in range(src.shape[1]):
            dst[i, j] = src[row, j]


@njit(cache=True, inline="always")
def _gather(src, idx, dst):
    for i in range(idx.shape[0]):
        dst[i] = src[idx[i]]


@njit(cache=True)
def train_step(ops, reals, steps, mats, vecs, stats, rows, masks, batch, dout, row_loss,
               X, idx, l2, l1, labels, targets, bce, weights, augment, with_activation,
               with_batchnorm, with_dropout, sgd, momentum, rmsprop, adam, params, grads,
               parallel, bf16=None):
    """One training step over the rows ``idx`` of X; returns (cost, hits).

    ops, reals, steps, mats, vecs, stats, rows, masks: the plan (module docstring).
    batch, dout: indices into mats of the gathered batch and of d(loss)/d(output);
    row_loss: index into rows. X (n, d) read; idx (r,) int64 read, the batch's rows
    (r equals the rows of the plan's batch buffers). l2, l1 float (fit's penalties).
    labels: None or (y (n,) int64, y_batch (r,) int64) for softmax cross-entropy;
    targets: None or (Y (n, k), mats index of the batch's targets) for BCE (``bce``
    not None) or MSE (``bce`` None). weights: None or (w (n,) float64, rows index).
    augment: None or (out index, noise sigma, noise seed, image seed, channels,
    height, width, max_shift, flip, counter, images on). with_*: None when the model
    has no such layer. Exactly one of sgd (lr,), momentum (v, lr, beta), rmsprop
    (s, lr, beta, eps), adam (m, v, lr, beta1, beta2, eps, bc1, bc2_sqrt) is given.
    params, grads: the model's flat buffers. parallel, bf16: passed to the kernels
    (module docstring).

    A cost that is not finite returns before the update (the caller reports the
    divergence; the parameters are those of before the step); hits is then 0.
    """
    xb = mats[batch]
    _gather_rows(X, idx, xb)
    if augment is not None:
        (a_out, sigma, noise_seed, image_seed, channels, height, width, max_shift, flip,
         counter, images_on) = augment
        source = xb
        out = mats[a_out]
        if images_on:
            shift_flip_images(xb, channels, height, width, max_shift, flip, image_seed,
                              counter, out, parallel)
            source = out
        if sigma > 0.0:
            add_gaussian_noise(source, sigma, noise_seed, counter, out, parallel)
    n_ops = ops.shape[0]
    for k in range(n_ops):
        op = ops[k]
        kind = op[F_KIND]
        if kind == OP_DENSE:
            dense_forward(mats[op[F_IN]], mats[op[F_W]], vecs[op[F_B]], op[F_ACT],
                          mats[op[F_Z]], mats[op[F_OUT]], parallel, bf16)
        elif kind == OP_ACTIVATION:
            if with_activation is not None:
                activation_forward(mats[op[F_IN]], op[F_ACT], mats[op[F_OUT]], parallel)
        elif kind == OP_BATCHNORM:
            if with_batchnorm is not None:
                batchnorm_forward_train(
                    mats[op[F_IN]], vecs[op[F_GAMMA]], vecs[op[F_BETA]],
                    vecs[op[F_RMEAN]], vecs[op[F_RVAR]], reals[k, R_MOMENTUM],
                    reals[k, R_EPS], op[F_ACT], rows[op[F_MEAN]], rows[op[F_INV_STD]],
                    mats[op[F_OUT]], stats[op[F_SCRATCH]], parallel)
        elif kind == OP_DROPOUT:
            if with_dropout is not None:
                dropout_forward(mats[op[F_IN]], reals[k, R_KEEP], op[F_SEED], steps[k],
                                masks[op[F_MASK]], mats[op[F_OUT]], parallel)
                steps[k] += 1
    out = mats[ops[n_ops - 1, F_OUT]]
    dA = mats[dout]
    losses = rows[row_loss]
    cost = 0.0
    if labels is not None:
        y, yb = labels
        _gather(y, idx, yb)
        cost = softmax_cross_entropy(out, yb, dA, losses, parallel)
        per_row = 1
    if targets is not None:
        Y, t_batch = targets
        tb = mats[t_batch]
        _gather_rows(Y, idx, tb)
        if bce is not None:
            cost = sigmoid_binary_cross_entropy(out, tb, dA, losses, parallel)
        else:
            cost = mean_squared_error(out, tb, dA, losses, parallel)
        per_row = out.shape[1]
    if weights is not None:
        w, w_batch = weights
        wb = rows[w_batch]
        _gather(w, idx, wb)
        cost = weight_rows(wb, per_row, dA, losses)
    penalty = 0.0
    g = dout
    for k in range(n_ops - 1, -1, -1):
        op = ops[k]
        kind = op[F_KIND]
        need_dX = k > 0
        if kind == OP_DENSE:
            penalty += dense_backward(
                mats[op[F_IN]], mats[op[F_W]], mats[op[F_Z]], mats[op[F_OUT]], mats[g],
                op[F_ACT], l2, l1, mats[op[F_DZ]], mats[op[F_DW]], vecs[op[F_DB]],
                mats[op[F_DX]], stats[op[F_SCRATCH]], parallel, bf16)
            g = op[F_DX]
        elif kind == OP_ACTIVATION:
            if with_activation is not None:
                if need_dX:
                    activation_backward(mats[op[F_IN]], mats[op[F_OUT]], mats[g], op[F_ACT],
                                        mats[op[F_DZ]], parallel)
                    g = op[F_DZ]
        elif kind == OP_BATCHNORM:
            if with_batchnorm is not None:
                batchnorm_backward(
                    mats[op[F_IN]], mats[op[F_OUT]], mats[g], vecs[op[F_GAMMA]],
                    vecs[op[F_BETA]], rows[op[F_MEAN]], rows[op[F_INV_STD]], op[F_ACT],
                    mats[op[F_DZ]], vecs[op[F_DGAMMA]], vecs[op[F_DBETA]],
                    stats[op[F_SCRATCH]], parallel)
                g = op[F_DZ]
        elif kind == OP_DROPOUT:
            if with_dropout is not None:
                if need_dX:
                    dropout_backward(mats[g], masks[op[F_MASK]], reals[k, R_KEEP],
                                     mats[op[F_DX]], parallel)
                    g = op[F_DX]
    cost += penalty
    if not np.isfinite(cost):
        return cost, 0
    if sgd is not None:
        sgd_step(params, grads, sgd[0], parallel)
    if momentum is not None:
        v, lr, beta = momentum
        momentum_step(params, grads, v, lr, beta, parallel)
    if rmsprop is not None:
        s, lr, beta, eps = rmsprop
        rmsprop_step(params, grads, s, lr, beta, eps, parallel)
    if adam is not None:
        m, v, lr, beta1, beta2, eps, bc1, bc2_sqrt = adam
        adam_step(params, grads, m, v, lr, beta1, beta2, eps, bc1, bc2_sqrt, parallel)
    hits = 0
    if labels is not None:
        hits = count_correct(out, labels[1])
    if targets is not None:
        if bce is not None:
            hits = count_binary_correct(out, mats[targets[1]])
    return cost, hits
