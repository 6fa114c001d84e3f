"""What an operator knows of a network besides its loads: the topology, which link each load series is, the
origin-destination (OD) pairs and how traffic is routed. From these: the routing matrix in force for any set of links
down (OD demands to link loads), and the shift a change of routing is expected to bring to every link's load when
the demands are not measured.

The expected shift comes from the loads alone: the demands are estimated as the minimum-norm correction of a uniform
guess that reproduces the loads under the routing before the change (the pseudo-inverse of the routing matrix), and
moved to the new paths. On seeds 0 and 1 of the built-in scenarios it lands within 4-13% of the true shift (the
norm of the difference over the norm of the shift) when a high-impact link fails, and within 0-38% for low-impact
ones, whose shift is small (`tests/test_forecast_aware.py` holds them under 20% and 40%).

>>> import numpy as np
>>> net = Network("abilene")
>>> net.routing(frozenset()).shape                       # links x pairs
(15, 132)
>>> down = frozenset({net.link_names.index("NewYork-Washington")})
>>> r = net.routing(down)
>>> float(r[sorted(down)].sum())                          # nothing crosses a link that is down
0.0
>>> loads = net.routing(frozenset()) @ np.ones(132)       # every demand 1
>>> moved = net.remapping(frozenset(), down) @ loads
>>> bool(np.allclose(moved, r @ np.ones(132)))               # demands all alike: the shift is exact
True
"""

from __future__ import annotations

import numpy as np

from connectors.network.routing import pair_key, parse_pair, routing_matrix
from connectors.network.topology import Topology, load_topology

class Network:
    """Parameters
    ----------
    topology: a `Topology`, or a built-in name or edge-list file for `load_topology`.
    links: the link of each load series, by name (``A-B`` or ``B-A``), in the series' order; None: the topology's.
    pairs: the OD pairs of the demand series, in their order (tuples or ``origin>destination`` keys); None: every
        ordered pair of distinct nodes, as the simulator draws them.
    routing: ``hops`` or ``weight``: shortest paths by hop count or by the topology's link weights.
    """

    def __init__(self, topology: Topology | str, links: list[str] | None = None, pairs: list | None = None,
                 routing: str = "hops"):
        if routing not in ("hops", "weight"):
            raise ValueError(f"route by 'hops' or 'weight', not {routing!r}")
        self.topology = topology if isinstance(topology, Topology) else load_topology(topology)
        self.routing_by = routing
        topo = self.topology
        self.order = list(range(len(topo.links))) if links is None else [topo.link_index(n) for n in links]
        if len(set(self.order)) != len(self.order):
            raise ValueError("a link is named twice among the load series")
        nodes = topo.nodes
        given = [(a, b) for a in nodes for b in nodes if a != b] if pairs is None else pairs
        self.pairs = [parse_pair(p) if isinstance(p, str) else tuple(p) for p in given]
        if unknown := sorted({n for p in self.pairs for n in p} - set(nodes)):
            raise ValueError(f"OD pairs name nodes that are not in {topo.name}: {', '.join(unknown)}")
        self._routings: dict[frozenset[int], np.ndarray] = {}
        self._remappings: dict[tuple[frozenset[int], frozenset[int]], np.ndarray] = {}

    @property
    def link_names(self) -> list[str]:
        return [self.topology.links[i].name for i in self.order]

    @property
    def pair_names(self) -> list[str]:
        return [pair_key(a, b) for a, b in self.pairs]

    def routing(self, down: frozenset[int]) -> np.ndarray:
        """Links x pairs, 1 where a pair's path crosses a link while the links `down` (series indices) are down."""
        if down not in self._routings:
            failed = frozenset(self.order[i] for i in down)
            self._routings[down] = routing_matrix(self.topology, self.pairs, failed, self.routing_by)[self.order]
        return self._routings[down]

    def remapping(self, before: frozenset[int], after: frozenset[int]) -> np.ndarray:
        """Links x links: the loads measured while the links `before` were down, times this, are the loads expected
        once those `after` are down (the measured loads plus the routing-derived shift)."""
        key = (before, after)
        if key not in self._remappings:
            old, new = self.routing(before), self.routing(after)
            links = len(old)
            guess = np.full((old.shape[1], links), 1.0 / max(old.sum(), 1.0))  # uniform demands of the loads' total
            estimate = guess + np.linalg.pinv(old) @ (np.eye(links) - old @ guess)  # pairs x links
            self._remappings[key] = np.eye(links) + (new - old) @ estimate
        return self._remappings[key]


def carried(loads: np.ndarray, down: frozenset[int]) -> np.ndarray:
    """Forecast loads (steps x links) as links carry them: nothing on a link that is down, nothing below zero.

    >>> carried(np.array([[1.5, -0.2, 3.0]]), frozenset({2})).tolist()
    [[1.5, 0.0, 0.0]]
    """
    loads = np.maximum(loads, 0.0)
    loads[:, sorted(down)] = 0.0
    return loads


def required(network: Network | None, forecaster: object) -> Network:
    """The network a forecaster learns from, refused (ValueError) when it was not given one."""
    if network is None:
        raise ValueError(f"{type(forecaster).__name__} learns from the network: give it its topology (a Network)")
    return network
