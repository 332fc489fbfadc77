"""``History.plot``: cost and accuracy per epoch as a PNG (matplotlib, optional)."""
import os

from ._files import atomic_write


def plot_history(history, path):
    try:
        # A bare Figure (no pyplot): no screen, and the user's backend is left alone.
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('History.plot needs matplotlib: pip install "numba-nn[plot]"') \
            from None
    path = os.fspath(path)
    if not history.epochs:
        raise ValueError("History.plot: nothing to plot; the history has no epochs.")
    from matplotlib.ticker import MaxNLocator
    epochs = history.epochs
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100),
                        suffix=".png")
