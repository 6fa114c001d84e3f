"""Failure scenarios: a topology, a length, a sampling interval, and links that fail (and maybe recover) at given steps.

A scenario is a YAML file (or one of the built-ins: ``euro28-mild``, ``euro28-drastic``, ``abilene-mild``,
``abilene-drastic``)::

    topology: euro28          # built-in name or edge-list file (relative to the scenario file)
    steps: 1344
    step_minutes: 30
    routing: hops             # or: weight
    utilisation: 0.3          # mean link load of the intact network, as a fraction of the mean capacity
    failures:
      - {link: London-Paris, at: 672, recover: 1000}
      - {impact: 1, at: 900}  # the link whose failure moves the most load; -1: the least (but some)

Failures chosen by ``impact`` are resolved by the simulator, which ranks the links by how much load their failure
moves (`connectors.network.simulator.impact_ranking`): drastic scenarios fail high-impact links, mild ones low-impact.

>>> s = load_scenario("euro28-drastic")
>>> s.topology, s.steps, [(f.impact, f.at, f.recover) for f in s.failures]
('euro28', 1344, [(1, 672, None), (2, 1008, None)])
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib

import yaml

BUILTIN = ("euro28-mild", "euro28-drastic", "abilene-mild", "abilene-drastic")


@dataclasses.dataclass(frozen=True)
class Failure:
    """A link failing at step `at` and coming back at `recover` (None: never). Exactly one of `link` (its name) and
    `impact` (its rank by load moved, 1 the most, -1 the least) says which."""

    at: int
    link: str | None = None
    impact: int | None = None
    recover: int | None = None

    def __post_init__(self):
        if (self.link is None) == (self.impact is None):
            raise ValueError("a failure names either a link or an impact rank")
        if self.recover is not None and self.recover <= self.at:
            raise ValueError(f"recovery at {self.recover} is not after the failure at {self.at}")


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    topology: str
    steps: int
    step_minutes: float = 30.0
    routing: str = "hops"
    utilisation: float = 0.3
    failures: tuple[Failure, ...] = ()

    @property
    def steps_per_day(self) -> int:
        return round(24 * 60 / self.step_minutes)


def parse_scenario(data: dict, name: str, base: pathlib.Path | None = None) -> Scenario:
    data = dict(data)
    failures = tuple(Failure(**f) for f in data.pop("failures", []))
    for f in failures:
        if f.at >= data["steps"]:
            raise ValueError(f"{name}: failure at step {f.at} is past the end ({data['steps']} steps)")
    topology = str(data.pop("topology"))
    if base is not None and (base / topology).exists():
        topology = str(base / topology)
    return Scenario(name=data.pop("name", name), topology=topology, failures=failures, **data)


def load_scenario(name_or_path: str | pathlib.Path) -> Scenario:
    """A built-in scenario by name, or a YAML scenario file."""
    if str(name_or_path) in BUILTIN:
        text = importlib.resources.files("connectors.network").joinpath(f"data/{name_or_path}.yaml").read_text()
        return parse_scenario(yaml.safe_load(text), str(name_or_path))
    path = pathlib.Path(name_or_path)
    return parse_scenario(yaml.safe_load(path.read_text()), path.stem, path.parent)
