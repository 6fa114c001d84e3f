"""Pictures a person would rather look at than read: accuracy over time with the drifts marked."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def plot_accuracy(history: list[dict], drifts: list[int], path: pathlib.Path, title: str) -> None:
    """Windowed and cumulative accuracy against instances seen, drift centres as dashed lines."""
    fig, ax = plt.subplots(figsize=(9, 4))
    n = [h["n"] for h in history]
    ax.plot(n, [100 * h["window_accuracy"] for h in history], label="sliding window", linewidth=1)
    ax.plot(n, [100 * h["accuracy"] for h in history], label="cumulative", linewidth=1.5)
    for i, d in enumerate(drifts):
        ax.axvline(d, color="grey", linestyle="--", linewidth=0.8, label="drift" if i == 0 else None)
    ax.set_xlabel("instances")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
