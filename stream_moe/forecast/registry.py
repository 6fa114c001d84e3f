"""The forecasters by name, and what they all offer.

>>> sorted(FORECASTERS)
['cfc', 'cfc-failure-aware', 'ltc', 'mlp-retrained', 'od-cfc', 'persistence', 'seasonal', 'snarimax']
>>> build_forecaster("seasonal", season=48).season
48
>>> sorted(NETWORK_FORECASTERS)   # these need the network (`Network`): topology, link order, routing
['cfc-failure-aware', 'od-cfc']
"""

from __future__ import annotations

import typing

import numpy as np

from stream_moe.forecast.baselines import Persistence, RetrainedMLP, SeasonalPersistence, Snarimax
from stream_moe.forecast.failure_aware import FailureAwareForecaster
from stream_moe.forecast.liquid import LiquidForecaster
from stream_moe.forecast.network import Network
from stream_moe.forecast.od import ODForecaster


class Forecaster(typing.Protocol):
    """Observe the latest value of every series (optionally `dt`, the time since the previous one, in steps), forecast
    the next h steps of every series (h x series). Pickling one and loading it back gives the same forecasts."""

    def observe(self, values, dt: float | None = None) -> None: ...

    def forecast(self, h: int = 1) -> np.ndarray: ...


class NetworkForecaster(Forecaster, typing.Protocol):
    """A forecaster of link loads that knows the network: told which links are down (series indices) as soon as the
    network announces it, and, when `uses_demands`, given every step's OD demands with its loads
    (``observe(values, dt, demands=...)``)."""

    uses_demands: bool

    def set_links_down(self, down: typing.Iterable[int]) -> None: ...


def knows_network(forecaster) -> bool:
    """Whether a forecaster takes link up/down state (a `NetworkForecaster`)."""
    return hasattr(forecaster, "set_links_down")


def liquid(cell: str) -> typing.Callable[..., Forecaster]:
    return lambda season, seed, device, **kw: LiquidForecaster(cell, season=season, seed=seed, device=device, **kw)


FORECASTERS: dict[str, typing.Callable[..., Forecaster]] = {
    "cfc": liquid("cfc"),
    "ltc": liquid("ltc"),
    "mlp-retrained": lambda season, seed, device, **kw: RetrainedMLP(season=season, seed=seed, **kw),
    "persistence": lambda season, seed, device, **kw: Persistence(**kw),
    "seasonal": lambda season, seed, device, **kw: SeasonalPersistence(season, **kw),
    "snarimax": lambda season, seed, device, **kw: Snarimax(season=season, **kw),
    "od-cfc": lambda season, seed, device, network, **kw: ODForecaster(network, season=season, seed=seed,
                                                                       device=device, **kw),
    "cfc-failure-aware": lambda season, seed, device, network, **kw: FailureAwareForecaster(
        network, season=season, seed=seed, device=device, **kw),
}
NETWORK_FORECASTERS = {"od-cfc": ODForecaster, "cfc-failure-aware": FailureAwareForecaster}


def build_forecaster(name: str, season: int | None, seed: int = 0, device: str = "auto",
                     network: Network | None = None, **params) -> Forecaster:
    """A forecaster by name; `season` is the steps per season (a day) of the series, `network` what the network
    forecasters learn from (they refuse to learn without it; the others ignore it), `params` go to its constructor."""
    if name in NETWORK_FORECASTERS:
        params["network"] = network
    return FORECASTERS[name](season, seed=seed, device=device, **params)
