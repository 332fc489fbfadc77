"""L2 and L1 through fit: sparsity, what is not penalized, gradient checks; and the
regularization example."""
import importlib.util
import pathlib
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose

import nn

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "regularization.py"


def irrelevant_features_problem(n=200, d=20, seed=0):
    """Labels depend on features 0 and 1 only; features 2..19 are noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 0] > 1)
    return X, y


def test_l1_gives_sparser_weights():
    X, y = irrelevant_features_problem()
    small = {}
    for l1 in (0.0, 2.0):
        model = nn.Sequential([nn.Dense(20, 8, activation="tanh", init="xavier"),
                               nn.Dense(8, 3)], dtype=np.float64, seed=0)
        model.fit(X, y, loss=nn.SoftmaxCrossEntropy(), optimizer=nn.SGD(lr=0.1), epochs=300,
                  batch_size=200, l1=l1)
        W = model.layers[0].W
        small[l1] = (np.abs(W[2:]) < 1e-3).mean()  # weights from the irrelevant features
        assert model.evaluate(X, y)["accuracy"] > 0.9
    assert small[0.0] < 0.1
    assert small[2.0] > 0.4


def test_penalty_skips_biases_gamma_and_beta():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((12, 4)), np.arange(12) % 3
    model = nn.Sequential([nn.Dense(4, 6, use_bias=False), nn.BatchNorm(6),
                           nn.Activation("tanh"), nn.Dense(6, 5, activation="tanh"),
                           nn.Dense(5, 3)], dtype=np.float64, seed=0)
    loss = nn.SoftmaxCrossEntropy()

    def grads(l2, l1):
        out = model._forward(X, True)
        dout = np.empty_like(out)
        loss.loss_and_grad(out, loss.targets(y, 3, 12, model.dtype, "t"), dout, np.empty(12))
        penalty = model._backward(dout, l2, l1)
        return model.grads.copy(), penalty

    state = model.buffers.copy()
    g0, p0 = grads(0.0, 0.0)
    model.buffers[...] = state
    g1, p1 = grads(3.0, 0.5)
    m = 12
    dense = [layer for layer in model.layers if isinstance(layer, nn.Dense)]
    assert p0 == 0.0
    assert_allclose(p1, sum(3.0 / (2 * m) * (d.W ** 2).sum() + 0.5 / m * np.abs(d.W).sum()
                            for d in dense), rtol=1e-12)
    assert_allclose(p1, model.penalty(3.0, 0.5, m), rtol=1e-12)
    diff = g1 - g0
    expected = np.zeros_like(diff)
    offset = 0
    for layer in model.layers:
        for name, shape in layer.param_shapes():
            size = int(np.prod(shape))
            if isinstance(layer, nn.Dense) and name == "W":
                expected[offset:offset + size] = (3.0 / m * layer.W + 0.5 / m
                                                  * np.sign(layer.W)).ravel()
            offset += size
    # zero everywhere but the Dense weights: b, gamma and beta get no penalty gradient
    assert_allclose(diff, expected, atol=1e-12)
    bn = model.layers[1]
    assert np.abs(bn.dgamma).sum() > 0 and np.abs(model.layers[3].db).sum() > 0


def test_gradient_check_with_l2_l1_batchnorm_and_dropout():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((10, 4)), np.arange(10) % 3
    model = nn.Sequential([nn.Dense(4, 6, use_bias=False), nn.BatchNorm(6),
                           nn.Activation("tanh"), nn.Dropout(0.7),
                           nn.Dense(6, 3)], dtype=np.float64, seed=0)
    assert nn.gradient_check(model, X, y, loss=nn.SoftmaxCrossEntropy(), l2=0.5,
                             l1=0.1) < 1e-7


def _load_example():
    spec = importlib.util.spec_from_file_location("regularization_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regularization_example_runs_and_prints_its_table(capsys):
    results = _load_example().main(["--epochs", "3", "--hidden", "32", "32",
                                    "--train-rows", "60"])
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"60 training rows, 360 dev rows, network 64-32-32-10, 3 epochs", out[0])
    assert out[1].split() == ["model", "train", "acc", "dev", "acc", "gap"]
    assert [line.split()[0] for line in out[2:]] == ["no", "L2", "dropout"]
    for line in out[2:]:
        train, dev, gap = map(float, line.split()[-3:])
        assert 0 <= train <= 1 and 0 <= dev <= 1 and abs(train - dev - gap) < 2e-4
    assert len(results) == 3
