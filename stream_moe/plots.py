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


def plot_pool_size(sizes: list[tuple[int, int]], n: int, drifts: list[int], path: pathlib.Path, title: str) -> None:
    """Experts alive over instances (a step line), drift centres as dashed lines."""
    fig, ax = plt.subplots(figsize=(9, 3))
    xs = [t for t, _ in sizes] + [n]
    ys = [k for _, k in sizes] + [sizes[-1][1]]
    ax.step(xs, ys, where="post", linewidth=1.5)
    for i, d in enumerate(drifts):
        ax.axvline(d, color="grey", linestyle="--", linewidth=0.8, label="drift" if i == 0 else None)
    ax.set_xlabel("instances")
    ax.set_ylabel("experts")
    ax.set_ylim(0, max(ys) + 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if drifts:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
