"""True against forecast load on the links a failure affected most, the failures and recoveries marked."""

from __future__ import annotations

import pathlib

from stream_moe.forecast.backtest import Backtest
from stream_moe.plots import plt


def plot_forecast(result: Backtest, names: list[str], path: pathlib.Path, title: str, links: int = 3) -> None:
    """One panel per link (the first change's most affected links, else the first links), two days around it."""
    chosen = result.affected[0][:links] if result.changes else list(range(min(links, len(names))))
    around = slice(max(result.changes[0] - 96, 0), result.changes[0] + 96) if result.changes else slice(None)
    fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 2.2 * len(chosen)), sharex=True, squeeze=False)
    steps = range(len(result.loads))[around]
    for ax, link in zip(axes[:, 0], chosen):
        ax.plot(steps, result.loads[around, link], label="true", linewidth=1.2)
        ax.plot(steps, result.predictions[around, link], label="forecast", linewidth=1)
        for i, c in enumerate(result.changes):
            if c in steps:
                label = "failure / recovery" if i == 0 else None
                ax.axvline(c, color="red", linestyle="--", linewidth=0.8, label=label)
        ax.set_ylabel(names[link], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
