"""Network topologies from edge-list files: nodes, bidirectional links, capacities and routing weights.

An edge-list file has one link per line, ``node_a node_b capacity [weight]``, ``#`` starting a comment. Two are
built in: ``euro28`` (28 nodes, 41 links, a pan-European backbone) and ``abilene`` (12 nodes, 15 links, a US research
backbone).

>>> topo = load_topology("euro28")
>>> len(topo.nodes), len(topo.links)
(28, 41)
>>> topo.links[0]
Link(a='Dublin', b='Glasgow', capacity=40.0, weight=300.0)
>>> topo.links[0].name
'Dublin-Glasgow'
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib

import networkx as nx

BUILTIN = ("euro28", "abilene")


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """A bidirectional link; its load is the traffic over it in both directions."""

    a: str
    b: str
    capacity: float
    weight: float = 1.0

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[str, ...]
    links: tuple[Link, ...]

    def link_index(self, name: str) -> int:
        """The index of a link given as ``A-B`` or ``B-A``."""
        for i, link in enumerate(self.links):
            if name in (link.name, f"{link.b}-{link.a}"):
                return i
        raise KeyError(f"no link {name!r} in {self.name}")

    def graph(self, without: frozenset[int] = frozenset()) -> nx.Graph:
        """The topology as a graph, less the links whose indices are in `without`; edges keep their link index."""
        g = nx.Graph()
        g.add_nodes_from(self.nodes)
        for i, link in enumerate(self.links):
            if i not in without:
                g.add_edge(link.a, link.b, index=i, weight=link.weight)
        return g


def parse_edges(text: str, name: str) -> Topology:
    nodes: dict[str, None] = {}
    links = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (3, 4):
            raise ValueError(f"{name}:{number}: expected 'node_a node_b capacity [weight]', got {line!r}")
        a, b = fields[:2]
        nodes.update({a: None, b: None})
        links.append(Link(a, b, float(fields[2]), float(fields[3]) if len(fields) == 4 else 1.0))
    return Topology(name, tuple(nodes), tuple(links))


def load_topology(name_or_path: str | pathlib.Path) -> Topology:
    """A built-in topology by name, or an edge-list file."""
    if str(name_or_path) in BUILTIN:
        text = importlib.resources.files("connectors.network").joinpath(f"data/{name_or_path}.edges").read_text()
        return parse_edges(text, str(name_or_path))
    path = pathlib.Path(name_or_path)
    return parse_edges(path.read_text(), path.stem)
