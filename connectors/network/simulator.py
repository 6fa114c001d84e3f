"""Link loads of a failure scenario: demands routed on shortest paths, re-routed whenever a link fails or recovers.

The load of a link at a step is the sum of the demands whose current path crosses it; a failed link carries nothing.

>>> from connectors.network.scenario import load_scenario
>>> sim = simulate(load_scenario("abilene-drastic"), seed=0)
>>> sim.loads.shape, [c.kind for c in sim.changes]
((1344, 15), ['fail'])
>>> float(sim.loads[sim.changes[0].step:, sim.changes[0].links[0]].max())
0.0
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np

from connectors.network.demands import sinusoid_demands
from connectors.network.routing import routing_matrix
from connectors.network.scenario import Scenario
from connectors.network.topology import Topology, load_topology


@dataclasses.dataclass(frozen=True)
class Change:
    """Links failing or recovering at a step (from that step on)."""

    step: int
    kind: str
    links: tuple[int, ...]


@dataclasses.dataclass
class Simulation:
    scenario: Scenario
    topology: Topology
    pairs: list[tuple[str, str]]
    demands: np.ndarray  # steps x pairs
    loads: np.ndarray  # steps x links
    failed: np.ndarray  # steps x links, True where the link is down
    changes: list[Change]

    @property
    def link_names(self) -> list[str]:
        return [link.name for link in self.topology.links]


def impact_ranking(topo: Topology, pairs, demand: np.ndarray, by: str = "hops") -> list[int]:
    """Links ordered by the load their failure alone moves (sum over links of |load change|), most first.

    Bridges (links whose failure cuts the network) and links whose failure moves nothing are left out.
    """
    base = routing_matrix(topo, pairs, by=by) @ demand
    bridges = {topo.graph().edges[e]["index"] for e in nx.bridges(topo.graph())}
    moved = {}
    for i in range(len(topo.links)):
        if i not in bridges:
            moved[i] = float(np.abs(routing_matrix(topo, pairs, frozenset({i}), by) @ demand - base).sum())
    return sorted((i for i in moved if moved[i] > 0), key=lambda i: -moved[i])


def simulate(scenario: Scenario, seed: int = 0) -> Simulation:
    topo = load_topology(scenario.topology)
    pairs = [(a, b) for a in topo.nodes for b in topo.nodes if a != b]
    demands = sinusoid_demands(len(pairs), scenario.steps, scenario.step_minutes, seed)
    intact = routing_matrix(topo, pairs, by=scenario.routing)
    mean_capacity = np.mean([link.capacity for link in topo.links])
    demands *= scenario.utilisation * mean_capacity / (intact @ demands.mean(0)).mean()

    ranking = impact_ranking(topo, pairs, demands.mean(0), scenario.routing)
    failed = np.zeros((scenario.steps, len(topo.links)), dtype=bool)
    for f in scenario.failures:
        index = topo.link_index(f.link) if f.link is not None else ranking[f.impact - 1 if f.impact > 0 else f.impact]
        failed[f.at : f.recover, index] = True

    loads = np.empty((scenario.steps, len(topo.links)))
    changes = []
    matrices: dict[frozenset[int], np.ndarray] = {}
    for t in range(scenario.steps):
        down = frozenset(np.flatnonzero(failed[t]).tolist())
        if down not in matrices:
            matrices[down] = routing_matrix(topo, pairs, down, scenario.routing)
        loads[t] = matrices[down] @ demands[t]
        if t > 0:
            for kind, mask in (("fail", failed[t] & ~failed[t - 1]), ("recover", failed[t - 1] & ~failed[t])):
                if mask.any():
                    changes.append(Change(t, kind, tuple(np.flatnonzero(mask).tolist())))
    return Simulation(scenario, topo, pairs, demands, loads, failed, changes)
