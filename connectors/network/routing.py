"""Shortest-path routing of origin-destination demands, as a matrix from demands to link loads.

``routing_matrix(topo, pairs)[l, k]`` is 1 when the demand of pair ``k`` crosses link ``l``: link loads are then
``R @ demands``. Failed links are left out of the graph, so the paths re-route around them; a pair left without any
path gets an all-zero column (its traffic is lost).

>>> from connectors.network.topology import load_topology
>>> topo = load_topology("abilene")
>>> pairs = [("NewYork", "Washington")]
>>> routing_matrix(topo, pairs)[:, 0].nonzero()[0].tolist()
[1]
>>> routing_matrix(topo, pairs, failed=frozenset({1}))[:, 0].nonzero()[0].tolist()  # via Chicago, Indianapolis
[0, 2, 3, 4]

A pair's series (its demand over time, on the wire or in a CSV file) is named ``origin>destination`` (`pair_key`).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from connectors.network.topology import Topology

PAIR_SEPARATOR = ">"


def pair_key(origin: str, destination: str) -> str:
    """The series key of an OD pair: ``origin>destination``.

    >>> pair_key("NewYork", "Chicago"), parse_pair("NewYork>Chicago")
    ('NewYork>Chicago', ('NewYork', 'Chicago'))
    """
    return f"{origin}{PAIR_SEPARATOR}{destination}"


def parse_pair(key: str) -> tuple[str, str]:
    origin, sep, destination = key.partition(PAIR_SEPARATOR)
    if not sep or not origin or not destination:
        raise ValueError(f"an OD pair is 'origin{PAIR_SEPARATOR}destination', not {key!r}")
    return origin, destination


def shortest_paths(
    topo: Topology, pairs: list[tuple[str, str]], failed: frozenset[int] = frozenset(), by: str = "hops"
) -> list[list[int] | None]:
    """For each pair, the link indices of one shortest path (by ``hops`` or link ``weight``), or None if cut off.

    Ties are broken the same way on every call (networkx's deterministic search over the fixed link order).
    """
    if by not in ("hops", "weight"):
        raise ValueError(f"route by 'hops' or 'weight', not {by!r}")
    g = topo.graph(without=failed)
    weight = "weight" if by == "weight" else None
    paths: list[list[int] | None] = []
    for src, dst in pairs:
        try:
            nodes = nx.shortest_path(g, src, dst, weight=weight)
        except nx.NetworkXNoPath:
            paths.append(None)
            continue
        paths.append([g.edges[u, v]["index"] for u, v in zip(nodes, nodes[1:])])
    return paths


def routing_matrix(
    topo: Topology, pairs: list[tuple[str, str]], failed: frozenset[int] = frozenset(), by: str = "hops"
) -> np.ndarray:
    """Links x pairs, 1 where the pair's shortest path crosses the link."""
    r = np.zeros((len(topo.links), len(pairs)))
    for k, path in enumerate(shortest_paths(topo, pairs, failed, by)):
        if path is not None:
            r[path, k] = 1.0
    return r
