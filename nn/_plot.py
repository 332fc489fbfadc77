"""``History.plot``: cost and accuracy per epoch as a PNG (matplotlib, optional)."""
import os
import tempfile


def plot_history(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg", force=False)  # no screen needed
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('History.plot needs matplotlib: pip install "numba-nn[plot]"') \
            from None
    path = os.fspath(path)
    if not history.epochs:
        raise ValueError("History.plot: nothing to plot; the history has no epochs.")
    epochs = [e + 1 for e in history.epochs]
    panels = [("cost", "loss")]
    if "accuracy" in history.history:
        panels.append(("accuracy", "accuracy"))
    fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    for k, (title, key) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.plot(epochs, history[key], label="train")
        if "dev_" + key in history.history:
            ax.plot(epochs, history["dev_" + key], label="dev")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".png", prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=100)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
