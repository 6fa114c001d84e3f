"""The network simulator: routing conserves traffic, failures re-route it, runs repeat by seed, scenarios and CSV
files parse."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.network.csv_loads import read_loads
from connectors.network.routing import shortest_paths
from connectors.network.scenario import load_scenario
from connectors.network.simulator import simulate
from connectors.network.topology import load_topology


@pytest.fixture(scope="module")
def drastic():
    return simulate(load_scenario("euro28-drastic"), seed=1)


def test_builtin_topologies_have_their_sizes():
    assert [(len(t.nodes), len(t.links)) for t in map(load_topology, ("euro28", "abilene"))] == [(28, 41), (12, 15)]


def test_loads_are_the_sum_of_routed_demands(drastic):
    topo, pairs = drastic.topology, drastic.pairs
    for t in (0, 700, 1100):
        down = frozenset(np.flatnonzero(drastic.failed[t]).tolist())
        expected = np.zeros(len(topo.links))
        for k, path in enumerate(shortest_paths(topo, pairs, down, drastic.scenario.routing)):
            for link in path:
                expected[link] += drastic.demands[t, k]
        np.testing.assert_allclose(drastic.loads[t], expected)


def test_failed_links_carry_nothing_and_paths_avoid_them(drastic):
    assert [c.step for c in drastic.changes] == [672, 1008]
    assert (drastic.loads[drastic.failed] == 0).all()
    down = frozenset(np.flatnonzero(drastic.failed[-1]).tolist())
    paths = shortest_paths(drastic.topology, drastic.pairs, down)
    assert all(path is not None and not down & set(path) for path in paths)  # re-routed, nothing cut off


def test_a_failure_reroutes_traffic_onto_other_links(drastic):
    c = drastic.changes[0].step
    before, after = drastic.loads[c - 1], drastic.loads[c]
    assert (after > before + 1).sum() >= 2


def test_same_seed_same_loads_other_seed_other_loads(drastic):
    scenario = load_scenario("euro28-drastic")
    np.testing.assert_array_equal(simulate(scenario, seed=1).loads, drastic.loads)
    assert not np.allclose(simulate(scenario, seed=2).loads, drastic.loads)


def test_drastic_failures_move_more_load_than_mild_ones():
    def moved(name):
        sim = simulate(load_scenario(name), seed=0)
        c = sim.changes[0].step
        return np.abs(sim.loads[c] - sim.loads[c - 1]).sum()

    assert moved("abilene-drastic") > 5 * moved("abilene-mild")


def test_scenario_file_names_links_and_recoveries(tmp_path):
    (tmp_path / "tiny.edges").write_text("# a square with a diagonal\nA B 10\nB C 10\nC D 10\nD A 10\nA C 10 2\n")
    (tmp_path / "s.yaml").write_text(
        "topology: tiny.edges\nsteps: 50\nstep_minutes: 60\nfailures:\n  - {link: B-A, at: 10, recover: 20}\n"
    )
    sim = simulate(load_scenario(tmp_path / "s.yaml"), seed=0)
    assert sim.loads.shape == (50, 5)
    assert [(c.step, c.kind, c.links) for c in sim.changes] == [(10, "fail", (0,)), (20, "recover", (0,))]
    assert (sim.loads[10:20, 0] == 0).all() and (sim.loads[20:, 0] > 0).all()


def test_csv_loads_wide_and_long_agree(tmp_path):
    (tmp_path / "wide.csv").write_text("ts,A-B,B-C\n2024-01-01T00:00:00,1,2\n2024-01-01T00:05:00,3,4\n")
    (tmp_path / "long.csv").write_text("ts,link,v\n0,A-B,1\n0,B-C,2\n300,B-C,4\n300,A-B,3\n")
    wide, long = read_loads(tmp_path / "wide.csv"), read_loads(tmp_path / "long.csv")
    assert wide.names == long.names == ["A-B", "B-C"]
    np.testing.assert_array_equal(wide.values, long.values)
    assert wide.times[1] - wide.times[0] == long.times[1] - long.times[0] == 300
