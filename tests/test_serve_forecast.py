"""`stream-moe serve` with a forecaster, without Kafka: link loads of a simulated scenario in, forecasts out; a run
stopped (mid-step) and resumed from its checkpoint forecasts exactly as one that never stopped; bad input goes to the
dead letters with its reason while forecasting goes on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from connectors.forecast_events import ForecastEventDecoder
from connectors.network.events import scenario_events
from connectors.network.scenario import load_scenario
from connectors.network.simulator import simulate
from connectors.sinks import ListSink
from connectors.source import IterableSource
from stream_moe.commands.serve import build_service, served_forecaster
from stream_moe.config import Settings
from stream_moe.events import DecodeError, Event, Position, Record
from stream_moe.forecast.backtest import backtest
from stream_moe.forecast.baselines import Persistence
from stream_moe.forecast.failure_aware import FailureAwareForecaster
from stream_moe.forecast.network import Network
from stream_moe.forecast.registry import build_forecaster
from stream_moe.forecast.serving import ForecastPredictor, KeyedForecaster
from stream_moe.loop import EventLoop
from stream_moe.shards import Shards

LINKS = 15  # Abilene


def settings(tmp_path, n: int, model: str = "cfc", window: int = 1000, **serve) -> Settings:
    return Settings(
        model={"name": model, "device": "cpu"},
        evaluation={"window": window},
        forecast={"topology": "abilene", "scenario": "abilene-drastic", "horizon": 3},
        serve={"out": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "ckpt"), "embedded_n": n, **serve},
    )


def forecasts(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]


def test_embedded_forecaster_serves_and_resumes_to_identical_forecasts(tmp_path):
    stopped = 40 * LINKS + 7  # in the middle of a step: the checkpoint holds a half-gathered timestamp
    first = build_service(settings(tmp_path / "a", stopped)).run()
    assert first.predictions == first.learned == stopped and first.dead_letters == 0
    again = build_service(settings(tmp_path / "a", 80 * LINKS)).run()
    assert again.records == 80 * LINKS - stopped
    whole = build_service(settings(tmp_path / "b", 80 * LINKS)).run()
    assert whole.records == 80 * LINKS

    resumed, reference = forecasts(tmp_path / "a"), forecasts(tmp_path / "b")
    assert resumed == reference
    assert [p["forecast"] for p in reference[:LINKS]] == [[]] * LINKS  # nothing observed before the first step
    later = reference[-1]
    assert later["key"] == "LosAngeles-Houston" and later["ts"] == 79 * 1800.0 and later["model"]["name"] == "cfc"
    assert len(later["forecast"]) == 3 and later["y_pred"] == later["forecast"][0]
    shard = build_service(settings(tmp_path / "a", 80 * LINKS)).shards.get(0)
    assert shard.predictor.learned == 79 * LINKS  # the last step waits for the next one


def test_metrics_export_the_recent_one_step_forecast_error(tmp_path):
    steps, window = 30, 100
    service = build_service(settings(tmp_path, steps * LINKS, model="persistence", window=window))
    service.run()
    loads = simulate(load_scenario("abilene-drastic"), Settings().model.seed).loads[:steps]
    errors = np.diff(loads, axis=0).ravel()[-window:]  # persistence forecasts each step's load as the one before
    exported = {m: service.metrics.registry.get_sample_value("stream_moe_forecast_error", {"measure": m})
                for m in ("mae", "rmse")}
    assert exported == pytest.approx({"mae": np.abs(errors).mean(), "rmse": np.sqrt((errors**2).mean())})
    assert exported["rmse"] > 0


BAD = {
    "invalid_json": b'{"key": "NewYork-Chicago", "ts": 1',
    "unknown_field": {"key": "NewYork-Chicago", "ts": 1.0, "value": 1.0, "x": {}},
    "missing_field": {"ts": 1.0, "value": 1.0},
    "wrong_type": {"key": "NewYork-Chicago", "ts": 1.0, "value": "12"},
    "unknown_key": {"key": "Paris-Berlin", "ts": 1.0, "value": 1.0},
    "oversized": {"key": "NewYork-Chicago", "ts": 1.0, "value": 1.0, "id": "i" * 500},
}


@pytest.mark.parametrize("kind", BAD)
def test_forecast_decoder_refuses_bad_events_with_a_reason(kind):
    raw = BAD[kind] if isinstance(BAD[kind], bytes) else json.dumps(BAD[kind]).encode()
    with pytest.raises(DecodeError) as err:
        ForecastEventDecoder(["NewYork-Chicago"], max_bytes=256).decode(Record(raw, Position("in", 0)))
    assert err.value.kind == kind and str(err.value)


def test_bad_events_go_to_dead_letters_and_forecasting_goes_on(tmp_path):
    good = [json.dumps(e).encode() for e in scenario_events(simulate(load_scenario("abilene-drastic")))[: 20 * LINKS]]
    bad = [v if isinstance(v, bytes) else json.dumps(v).encode() for v in BAD.values()]
    raw = good[: 10 * LINKS] + bad + good[10 * LINKS :]
    source = IterableSource("in", (Record(r, Position("in", i)) for i, r in enumerate(raw)))
    served = served_forecaster(settings(tmp_path, 1, model="persistence", max_message_bytes=256))
    dead = ListSink()
    stats = EventLoop(source, served.decoder, Shards(served.make_predictor), dead_letters=[dead]).run()
    letters = dead.items
    assert (stats.predictions, stats.dead_letters) == (20 * LINKS, len(BAD))
    assert [d.kind for d in letters] == list(BAD)
    assert [d.position.offset for d in letters] == list(range(10 * LINKS, 10 * LINKS + len(BAD)))


def test_environment_chooses_and_configures_the_forecaster(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAM_MOE_MODEL__NAME", "seasonal")
    monkeypatch.setenv("STREAM_MOE_FORECAST__TOPOLOGY", "abilene")
    monkeypatch.setenv("STREAM_MOE_FORECAST__SEASON", "2")
    monkeypatch.setenv("STREAM_MOE_FORECAST__HORIZON", "2")
    predictor = served_forecaster(Settings()).make_predictor()
    assert predictor.name == "seasonal" and predictor.model.keys[0] == "NewYork-Chicago"
    assert predictor.model.forecaster.season == 2 and predictor.model.horizon == 2


def test_late_values_are_dropped_without_a_forecast():
    predictor = ForecastPredictor(KeyedForecaster(Persistence(), ["A", "B"]), "persistence")
    stream = [
        ("A", 0, 1.0), ("B", 0, 2.0), ("A", 60, 3.0), ("B", 0, 9.0), ("B", 30, 9.0), ("B", 60, 4.0), ("A", 120, 0.0)
    ]
    answers = predictor.process([Event(str(i), {}, v, k, float(t)) for i, (k, t, v) in enumerate(stream)])
    assert [p.y_pred for p in answers] == [None, None, 1.0, None, None, 2.0, 3.0]
    assert predictor.model.late_ == 2 and predictor.learned == 4


BAD_LINK_EVENTS = {
    "unknown_event": {"event": "link_flap", "key": "NewYork-Chicago", "ts": 1.0},
    "unknown_key": {"event": "link_down", "key": "NewYork>Chicago", "ts": 1.0},  # a pair, not a link
    "unknown_field": {"event": "link_down", "key": "NewYork-Chicago", "ts": 1.0, "value": 0.0},
    "missing_field": {"event": "link_up", "key": "NewYork-Chicago"},
    "wrong_type": {"event": "link_up", "key": "NewYork-Chicago", "ts": 1.0, "id": 7},
}


@pytest.mark.parametrize("kind", BAD_LINK_EVENTS)
def test_forecast_decoder_refuses_bad_link_events_with_a_reason(kind):
    decoder = ForecastEventDecoder(["NewYork-Chicago"], demand_keys=["NewYork>Chicago"])
    with pytest.raises(DecodeError) as err:
        decoder.decode(Record(json.dumps(BAD_LINK_EVENTS[kind]).encode(), Position("in", 0)))
    assert err.value.kind == kind and str(err.value)


def test_forecast_decoder_reads_link_events_and_demands():
    decoder = ForecastEventDecoder(["NewYork-Chicago"], demand_keys=["NewYork>Chicago"])
    decode = lambda event: decoder.decode(Record(json.dumps(event).encode(), Position("in", 0)))  # noqa: E731
    up = decode({"event": "link_up", "key": "NewYork-Chicago", "ts": 60})
    demand = decode({"key": "NewYork>Chicago", "ts": 60, "value": 2.5})
    assert (up.id, up.x, up.y) == ("NewYork-Chicago@60.0/link_up", {"event": "link_up"}, 1.0)
    assert (demand.key, demand.y) == ("NewYork>Chicago", 2.5)


SMALL = """topology: abilene
steps: 60
step_minutes: 30
failures:
  - {impact: 1, at: 40}
"""


def network_settings(tmp_path, model: str) -> Settings:
    (tmp_path / "small.yaml").write_text(SMALL)
    return Settings(
        model={"name": model, "device": "cpu"},
        forecast={"topology": "abilene", "scenario": str(tmp_path / "small.yaml"), "horizon": 1},
        serve={"out": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "ckpt")},
    )


@pytest.mark.parametrize("model", ["cfc-failure-aware", "od-cfc"])
def test_served_network_forecaster_reads_link_events_and_forecasts_as_its_backtest(tmp_path, model):
    settings = network_settings(tmp_path, model)
    stats = build_service(settings).run()
    sim = simulate(load_scenario(tmp_path / "small.yaml"), settings.model.seed)
    pairs = 132 if model == "od-cfc" else 0
    assert stats.records == 60 * (LINKS + pairs) + 1 and stats.dead_letters == 0
    served = forecasts(tmp_path)
    link_event = next(p for p in served if p["id"].endswith("/link_down"))
    failed = sim.changes[0].links[0]
    assert link_event["key"] == sim.link_names[failed] and link_event["forecast"] == [0.0]  # answered re-routed
    network = Network(sim.topology, routing=sim.scenario.routing)
    reference = backtest(build_forecaster(model, 48, seed=settings.model.seed, device="cpu", network=network),
                         sim.loads, [], warmup=0, down=sim.failed, demands=sim.demands)
    names = {name: i for i, name in enumerate(sim.link_names)}
    loads = [p for p in served if p["key"] in names and "/" not in p["id"] and p["forecast"]]
    assert len(loads) == 59 * LINKS
    got = np.array([p["y_pred"] for p in loads]).reshape(59, LINKS)
    np.testing.assert_allclose(got, reference.predictions[1:], rtol=1e-12)
    assert (got[39:, failed] == 0).all() and (got[:39, failed] > 0).all()  # row k: step k + 1


def test_a_link_event_changes_the_served_forecast_at_once():
    sim = simulate(load_scenario("abilene-drastic"), seed=0)
    keys = sim.link_names
    forecaster = FailureAwareForecaster(Network(sim.topology), season=48, device="cpu")
    predictor = ForecastPredictor(KeyedForecaster(forecaster, keys), "cfc-failure-aware")
    events = [Event(f"{t}/{k}", {}, sim.loads[t, i], k, 1800.0 * t) for t in range(30) for i, k in enumerate(keys)]
    predictor.process(events)
    failed = sim.changes[0].links[0]
    before = predictor.model.forecast_for(keys[failed], 1800.0 * 30)
    answer = predictor.process([Event("down", {"event": "link_down"}, 0.0, keys[failed], 1800.0 * 30)])[0]
    assert before[0] > 1 and answer.forecast == [0.0] and predictor.model.down_ == {failed}
    assert predictor.learned == 29 * LINKS + 1  # the event is applied at once; the last step waits for the next
    again = predictor.process([Event("up", {"event": "link_up"}, 1.0, keys[failed], 1800.0 * 30)])[0]
    assert again.forecast[0] > 1 and predictor.model.down_ == frozenset()
