"""A simulated failure scenario as a stream of forecast events, for the daemon's embedded mode and its tests.

Step t of the scenario becomes one JSON record `{"key": link, "ts": t * step seconds, "value": load}` per link, in the
topology's link order: the wire format `connectors.forecast_events` decodes, so the embedded daemon runs the same
decode path as one fed by Kafka.

>>> import json
>>> source = scenario_source("abilene-mild", seed=0, limit=16)
>>> record = next(source.batches(16))[15]  # Abilene has 15 links: the first link's load at the second step
>>> event = json.loads(record.value)
>>> event["key"], event["ts"], round(event["value"], 3)
('NewYork-Chicago', 1800.0, 1.384)
"""

from __future__ import annotations

import json

from connectors.network.scenario import load_scenario
from connectors.network.simulator import Simulation, simulate
from connectors.source import IterableSource
from stream_moe.events import Position, Record


def scenario_events(sim: Simulation) -> list[dict]:
    """Every link's load at every step, step by step, as forecast events."""
    step_s = sim.scenario.step_minutes * 60
    names = sim.link_names
    return [
        {"key": names[i], "ts": float(t * step_s), "value": float(load)}
        for t, loads in enumerate(sim.loads)
        for i, load in enumerate(loads)
    ]


def scenario_source(scenario: str, seed: int = 0, limit: int | None = None) -> IterableSource:
    """The events of a built-in scenario (or a scenario file), simulated with `seed`, cut at `limit` records."""
    records = (
        Record(json.dumps(event).encode(), Position(scenario, i))
        for i, event in enumerate(scenario_events(simulate(load_scenario(scenario), seed)))
    )
    return IterableSource(scenario, records, limit=limit)
