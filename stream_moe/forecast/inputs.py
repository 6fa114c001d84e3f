"""What a walk-forward run forecasts from: the link loads and what the operator knows besides (when links fail or
recover and which, the OD demands, the topology and its routing), from a simulated scenario or from CSV files of real
measurements."""

from __future__ import annotations

import dataclasses

import numpy as np

from connectors.network.csv_loads import LoadSeries
from connectors.network.simulator import Simulation
from connectors.network.topology import Topology
from stream_moe.forecast.network import Network
from stream_moe.forecast.options import LinkChange

DAY_S = 86400.0


@dataclasses.dataclass
class ForecastInput:
    name: str
    loads: np.ndarray  # steps x links
    names: list[str]  # the links
    changes: list[int]  # steps where links fail or recover
    season: int | None  # steps per day for the forecasters' seasonal inputs (None: none)
    steps_per_day: int  # what a day of warm-up or of a window is, in steps
    spans: np.ndarray | None = None  # time since the previous step, in steps (None: regular sampling)
    down: np.ndarray | None = None  # steps x links, True where a link is down (None: not known)
    demands: np.ndarray | None = None  # steps x pairs
    network: Network | None = None

    def head(self, n: int) -> ForecastInput:
        """The first n steps."""
        cut = lambda a: None if a is None else a[:n]  # noqa: E731
        return dataclasses.replace(self, loads=self.loads[:n], changes=[c for c in self.changes if c < n],
                                   spans=cut(self.spans), down=cut(self.down), demands=cut(self.demands))


def simulated(sim: Simulation) -> ForecastInput:
    """A simulated scenario: its loads, link states, demands, topology and routing."""
    season = sim.scenario.steps_per_day
    return ForecastInput(sim.scenario.name, sim.loads, sim.link_names, [c.step for c in sim.changes], season, season,
                         down=sim.failed, demands=sim.demands,
                         network=Network(sim.topology, pairs=sim.pairs, routing=sim.scenario.routing))


def measured(name: str, series: LoadSeries, season: int | None, failures: list[LinkChange],
             recoveries: list[LinkChange] = (), topology: Topology | str | None = None, od: LoadSeries | None = None,
             routing: str = "weight") -> ForecastInput:
    """Measured loads (and OD demands at the same timestamps), the known failures and recoveries, and the topology
    (its routing by link weight unless `routing` says hops). Link names are the loads' columns, or with a topology
    any name of the link (``A-B`` or ``B-A``). Refused (ValueError) when they do not fit together."""
    network = None
    if topology is not None:
        network = Network(topology, links=series.names, pairs=None if od is None else od.names, routing=routing)
    elif od is not None:
        raise ValueError("OD demands are routed to the links over a topology: give one")
    demands = None
    if od is not None:
        if len(od.times) != len(series.times) or not np.allclose(od.times, series.times):
            raise ValueError("the OD demands are not measured at the loads' timestamps")
        demands = od.values
    down = None
    if any(c.links for c in [*failures, *recoveries]):
        down = np.zeros(series.values.shape, dtype=bool)
        for change, up in sorted([(c, False) for c in failures] + [(c, True) for c in recoveries],
                                 key=lambda pair: pair[0].step):
            for link in change.links:
                down[change.step :, link_column(link, series.names, network)] = not up
    steps_per_day = season or max(1, round(DAY_S / series.step))
    changes = sorted({c.step for c in [*failures, *recoveries]})
    return ForecastInput(name, series.values, series.names, changes, season, steps_per_day, series.spans(), down,
                         demands, network)


def link_column(link: str, names: list[str], network: Network | None) -> int:
    """The column of a named link among the load series."""
    if link in names:
        return names.index(link)
    if network is not None:
        try:
            return network.order.index(network.topology.link_index(link))
        except (KeyError, ValueError):
            pass
    raise ValueError(f"no link {link!r} among the loads' columns")
