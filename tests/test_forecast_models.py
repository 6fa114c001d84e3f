"""Forecasters: they learn, carry their state, treat the links of a batch alike, survive a checkpoint, and serve
events; the command runs end to end."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from stream_moe.cli import main
from stream_moe.events import Event
from stream_moe.forecast.baselines import Persistence
from stream_moe.forecast.cells import CELLS, CfCCell, LiquidCell
from stream_moe.forecast.cfc_window import CfCWindow
from stream_moe.forecast.liquid import LiquidForecaster
from stream_moe.forecast.registry import FORECASTERS, NETWORK_FORECASTERS, build_forecaster
from stream_moe.forecast.serving import ForecastPredictor, KeyedForecaster

SEASON = 24


def sinusoids(steps: int, links: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    phase = rng.uniform(0, 2 * np.pi, links)
    return 10 + 3 * np.sin(2 * np.pi * t / SEASON + phase) + 0.05 * rng.standard_normal((steps, links))


def one_step_rmse(forecaster, loads: np.ndarray, skip: int) -> float:
    errors = []
    for t in range(len(loads) - 1):
        forecaster.observe(loads[t])
        if t >= skip:
            errors.append(forecaster.forecast(1)[0] - loads[t + 1])
    return float(np.sqrt(np.mean(np.square(errors))))


@pytest.mark.parametrize("name", ["cfc", "ltc", "mlp-retrained", "seasonal", "snarimax"])
def test_learns_a_sinusoid_better_than_persistence(name):
    loads = sinusoids(300)
    params = {"retrain_every": 48, "window": 200} if name == "mlp-retrained" else {}
    model = build_forecaster(name, SEASON, seed=0, device="cpu", **params)
    assert one_step_rmse(model, loads, 220) < 0.5 * one_step_rmse(Persistence(), loads, 220)


@pytest.mark.parametrize("cell", list(CELLS))
def test_state_carried_step_by_step_equals_the_whole_sequence(cell):
    torch.manual_seed(0)
    model = CELLS[cell](2, 8)
    x, spans = torch.randn(4, 6, 2), torch.rand(4, 6) + 0.5
    h = torch.zeros(4, 8)
    for t in range(6):
        h = model(x[:, t], h, spans[:, t : t + 1])
    torch.testing.assert_close(model.run(x, torch.zeros(4, 8), spans)[:, -1], h)


@pytest.mark.parametrize("irregular", [False, True])
def test_cfc_window_has_the_states_and_gradients_of_autograd_through_its_steps(irregular):
    torch.manual_seed(1)
    cell = CfCCell(2, 8).double()
    x, h = torch.randn(5, 7, 2, dtype=torch.double), torch.randn(5, 8, dtype=torch.double)
    spans = torch.rand(5, 7, dtype=torch.double) + 0.5 if irregular else None
    weights = torch.randn(5, 7, 8, dtype=torch.double)
    results = []
    for run in (CfCCell.run, LiquidCell.run):  # the hand-written backward pass, and autograd's
        states = run(cell, x, h, spans)
        results.append((states, *torch.autograd.grad((states * weights).sum(), list(cell.parameters()))))
    for ours, autograds in zip(*results):
        torch.testing.assert_close(ours, autograds, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("irregular", [False, True])
def test_cfc_fit_window_sets_the_gradients_autograd_gives(irregular):
    torch.manual_seed(3)
    cell, head = CfCCell(2, 8).double(), torch.nn.Linear(8, 1).double()
    x, h = torch.randn(5, 7, 2, dtype=torch.double), torch.randn(5, 8, dtype=torch.double)
    spans = torch.rand(5, 7, dtype=torch.double) + 0.5 if irregular else None
    target = torch.randn(5, 7, dtype=torch.double)
    grads = []
    for fit in (CfCCell.fit_window, LiquidCell.fit_window):  # by hand, and by autograd
        fit(cell, x, h, spans, head, target)
        grads.append([p.grad.clone() for p in (*cell.parameters(), *head.parameters())])
    for ours, autograds in zip(*grads):
        torch.testing.assert_close(ours, autograds, rtol=1e-10, atol=1e-12)


def test_cfc_window_gradients_pass_gradcheck():
    torch.manual_seed(2)
    cell = CfCCell(2, 4).double()
    linear = cell.backbone[0]
    x = torch.randn(6, 3, 2, dtype=torch.double, requires_grad=True)  # steps first
    h = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    spans = torch.rand(6, 3, 1, dtype=torch.double) + 0.5
    window = lambda x, h, *weights: CfCWindow.apply(x, h, spans, *weights)  # noqa: E731
    assert torch.autograd.gradcheck(window, (x, h, linear.weight, linear.bias, cell.heads.weight, cell.heads.bias))


@pytest.mark.parametrize("inputs", [{}, {"lags": 3, "seasons": 2, "spread": 1}])
def test_forecaster_state_equals_running_its_inputs_at_once(inputs):
    f = LiquidForecaster(window=0, season=SEASON, device="cpu", **inputs)
    inputs = []
    for v in sinusoids(60):
        f.observe(v)
        v = np.stack(f.values_)
        inputs.append(f._inputs(v, f._changes(v), 1)[:, 0])
    states = f.cell_.run(f._tensor(np.stack(inputs, axis=1)), torch.zeros(3, f.hidden))
    torch.testing.assert_close(states[:, -1], f.states_[-1])


@pytest.mark.parametrize("cell", list(CELLS))
def test_batched_and_per_link_forecasts_agree(cell):
    loads = sinusoids(80, links=4)
    batched = LiquidForecaster(cell, window=0, season=SEASON, device="cpu")
    singles = [LiquidForecaster(cell, window=0, season=SEASON, device="cpu") for _ in range(4)]
    for v in loads:
        batched.observe(v)
        for i, s in enumerate(singles):
            s.observe(v[i : i + 1])
    expected = np.concatenate([s.forecast(3) for s in singles], axis=1)
    np.testing.assert_allclose(batched.forecast(3), expected, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in FORECASTERS if n not in NETWORK_FORECASTERS])
def test_checkpoint_round_trip_gives_identical_forecasts(name):
    loads = sinusoids(80)
    params = {"retrain_every": 30, "window": 60} if name == "mlp-retrained" else {}
    model = build_forecaster(name, SEASON, seed=0, device="cpu", **params)
    for v in loads[:50]:
        model.observe(v)
    restored = pickle.loads(pickle.dumps(model))
    for v in loads[50:]:
        model.observe(v)
        restored.observe(v)
        np.testing.assert_array_equal(model.forecast(2), restored.forecast(2))


def test_predictor_serves_forecasts_per_key_across_batches_and_checkpoints():
    loads, keys = sinusoids(50, links=2), ["A-B", "B-C"]
    predictor = ForecastPredictor(KeyedForecaster(LiquidForecaster(season=SEASON, device="cpu"), keys), "cfc")
    reference = LiquidForecaster(season=SEASON, device="cpu")
    events = [
        Event(f"{t}-{k}", {"value": loads[t, i]}, None, k, 60.0 * t) for t in range(50) for i, k in enumerate(keys)
    ]
    predictions = predictor.process(events[:31])  # ends in the middle of a timestamp
    restored = ForecastPredictor(pickle.loads(pickle.dumps(predictor.model)), "cfc")  # a checkpoint of the model
    predictions += predictor.process(events[31:])
    assert [p.y_pred for p in restored.process(events[31:])] == [p.y_pred for p in predictions[31:]]
    assert len(predictions) == len(events) and predictions[0].y_pred is None
    for t in range(49):
        reference.observe(loads[t])
        expected = reference.forecast(1)[0]
        got = [p.y_pred for p in predictions[2 * (t + 1) : 2 * (t + 2)]]
        np.testing.assert_allclose(got, expected)
    assert predictor.learned == 98  # the last timestamp waits for the next one


def test_forecast_command_prints_the_report_and_writes_results(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["forecast", "--scenario", "abilene-drastic", "--model", "cfc", "--steps", "700", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "RMSE" in printed and "change at step 672" in printed
    summary = json.loads((out / "forecast.json").read_text())
    assert summary["links"] == 15 and summary["changes"][0]["step"] == 672
    assert (out / "forecast.png").stat().st_size > 0


def test_forecast_command_reads_real_loads_from_csv(tmp_path, capsys):
    loads = sinusoids(200, links=2)
    loads[150:, 0] = 0.0  # a failure at step 150
    rows = [f"{60 * t},{a},{b}" for t, (a, b) in enumerate(loads)]
    (tmp_path / "loads.csv").write_text("time,A-B,B-C\n" + "\n".join(rows) + "\n")
    args = ["forecast", "--csv", str(tmp_path / "loads.csv"), "--season", "24", "--failure", "150",
            "--model", "seasonal", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert "change at step 150 (A-B, B-C most affected)" in capsys.readouterr().out


@pytest.mark.parametrize("cell", list(CELLS))
def test_time_spans_of_irregular_sampling_reach_the_cell(cell):
    regular, irregular = (LiquidForecaster(cell, season=SEASON, device="cpu") for _ in range(2))
    for v in sinusoids(40):
        regular.observe(v)
        irregular.observe(v, dt=3.0)
    assert not np.allclose(regular.forecast(1), irregular.forecast(1))


def test_lagged_and_seasonal_inputs_are_the_changes_they_name():
    f = LiquidForecaster(season=4, lags=2, seasons=2, spread=1, device="cpu")
    v = np.arange(12.0)[:, None] ** 2  # changes 1, 3, 5, ...: change i is 2 i + 1
    d = np.diff(v, axis=0)
    inputs = f._inputs(v, d, 1)[0, 0]
    i = len(d) - 1  # the latest change; the next is i + 1, one season before it i + 1 - 4
    ratio = lambda back: v[i + 1, 0] / v[back, 0]  # noqa: E731
    seasonal = [d[b, 0] * min(ratio(b), f.clip) for b in (i + 1 - 4 - 1, i + 1 - 4, i + 1 - 4 + 1,
                                                          i + 1 - 8 - 1, i + 1 - 8, i + 1 - 8 + 1)]
    np.testing.assert_allclose(inputs, [d[i, 0], d[i - 1, 0], *seasonal])


def test_rewriting_history_with_the_identity_keeps_the_forecasts():
    f = LiquidForecaster(season=SEASON, device="cpu", lags=4, window=0)  # fixed weights: the states are run again alike
    for v in sinusoids(60):
        f.observe(v)
    before = f.forecast(3)
    f.rewrite_history(lambda values: values)
    np.testing.assert_allclose(f.forecast(3), before, rtol=1e-5)


@pytest.mark.parametrize("name", ["cfc", "ltc", "mlp-retrained", "snarimax"])
def test_forecasts_never_go_below_zero_on_a_dead_link(name):
    loads = sinusoids(200)
    loads[120:, 0] = 0.0  # the link dies: a learner that forecast its fall keeps forecasting it
    params = {"retrain_every": 48, "window": 100} if name == "mlp-retrained" else {}
    model = build_forecaster(name, SEASON, seed=0, device="cpu", **params)
    lowest = np.inf
    for v in loads:
        model.observe(v)
        lowest = min(lowest, model.forecast(4).min())
    assert lowest >= 0.0


@pytest.mark.parametrize("retrain_every", [12, SEASON])
def test_mlp_retrained_trains_once_the_window_holds_a_season(retrain_every):
    model = build_forecaster("mlp-retrained", SEASON, seed=0, device="cpu", retrain_every=retrain_every, window=100)
    loads = sinusoids(80)
    trained_at = None
    for t, v in enumerate(loads):
        model.observe(v)  # a season longer than retrain_every crashed here
        if trained_at is None and not np.array_equal(model.forecast(1)[0], v):
            trained_at = t
    assert trained_at == SEASON  # the first step with a season and a next value to learn from: no untrained forecasts


def test_mlp_retrained_step_counts_scale_with_the_season():
    model = build_forecaster("mlp-retrained", 96, seed=0, device="cpu")
    model.observe(np.ones(2))
    assert (model.retrain_every_, model.history_.maxlen) == (192, 1344)


def test_snarimax_guard_bounds_a_burst_and_brings_the_model_back():
    loads = sinusoids(700, links=2)
    loads[300:320, 0] *= 1000  # a burst (or a jump across a gap in the timestamps)
    errors = {}
    for guard in (1.0, float("inf")):
        model = build_forecaster("snarimax", SEASON, device="cpu", guard=guard)
        e = []
        for t in range(len(loads) - 1):
            model.observe(loads[t])
            e.append(np.abs(model.forecast(1)[0] - loads[t + 1]))
        errors[guard] = np.array(e)[:, 0]
        resets = model.resets_
    guarded, unguarded = errors[1.0], errors[float("inf")]
    assert resets.tolist() == [0, 0]  # an infinite guard never resets
    assert guarded.max() < 2 * loads[:, 0].max() < unguarded.max() / 10  # the band holds every forecast
    assert guarded[500:].mean() < 0.7 * unguarded[500:].mean()  # the reset model comes back sooner
