"""Origin-destination demands as sums of sinusoids (a daily and a weekly period) plus noise, drawn from a seed.

Each pair has a mean drawn log-normally (a few large flows, many small ones), daily and weekly amplitudes relative to
its mean, random phases, and multiplicative Gaussian noise; demands never go below zero.

>>> d = sinusoid_demands(n_pairs=3, steps=4, step_minutes=30, seed=0)
>>> d.shape
(4, 3)
>>> bool((d >= 0).all()), bool((sinusoid_demands(3, 4, 30, seed=0) == d).all())
(True, True)
"""

from __future__ import annotations

import numpy as np

DAY_MINUTES = 24 * 60


def sinusoid_demands(
    n_pairs: int,
    steps: int,
    step_minutes: float,
    seed: int,
    mean: float = 1.0,
    daily: tuple[float, float] = (0.3, 0.6),
    weekly: tuple[float, float] = (0.05, 0.2),
    noise: float = 0.05,
) -> np.ndarray:
    """Steps x pairs demands; `daily` and `weekly` are the ranges of the relative amplitudes, `noise` the relative
    standard deviation of the noise."""
    rng = np.random.default_rng(seed)
    means = mean * rng.lognormal(0.0, 1.0, n_pairs)
    t = np.arange(steps)[:, None] * step_minutes
    shape = np.ones((steps, n_pairs))
    for period, (low, high) in ((DAY_MINUTES, daily), (7 * DAY_MINUTES, weekly)):
        amplitude = rng.uniform(low, high, n_pairs)
        phase = rng.uniform(0, 2 * np.pi, n_pairs)
        shape += amplitude * np.sin(2 * np.pi * t / period + phase)
    shape *= 1 + noise * rng.standard_normal((steps, n_pairs))
    return np.clip(means * shape, 0.0, None)
