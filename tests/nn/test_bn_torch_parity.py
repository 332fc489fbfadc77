"""BatchNorm training against PyTorch's BatchNorm1d, step for step in float64.

Conventions differ and are converted here: our momentum 0.9 is torch's 0.1, and torch
keeps the unbiased running variance, so the test replays torch's update from our biased
batch variances (times m / (m - 1)) and compares; running_mean is compared directly.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import nn

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_batchnorm_training_matches_torch_step_for_step(act):
    rng = np.random.default_rng(0)
    m, steps = 8, 6
    X = rng.standard_normal((m * steps, 4))
    y = rng.integers(0, 3, m * steps)
    model = nn.Sequential([nn.Dense(4, 6, use_bias=False), nn.BatchNorm(6, momentum=0.9),
                           nn.Activation(act), nn.Dense(6, 3)], dtype=np.float64, seed=0)
    dense1, bn, dense2 = model.layers[0], model.layers[1], model.layers[3]
    bn.gamma = 1.0 + 0.1 * rng.standard_normal(6)
    bn.beta = 0.1 * rng.standard_normal(6)

    torch.manual_seed(0)
    t_act = torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU()
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(4, 6, bias=False), torch.nn.BatchNorm1d(6, momentum=0.1, eps=1e-5),
        t_act, torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        tmodel[0].weight.copy_(torch.from_numpy(dense1.W.T.copy()))
        tmodel[1].weight.copy_(torch.from_numpy(bn.gamma.copy()))
        tmodel[1].bias.copy_(torch.from_numpy(bn.beta.copy()))
        tmodel[3].weight.copy_(torch.from_numpy(dense2.W.T.copy()))
        tmodel[3].bias.copy_(torch.from_numpy(dense2.b.copy()))
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = nn.SGD(lr=0.1)
    # Torch's unbiased running variance, replayed from our biased batch variances.
    expected_torch_var = np.ones(6)

    for s in range(steps):
        xb, yb = X[s * m:(s + 1) * m], y[s * m:(s + 1) * m]
        Z = xb @ dense1.W
        batch_var = Z.var(axis=0)
        hist = model.fit(xb, yb, loss=nn.SoftmaxCrossEntropy(), optimizer=opt, epochs=1,
                         batch_size=m, shuffle=False)
        tmodel.train()
        topt.zero_grad()
        tloss = loss_fn(tmodel(torch.from_numpy(xb)), torch.from_numpy(yb))
        tloss.backward()
        topt.step()
        expected_torch_var = 0.9 * expected_torch_var + 0.1 * batch_var * m / (m - 1)

        assert_allclose(hist["loss"][0], tloss.item(), rtol=1e-12)
        assert_allclose(bn.running_mean, tmodel[1].running_mean.numpy(), rtol=1e-12,
                        atol=1e-15)
        assert_allclose(tmodel[1].running_var.numpy(), expected_torch_var, rtol=1e-12)
        assert_allclose(dense1.W, tmodel[0].weight.detach().numpy().T, rtol=1e-10, atol=1e-13)
        assert_allclose(bn.gamma, tmodel[1].weight.detach().numpy(), rtol=1e-10, atol=1e-13)
        assert_allclose(bn.beta, tmodel[1].bias.detach().numpy(), rtol=1e-10, atol=1e-13)
        assert_allclose(dense2.W, tmodel[3].weight.detach().numpy().T, rtol=1e-10, atol=1e-13)

    # Eval mode: torch uses its unbiased running variance, we our biased one; with the
    # same statistics the outputs agree.
    tmodel.eval()
    with torch.no_grad():
        tmodel[1].running_var.copy_(torch.from_numpy(bn.running_var.copy()))
        t_out = tmodel(torch.from_numpy(X)).numpy()
    assert_allclose(model.forward(X), t_out, rtol=1e-10, atol=1e-12)
