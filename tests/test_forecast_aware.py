"""Forecasters that know the network: the OD mapping is the simulator's, a link event re-routes the forecast at once,
the rewritten history carries the expected shift, they survive a checkpoint, the backtest tells them the link states
before it forecasts, and after a failure they beat persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from connectors.network.scenario import load_scenario
from connectors.network.simulator import simulate
from stream_moe.forecast.backtest import backtest
from stream_moe.forecast.baselines import Persistence
from stream_moe.forecast.failure_aware import FailureAwareForecaster
from stream_moe.forecast.network import Network, carried
from stream_moe.forecast.od import ODForecaster
from stream_moe.forecast.registry import NETWORK_FORECASTERS, build_forecaster

SMALL = """# Abilene for five days of 30-minute steps; the link whose failure moves the most load fails on day four.
topology: abilene
steps: 240
step_minutes: 30
failures:
  - {impact: 1, at: 170}
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenario") / "small.yaml"
    path.write_text(SMALL)
    return simulate(load_scenario(path), seed=0)


def network_of(sim) -> Network:
    return Network(sim.topology, pairs=sim.pairs, routing=sim.scenario.routing)


def down_at(sim, t: int) -> frozenset[int]:
    return frozenset(np.flatnonzero(sim.failed[t]).tolist())


def test_od_mapping_reproduces_the_simulated_loads_exactly():
    sim = simulate(load_scenario("euro28-drastic"), seed=2)
    net = network_of(sim)
    for t in range(sim.scenario.steps):
        np.testing.assert_array_equal(net.routing(down_at(sim, t)) @ sim.demands[t], sim.loads[t])
    names = sim.link_names[::-1]  # the load series in another order, one link named the other way round
    names[0] = "-".join(reversed(names[0].split("-")))
    reordered = Network(sim.topology, links=names, pairs=sim.pairs)
    down = frozenset(len(names) - 1 - i for i in down_at(sim, 1100))  # series indices
    np.testing.assert_array_equal(reordered.routing(down) @ sim.demands[1100], sim.loads[1100, ::-1])


def test_od_forecaster_leaves_no_residual_when_the_demands_explain_the_loads(small):
    f = ODForecaster(network_of(small), season=48, seed=0, device="cpu")
    for t in range(60):
        f.observe(small.loads[t], demands=small.demands[t])
    assert np.abs(np.stack(f.residual_.values_)).max() < 1e-9


def test_a_failure_changes_the_mapped_forecast_at_once(small):
    net, c = network_of(small), small.changes[0].step
    f = ODForecaster(net, season=48, seed=0, device="cpu")
    for t in range(c):
        f.observe(small.loads[t], demands=small.demands[t])
    demands, before = f.forecast_demands(2), f.forecast(2)
    failed = down_at(small, c)
    f.set_links_down(failed)
    after = f.forecast(2)
    np.testing.assert_array_equal(f.forecast_demands(2), demands)  # the demands stay: their paths move
    np.testing.assert_allclose(after, carried(demands @ net.routing(failed).T + f.residual_.forecast(2), failed))
    link = next(iter(failed))
    assert before[0, link] > 1 and (after[:, link] == 0).all()
    gained = (net.routing(failed) - net.routing(frozenset())).sum(1) > 0  # links onto which pairs moved
    assert (after[0, gained] > before[0, gained]).all()
    # the true loads of the failure step are forecast about as well as those of the step before
    error = lambda forecast, t: np.sqrt(np.mean((forecast - small.loads[t]) ** 2))  # noqa: E731
    persistence = error(small.loads[c - 1], c)
    assert error(after[0], c) < 0.2 * persistence


def test_failure_aware_forecaster_rewrites_what_it_remembers_into_the_new_routing(small):
    net, c = network_of(small), small.changes[0].step
    f = FailureAwareForecaster(net, season=48, seed=0, device="cpu")
    for t in range(c):
        f.observe(small.loads[t])
    remembered, before = np.stack(f.model_.values_), f.forecast(1)[0]
    failed = down_at(small, c)
    f.set_links_down(failed)
    np.testing.assert_allclose(np.stack(f.model_.values_), remembered @ net.remapping(frozenset(), failed).T)
    after = f.forecast(1)[0]
    link = next(iter(failed))
    assert before[link] > 1 and after[link] == 0
    error = lambda forecast: np.sqrt(np.mean((forecast - small.loads[c]) ** 2))  # noqa: E731
    assert error(after) < 0.3 * error(small.loads[c - 1]) and error(after) < 0.3 * error(before)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("scenario, bound", [("euro28-drastic", 0.2), ("abilene-drastic", 0.2),
                                             ("euro28-mild", 0.4), ("abilene-mild", 0.4)])
def test_expected_shift_from_the_loads_alone_is_close_to_the_true_one(scenario, bound, seed):
    sim = simulate(load_scenario(scenario), seed=seed)
    net = network_of(sim)
    for change in sim.changes:
        c = change.step
        old, new = down_at(sim, c - 1), down_at(sim, c)
        true = (net.routing(new) - net.routing(old)) @ sim.demands[c - 1]
        expected = net.remapping(old, new) @ sim.loads[c - 1] - sim.loads[c - 1]
        assert np.linalg.norm(expected - true) < bound * np.linalg.norm(true)


@pytest.mark.parametrize("name", sorted(NETWORK_FORECASTERS))
def test_network_forecasters_survive_a_checkpoint_through_a_failure(small, name):
    model = build_forecaster(name, 48, seed=0, device="cpu", network=network_of(small))
    feed = lambda f, t: (f.observe(small.loads[t], demands=small.demands[t]) if f.uses_demands  # noqa: E731
                         else f.observe(small.loads[t]))
    for t in range(150):
        feed(model, t)
    restored = pickle.loads(pickle.dumps(model))
    for t in range(150, 190):
        for f in (model, restored):
            f.set_links_down(down_at(small, t))
            feed(f, t)
        np.testing.assert_array_equal(model.forecast(2), restored.forecast(2))


class Recorder(Persistence):
    """Persistence that records what it is told, in order."""

    uses_demands = True

    def __init__(self):
        self.calls = []

    def set_links_down(self, down):
        self.calls.append(("down", sorted(down)))

    def observe(self, values, dt=None, demands=None):
        super().observe(values, dt)
        self.calls.append(("observe", len(self.calls), demands is not None))

    def forecast(self, h=1):
        self.calls.append(("forecast",))
        return super().forecast(h)


def test_backtest_tells_the_link_states_after_the_step_before_and_before_forecasting(small):
    c, f = small.changes[0].step, Recorder()
    backtest(f, small.loads, [c], warmup=96, down=small.failed, demands=small.demands)
    downs = [i for i, call in enumerate(f.calls) if call[0] == "down"]
    assert len(downs) == 1 and f.calls[downs[0]][1] == list(small.changes[0].links)
    # told after observing steps 0 to c - 1, and right before forecasting step c
    assert sum(call[0] == "observe" for call in f.calls[: downs[0]]) == c
    assert f.calls[downs[0] + 1] == ("forecast",) and all(call[2] for call in f.calls if call[0] == "observe")


@pytest.mark.parametrize("name", sorted(NETWORK_FORECASTERS))
def test_network_forecasters_beat_persistence_after_a_failure(small, name):
    def run(forecaster):
        return backtest(forecaster, small.loads, [small.changes[0].step], warmup=96, tolerance=1.2,
                        down=small.failed, demands=small.demands)

    ours, persistence = run(build_forecaster(name, 48, seed=0, device="cpu", network=network_of(small))), run(
        Persistence())
    assert ours.rmse_after(0) < 0.5 * persistence.rmse_after(0)
    assert ours.rmse < 0.8 * persistence.rmse
