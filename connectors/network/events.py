"""A simulated failure scenario as a stream of forecast events, for the daemon's embedded mode and its tests.

Step t of the scenario becomes, in order: a link event `{"event": "link_down" or "link_up", "key": link, "ts"}` for
each link that fails or recovers at t (announced before the loads it changes), one record `{"key": link, "ts": t *
step seconds, "value": load}` per link, in the topology's link order, and, with `demands`, one record per OD pair
(`{"key": "origin>destination", ...}`): the wire format `connectors.forecast_events` decodes, so the embedded daemon
runs the same decode path as one fed by Kafka.

>>> import json
>>> source = scenario_source("abilene-mild", seed=0, limit=16)
>>> record = next(source.batches(16))[15]  # Abilene has 15 links: the first link's load at the second step
>>> event = json.loads(record.value)
>>> event["key"], event["ts"], round(event["value"], 3)
('NewYork-Chicago', 1800.0, 1.384)
>>> [e for e in scenario_events(simulate(load_scenario("abilene-mild"), 0)) if "event" in e]
[{'event': 'link_down', 'key': 'Seattle-Sunnyvale', 'ts': 1209600.0}]
"""

from __future__ import annotations

import json

from connectors.network.routing import pair_key
from connectors.network.scenario import load_scenario
from connectors.network.simulator import Simulation, simulate
from connectors.source import IterableSource
from stream_moe.events import Position, Record

EVENT_OF = {"fail": "link_down", "recover": "link_up"}


def scenario_events(sim: Simulation, demands: bool = False) -> list[dict]:
    """Every link's changes of state and load (and with `demands` every pair's demand) at every step, as events."""
    step_s = sim.scenario.step_minutes * 60
    names = sim.link_names
    pairs = [pair_key(a, b) for a, b in sim.pairs]
    changes: dict[int, list] = {}
    for c in sim.changes:
        changes.setdefault(c.step, []).append(c)
    events = []
    for t, loads in enumerate(sim.loads):
        ts = float(t * step_s)
        events += [{"event": EVENT_OF[c.kind], "key": names[i], "ts": ts} for c in changes.get(t, []) for i in c.links]
        events += [{"key": names[i], "ts": ts, "value": float(load)} for i, load in enumerate(loads)]
        if demands:
            events += [{"key": pair, "ts": ts, "value": float(d)} for pair, d in zip(pairs, sim.demands[t])]
    return events


def scenario_source(scenario: str, seed: int = 0, limit: int | None = None, demands: bool = False) -> IterableSource:
    """The events of a built-in scenario (or a scenario file), simulated with `seed`, cut at `limit` records."""
    records = (
        Record(json.dumps(event).encode(), Position(scenario, i))
        for i, event in enumerate(scenario_events(simulate(load_scenario(scenario), seed), demands))
    )
    return IterableSource(scenario, records, limit=limit)
