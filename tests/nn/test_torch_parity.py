"""Training step for step against PyTorch's optimizers, in float64.

A 5-8-3 tanh network (its first Dense without bias) is trained by ``fit`` with shuffle
off and by the same network in PyTorch; the parameters must agree after every step.
Conventions: our W is (n_in, n_out), so torch's Linear weight is W.T; both
SoftmaxCrossEntropy and CrossEntropyLoss average over rows; torch RMSprop's ``alpha`` is
our ``beta`` and both add eps outside the square root.

Momentum is not torch's: we average ``v = beta*v + (1-beta)*g`` where torch sums ``v =
mu*v + g``. It is tested against the NumPy formula in test_optimizers.py. Here we only
check the equivalence its docstring states: ``Momentum(lr, beta)`` takes the steps of
``torch.optim.SGD(lr*(1-beta), momentum=beta)``.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import nn

torch = pytest.importorskip("torch")

N, STEPS = 16, 20
#: float64 on both sides; the two differ only in the order of a few roundings per step
#: (e.g. torch's lerp for Adam's m), ~1e-16 relative, which 20 steps do not amplify
#: past 1e-12. 1e-10 is the issue's bound.
TOL = dict(rtol=1e-10, atol=1e-10)

CASES = {
    "SGD": (lambda: nn.SGD(lr=0.5), lambda p: torch.optim.SGD(p, lr=0.5)),
    "Momentum-rescaled": (lambda: nn.Momentum(lr=0.5, beta=0.9),
                          lambda p: torch.optim.SGD(p, lr=0.5 * (1 - 0.9), momentum=0.9)),
    "RMSprop": (lambda: nn.RMSprop(lr=0.01, beta=0.9, eps=1e-8),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
    "Adam": (lambda: nn.Adam(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8),
             lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
    "Adam-fused": (lambda: nn.Adam(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6),
                   lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6,
                                              fused=True)),
}


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, 5)), rng.integers(0, 3, N)


def _ours():
    return nn.Sequential([nn.Dense(5, 8, activation="tanh", use_bias=False),
                          nn.Dense(8, 3)], dtype=np.float64, seed=0)


def _theirs(model):
    """The same network in torch, with our initial weights."""
    first = torch.nn.Linear(5, 8, bias=False, dtype=torch.float64)
    second = torch.nn.Linear(8, 3, dtype=torch.float64)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(model.layers[0].W.T))
        second.weight.copy_(torch.from_numpy(model.layers[1].W.T))
        second.bias.copy_(torch.from_numpy(model.layers[1].b))
    return torch.nn.Sequential(first, torch.nn.Tanh(), second)


def _torch_params(net):
    """Our layout: each Dense's W (n_in, n_out) then b."""
    first, second = net[0], net[2]
    return [first.weight.detach().numpy().T, second.weight.detach().numpy().T,
            second.bias.detach().numpy()]


def _our_params(model):
    return [model.layers[0].W.copy(), model.layers[1].W.copy(), model.layers[1].b.copy()]


class Snapshots(nn.Callback):
    def __init__(self):
        self.params = []

    def on_epoch_end(self, model, epoch, logs, history):
        self.params.append(_our_params(model))


def _train_torch(net, optimizer, X, y, batches, n_epochs):
    """Parameters after each epoch of the given (in order) batches."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()
    out = []
    for _ in range(n_epochs):
        for lo, hi in batches:
            optimizer.zero_grad()
            loss_fn(net(Xt[lo:hi]), yt[lo:hi]).backward()
            optimizer.step()
        out.append([a.copy() for a in _torch_params(net)])
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_full_batch_training_matches_torch_every_step(case):
    ours_opt, theirs_opt = CASES[case]
    X, y = _data()
    model = _ours()
    net = _theirs(model)
    snaps = Snapshots()
    history = model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=ours_opt(),
                        epochs=STEPS, batch_size=N, shuffle=False, callbacks=[snaps])
    want = _train_torch(net, theirs_opt(net.parameters()), X, y, [(0, N)], STEPS)
    assert len(snaps.params) == len(want) == STEPS
    for step, (got, exp) in enumerate(zip(snaps.params, want)):
        for a, b in zip(got, exp):
            assert_allclose(a, b, **TOL, err_msg=f"{case}, after step {step + 1}")
    assert history["loss"][-1] < history["loss"][0]  # it moved somewhere useful
    assert np.abs(snaps.params[-1][0] - _ours().layers[0].W).max() > 1e-2


@pytest.mark.parametrize("case", ["SGD", "RMSprop", "Adam"])
def test_mini_batch_training_matches_torch(case):
    """Batches of 6, 6 and 4 rows in order (shuffle=False), 7 epochs = 21 steps."""
    ours_opt, theirs_opt = CASES[case]
    X, y = _data()
    model = _ours()
    net = _theirs(model)
    snaps = Snapshots()
    model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=ours_opt(), epochs=7,
              batch_size=6, shuffle=False, callbacks=[snaps])
    want = _train_torch(net, theirs_opt(net.parameters()), X, y,
                        [(0, 6), (6, 12), (12, 16)], 7)
    for epoch, (got, exp) in enumerate(zip(snaps.params, want)):
        for a, b in zip(got, exp):
            assert_allclose(a, b, **TOL, err_msg=f"{case}, after epoch {epoch + 1}")
