"""The forecasters by name, and what they all offer.

>>> sorted(FORECASTERS)
['cfc', 'ltc', 'mlp-retrained', 'persistence', 'seasonal', 'snarimax']
>>> build_forecaster("seasonal", season=48).season
48
"""

from __future__ import annotations

import typing

import numpy as np

from stream_moe.forecast.baselines import Persistence, RetrainedMLP, SeasonalPersistence, Snarimax
from stream_moe.forecast.liquid import LiquidForecaster


class Forecaster(typing.Protocol):
    """Observe the latest value of every series (optionally `dt`, the time since the previous one, in steps), forecast
    the next h steps of every series (h x series). Pickling one and loading it back gives the same forecasts."""

    def observe(self, values, dt: float | None = None) -> None: ...

    def forecast(self, h: int = 1) -> np.ndarray: ...


def liquid(cell: str) -> typing.Callable[..., Forecaster]:
    return lambda season, seed, device, **kw: LiquidForecaster(cell, season=season, seed=seed, device=device, **kw)


FORECASTERS: dict[str, typing.Callable[..., Forecaster]] = {
    "cfc": liquid("cfc"),
    "ltc": liquid("ltc"),
    "mlp-retrained": lambda season, seed, device, **kw: RetrainedMLP(season=season, seed=seed, **kw),
    "persistence": lambda season, seed, device, **kw: Persistence(**kw),
    "seasonal": lambda season, seed, device, **kw: SeasonalPersistence(season, **kw),
    "snarimax": lambda season, seed, device, **kw: Snarimax(season=season, **kw),
}


def build_forecaster(name: str, season: int | None, seed: int = 0, device: str = "auto", **params) -> Forecaster:
    """A forecaster by name; `season` is the steps per season (a day) of the series, `params` go to its constructor."""
    return FORECASTERS[name](season, seed=seed, device=device, **params)
