"""The compiled training plan: a model, loss and optimizer laid out for ``kernels.plan``.

``fit`` builds one ``TrainingPlan`` per run. It turns the layers into an op table and
cuts every buffer a step needs from one workspace (one block per dtype), as views for
the full batch and for the last, shorter one; each step is then one call of the
jitted ``kernels.plan.train_step``, which runs the kernels the layers' ``forward`` and
``backward`` would, in the same order, on the same kinds of arrays: the same bytes as
the per-layer reference path (``Sequential._forward``/``_backward``), which stays the
readable one and the one ``gradient_check`` uses.

A model with a layer, loss or optimizer of another class (a user's subclass) trains on
the reference path: the plan knows only the library's own.
"""
import numpy as np

import kernels
from kernels import plan as kp

from ._layout import staggered_buffers
from .augment import Augment
from .layers import Activation, BatchNorm, Dense, Dropout, is_library_layer
from .losses import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy
from .optimizers import SGD, Adam, Momentum, RMSprop

_LOSSES = (SoftmaxCrossEntropy, BinaryCrossEntropy, MeanSquaredError)
_OPTIMIZERS = (SGD, Momentum, RMSprop, Adam)


def supports(model, loss, optimizer, augment):
    """Whether the plan can run this training (else fit takes the reference path)."""
    return (all(is_library_layer(layer) for layer in model.layers)
            and type(loss) in _LOSSES and type(optimizer) in _OPTIMIZERS
            and (augment is None or type(augment) is Augment))


class _Arrays:
    """One tuple of same-dtype arrays: fixed ones (parameters) and work arrays cut from
    one block, ``rows(r)`` leading rows of each for a batch of r rows."""

    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = np.dtype(dtype), ndim
        self._specs = []   # (fixed array or None, rows function, trailing shape)

    def fixed(self, array):
        assert array.dtype == self.dtype and array.ndim == self.ndim
        self._specs.append((array, None, None))
        return len(self._specs) - 1

    def work(self, rows, *trailing):
        """A work array of shape ``(rows(r),) + trailing``; ``rows`` an int for a fixed
        length or a function of the batch rows."""
        fn = rows if callable(rows) else (lambda r, n=rows: n)
        self._specs.append((None, fn, trailing))
        return len(self._specs) - 1

    def allocate(self, max_rows):
        sizes = [0 if fixed is not None else fn(max_rows) * int(np.prod(trailing))
                 for fixed, fn, trailing in self._specs]
        blocks = staggered_buffers(sizes, self.dtype)
        self._full = [fixed if fixed is not None else
                      block.reshape((fn(max_rows),) + trailing)
                      for (fixed, fn, trailing), block in zip(self._specs, blocks)]

    def views(self, r):
        return tuple(full if fixed is not None else full[:fn(r)]
                     for full, (fixed, fn, _) in zip(self._full, self._specs))


def _same(r):
    return r


class TrainingPlan:
    """The op table and workspace of one ``fit`` run, for batches of up to ``max_rows``.

    ``step(X, idx, ...)`` runs one training step over the rows ``idx`` of X and returns
    ``(cost, hits)``; see ``fit`` for the loop around it.
    """

    def __init__(self, model, loss, optimizer, max_rows, *, targets, weights, augment,
                 l2, l1):
        dtype = model.dtype
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.l2, self.l1 = float(l2), float(l1)
        mats, vecs = _Arrays(dtype, 2), _Arrays(dtype, 1)
        stats, rows = _Arrays(np.float64, 2), _Arrays(np.float64, 1)
        masks = _Arrays(np.bool_, 2)
        masks.fixed(np.zeros((0, 0), np.bool_))   # no tuple may be empty
        empty = mats.fixed(np.zeros((0, 0), dtype))
        self.batch = mats.work(_same, model.n_features)
        current = self.batch
        self.augment = augment
        if augment is not None:
            self.augment_out = current = mats.work(_same, model.n_features)
        ops, reals, steps = [], [], []
        self._dropouts = []
        kinds = set()
        for i, layer in enumerate(model.layers):
            op = np.zeros(kp.OP_FIELDS, np.int64)
            real = np.zeros(3)
            op[kp.F_IN] = current
            kind = type(layer)
            if kind is Dense:
                op[kp.F_KIND] = kp.OP_DENSE
                op[kp.F_ACT] = layer.act_code
                op[kp.F_W] = mats.fixed(layer._params["W"])
                op[kp.F_DW] = mats.fixed(layer._grads["W"])
                op[kp.F_B] = vecs.fixed(layer._params["b"])
                op[kp.F_DB] = vecs.fixed(layer._grads["b"])
                op[kp.F_Z] = mats.work(_same, layer.n_out)
                op[kp.F_OUT] = (op[kp.F_Z] if layer.act_code == kernels.ACT_IDENTITY
                                else mats.work(_same, layer.n_out))
                op[kp.F_DZ] = mats.work(_same, layer.n_out)
                op[kp.F_DX] = mats.work(_same, layer.n_in) if i > 0 else empty
                op[kp.F_SCRATCH] = stats.work(kernels.n_blocks, layer.n_out)
            elif kind is Activation and not layer.fused:
                kinds.add(Activation)
                op[kp.F_KIND] = kp.OP_ACTIVATION
                op[kp.F_ACT] = layer.act_code
                op[kp.F_OUT] = mats.work(_same, layer._width)
                op[kp.F_DZ] = mats.work(_same, layer._width)
            elif kind is BatchNorm:
                kinds.add(BatchNorm)
                p, g, b = layer._params, layer._grads, layer._buffers
                op[kp.F_KIND] = kp.OP_BATCHNORM
                op[kp.F_ACT] = layer.act_code
                op[kp.F_GAMMA], op[kp.F_BETA] = vecs.fixed(p["gamma"]), vecs.fixed(p["beta"])
                op[kp.F_DGAMMA] = vecs.fixed(g["gamma"])
                op[kp.F_DBETA] = vecs.fixed(g["beta"])
                op[kp.F_RMEAN] = vecs.fixed(b["running_mean"])
                op[kp.F_RVAR] = vecs.fixed(b["running_var"])
                op[kp.F_MEAN] = rows.work(layer.n)
                op[kp.F_INV_STD] = rows.work(layer.n)
                op[kp.F_OUT] = mats.work(_same, layer.n)
                op[kp.F_DZ] = mats.work(_same, layer.n)
                op[kp.F_SCRATCH] = stats.work(kernels.batchnorm.batchnorm_scratch_rows,
                                              layer.n)
                real[kp.R_MOMENTUM], real[kp.R_EPS] = layer.momentum, layer.eps
            elif kind is Dropout and layer.keep_prob != 1.0:
                kinds.add(Dropout)
                op[kp.F_KIND] = kp.OP_DROPOUT
                op[kp.F_SEED] = layer.seed
                op[kp.F_OUT] = mats.work(_same, layer._width)
                op[kp.F_DX] = mats.work(_same, layer._width)
                op[kp.F_MASK] = masks.work(_same, layer._width)
                real[kp.R_KEEP] = layer.keep_prob
                self._dropouts.append((layer, i))
            else:   # a fused Activation, a Dropout keeping everything: pass through
                op[kp.F_KIND] = kp.OP_PASS
                op[kp.F_OUT] = current
            current = op[kp.F_OUT]
            ops.append(op)
            reals.append(real)
            steps.append(getattr(layer, "step", 0))
        self.ops, self.reals = np.array(ops), np.array(reals)
        self.steps = np.array(steps, np.int64)
        self.dout = mats.work(_same, model.n_outputs)
        self.row_loss = rows.work(_same)
        self._labels_full = None
        if isinstance(loss, SoftmaxCrossEntropy):
            self._labels_full = np.empty(max_rows, np.int64)
        else:
            self.t_batch = mats.work(_same, model.n_outputs)
        self.w_batch = rows.work(_same) if weights is not None else None
        for arrays in (mats, vecs, stats, rows, masks):
            arrays.allocate(max_rows)
        self._arrays = (mats, vecs, stats, rows, masks)
        self.T, self.weights = targets, weights
        self.parallel = self._reaches_parallel(max_rows)
        self.bf16 = model._gemm_bf16   # None, or True: the Dense GEMMs in bfloat16
        self._flags = tuple(True if k in kinds else None
                            for k in (Activation, BatchNorm, Dropout))
        self._by_rows = {}

    def _reaches_parallel(self, max_rows):
        # The kernels test each array's element count: a plan in which none reaches the
        # threshold passes None, and no parallel build is compiled for it.
        mats, _, stats, _, _ = self._arrays
        widest = max(a.size for a in mats.views(max_rows) + stats.views(max_rows))
        return kernels.parallel_arg(max(widest, self.model.params.size))

    def _for_rows(self, r):
        """The kernel arguments that depend on the batch's rows (views of r rows)."""
        args = self._by_rows.get(r)
        if args is None:
            views = tuple(a.views(r) for a in self._arrays)
            mats = views[0]
            if self._labels_full is not None:
                labels = (self.T, self._labels_full[:r])
                targets, bce, scored = None, None, r
            else:
                labels = None
                targets = (self.T, self.t_batch)
                bce = True if isinstance(self.loss, BinaryCrossEntropy) else None
                scored = self.loss.n_scored(mats[self.t_batch])
            weights = None if self.weights is None else (self.weights, self.w_batch)
            args = self._by_rows[r] = (views, labels, targets, bce, weights, scored)
        return args

    def load_steps(self):
        """Take the Dropout layers' step counters (after a callback or a resume)."""
        for layer, i in self._dropouts:
            self.steps[i] = layer.step

    def store_steps(self):
        """Give the Dropout layers the step counters the plan advanced."""
        for layer, i in self._dropouts:
            layer.step = int(self.steps[i])

    def step(self, X, idx, seed, epoch, step):
        """One training step over rows ``idx`` of X: returns (cost, hits, scored)."""
        views, labels, targets, bce, weights, scored = self._for_rows(idx.shape[0])
        mats, vecs, stats, rows, masks = views
        augment = None
        if self.augment is not None:
            augment = self.augment._plan_args(seed, epoch, step, self.augment_out)
        model, optimizer = self.model, self.optimizer
        slot, opt_args = optimizer._plan_args(model.params)
        sgd = opt_args if slot == "sgd" else None
        momentum = opt_args if slot == "momentum" else None
        rmsprop = opt_args if slot == "rmsprop" else None
        adam = opt_args if slot == "adam" else None
        with_activation, with_batchnorm, with_dropout = self._flags
        cost, hits = kp.train_step(
            self.ops, self.reals, self.steps, mats, vecs, stats, rows, masks, self.batch,
            self.dout, self.row_loss, X, idx, self.l2, self.l1, labels, targets, bce,
            weights, augment, with_activation, with_batchnorm, with_dropout, sgd, momentum,
            rmsprop, adam, model.params, model.grads, self.parallel, self.bf16)
        return cost, hits, scored
