"""Shared data builders, seeds and the optional PyTorch import for the benchmarks."""
import numpy as np

#: The reference workload: an MNIST-shaped MLP.
MLP_WIDTHS = (784, 256, 256, 10)


def mnist_like(n, dtype="float32", seed=0):
    """Standardized random inputs of MNIST's width and labels 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, MLP_WIDTHS[0])).astype(dtype)
    y = rng.integers(0, MLP_WIDTHS[-1], n)
    return X, y


def build_mlp(dtype="float32", seed=0):
    import nn
    w = MLP_WIDTHS
    layers = [nn.Dense(a, b, activation="relu") for a, b in zip(w[:-2], w[1:-1])]
    layers.append(nn.Dense(w[-2], w[-1]))
    return nn.Sequential(layers, dtype=np.dtype(dtype), seed=seed)


def set_threads(threads):
    """Apply a thread count to Numba and BLAS; NotImplementedError (asv: skip) if absent."""
    import numba
    import nn
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise NotImplementedError("fewer cores than threads")
    nn.set_num_threads(threads)


def import_torch():
    """PyTorch, or NotImplementedError so asv skips the comparison when it is absent."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("PyTorch is not installed") from None
    return torch


def torch_mlp_epoch(torch, X, y, batch_size, lr, threads, seed=0):
    """A function running one epoch of the same MLP and SGD in PyTorch (CPU)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    w = MLP_WIDTHS
    mods = []
    for a, b in zip(w[:-2], w[1:-1]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(w[-2], w[-1]))
    model = torch.nn.Sequential(*mods).to(torch.float32 if X.dtype == np.float32
                                           else torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)

    def epoch():
        order = torch.randperm(n, generator=gen)
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    return epoch
