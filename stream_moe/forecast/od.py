"""The OD-level forecaster: forecast the origin-destination demands, route them to link loads, and learn what the
routing leaves unexplained.

A liquid network (`LiquidForecaster`, all pairs one batch) forecasts every pair's demand; the routing in force
(`Network.routing`, recomputed when a link goes down or comes back) maps the demands to link loads; a second liquid
network forecasts the residual, the measured loads less the routed demands (traffic the OD series do not cover,
measurement differences), and its forecast is added. A failure does not change the demands, only their paths, so
the forecast moves with the traffic at the first step of the new routing instead of learning the shift from the
loads, as a forecaster of link loads alone must (Ayoub et al. 2024 on the link-level setting).

>>> import numpy as np
>>> from stream_moe.forecast.network import Network
>>> net = Network("abilene")
>>> f = ODForecaster(net, season=24, seed=0, device="cpu")
>>> rng = np.random.default_rng(0)
>>> for t in range(30):
...     demands = 1 + 0.5 * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 6, 132))
...     f.observe(net.routing(frozenset()) @ demands, demands=demands)
>>> before = f.forecast(1)
>>> f.set_links_down([net.link_names.index("NewYork-Washington")])  # re-routed at once
>>> after = f.forecast(1)
>>> float(after[0, 1]), bool(np.isclose(after.sum(), before.sum()))  # the link carries nothing; traffic moves
(0.0, False)

References: Ayoub et al., "Liquid Neural Network-based Adaptive Learning vs. Incremental Learning for Link Load
Prediction amid Concept Drift due to Network Failures", arXiv:2404.05304, 2024; Hasani et al., "Closed-form
continuous-time neural networks", Nature Machine Intelligence 2022 (the CfC cell).
"""

from __future__ import annotations

import numpy as np

from stream_moe.forecast.liquid import LiquidForecaster
from stream_moe.forecast.network import Network, carried, required

ALL_UP: frozenset[int] = frozenset()


class ODForecaster:
    """Parameters
    ----------
    network: the topology, the order of the link and pair series, and the routing (`Network`).
    cell, hidden, window, lr, season, lags, seasons, spread: the demand network's (see `LiquidForecaster`); more lags
        and seasons than a link-level network's, because a single pair's demand is noisier than a link's load.
    residual: forecast the residual too (False: the routed demands alone).
    device: ``auto``, ``cpu`` or ``cuda``.
    seed: seed of the demand network (the residual network's is seed + 1).
    """

    uses_demands = True

    def __init__(
        self,
        network: Network | None,
        cell: str = "cfc",
        hidden: int = 16,
        window: int = 8,
        lr: float = 3e-3,
        season: int | None = None,
        lags: int = 16,
        seasons: int = 2,
        spread: int = 1,
        residual: bool = True,
        device: str = "auto",
        seed: int = 0,
    ):
        self.network = network
        self.cell = cell
        self.hidden = hidden
        self.window = window
        self.lr = lr
        self.season = season
        self.lags = lags
        self.seasons = seasons
        self.spread = spread
        self.residual = residual
        self.device = device
        self.seed = seed

    def _build(self) -> None:
        self.demand_ = LiquidForecaster(self.cell, self.hidden, self.window, self.lr, self.season, self.lags,
                                        self.seasons, self.spread, device=self.device, seed=self.seed)
        self.residual_ = LiquidForecaster(self.cell, self.hidden, self.window, self.lr, self.season, nonnegative=False,
                                          device=self.device, seed=self.seed + 1) if self.residual else None

    @property
    def down(self) -> frozenset[int]:
        """The links down now (series indices)."""
        return getattr(self, "down_", ALL_UP)

    def set_links_down(self, down) -> None:
        """The links down from now on (series indices): the next forecasts route the demands around them."""
        self.down_ = frozenset(int(i) for i in down)

    def observe(self, values, dt: float | None = None, demands=None) -> None:
        """Learn a step: the loads of every link and the demand of every pair (both required), `dt` as ever."""
        if demands is None:
            raise ValueError("the OD forecaster learns from the OD demands: give them with every step's loads")
        if not hasattr(self, "demand_"):
            required(self.network, self)
            self._build()
        demands = np.asarray(demands, dtype=float)
        self.demand_.observe(demands, dt)
        if self.residual_ is not None:
            self.residual_.observe(np.asarray(values, dtype=float) - self.network.routing(self.down) @ demands, dt)

    def forecast_demands(self, h: int = 1) -> np.ndarray:
        """The next h demands of every pair (h x pairs)."""
        return self.demand_.forecast(h)

    def forecast(self, h: int = 1) -> np.ndarray:
        """The next h loads of every link (h x links): the forecast demands routed as now, plus the residual's."""
        loads = self.forecast_demands(h) @ self.network.routing(self.down).T
        if self.residual_ is not None:
            loads += self.residual_.forecast(h)
        return carried(loads, self.down)
