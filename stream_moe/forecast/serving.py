"""A forecaster in the event loop: events carry a series key (a link), a timestamp and a value; each event gets the
forecast of its series for its timestamp, made before its value was seen (test, then train).

The events of one timestamp form one observation of all series (a series without an event at that timestamp keeps
its previous value). A timestamp is observed when the first event of a later one arrives, so its events may span
micro-batches. A value of a timestamp older than the one being gathered arrives too late to be part of it: it is
dropped (counted in `late_`) and its event gets no forecast. The value is the event's ``y``, else its ``x["value"]``.
Everything learned, including the timestamp still being gathered, is in the predictor's `model` (a
`KeyedForecaster`), which is what a checkpoint keeps.

A link event (`link_down`, `link_up`; `connectors.forecast_events`) takes effect when it arrives: a forecaster that
knows the network re-routes at once, and the event is answered with its link's forecast for the next timestamp under
the new state. It should come before the values of its timestamp, as a routing protocol announces a failure before
the next measurement. Values of OD pairs (`demand_keys`) are gathered with the loads and observed with them, for a
forecaster that `uses_demands`; they get no forecast.

>>> from stream_moe.events import Event
>>> from stream_moe.forecast.baselines import Persistence
>>> p = ForecastPredictor(KeyedForecaster(Persistence(), keys=["A-B", "B-C"], horizon=2), name="persistence")
>>> events = [Event("1", {}, 5.0, "A-B", 0.0), Event("2", {}, 7.0, "B-C", 0.0), Event("3", {}, 6.0, "A-B", 60.0)]
>>> [(q.key, q.ts, q.y_pred, q.forecast) for q in p.process(events)]
[('A-B', 0.0, None, []), ('B-C', 0.0, None, []), ('A-B', 60.0, 5.0, [5.0, 5.0])]
"""

from __future__ import annotations

import collections
import math

import numpy as np

from connectors.forecast_events import LINK_EVENTS
from stream_moe.events import Event, Prediction
from stream_moe.forecast.network import Network
from stream_moe.forecast.registry import NETWORK_FORECASTERS, Forecaster, build_forecaster, knows_network
from stream_moe.predictor import Begun


class KeyedForecaster:
    """A forecaster fed value by value: each value has its series key and timestamp.

    Parameters
    ----------
    forecaster: any forecaster of `stream_moe.forecast.registry`.
    keys: the link series keys, in the forecaster's order; values of other keys are ignored.
    step: the regular sampling interval in the timestamps' unit; when given, the forecaster sees the time since the
        previous timestamp in steps (irregular sampling), else every timestamp is one step.
    horizon: steps forecast from each timestamp on (the timestamp's own value first).
    demand_keys: the OD pair series keys, in the forecaster's order, when it `uses_demands`.
    """

    def __init__(self, forecaster: Forecaster, keys: list[str], step: float | None = None, horizon: int = 1,
                 demand_keys: list[str] | None = None):
        self.forecaster = forecaster
        self.keys = list(keys)
        self.step = step
        self.horizon = horizon
        self.demand_keys = list(demand_keys or [])
        self.index_ = {k: i for i, k in enumerate([*self.keys, *self.demand_keys])}
        self.values_ = np.zeros(len(self.index_))
        self.gathering_: dict[int, float] = {}
        self.gathering_ts_: float | None = None
        self.observed_ts_: float | None = None
        self.next_: np.ndarray | None = None  # horizon x links, from the last timestamp observed
        self.observed_ = 0  # values observed by the forecaster
        self.late_ = 0  # values dropped for arriving after their timestamp was observed
        self.down_: frozenset[int] = frozenset()  # links down (indices of `keys`)
        self.link_events_ = 0

    def forecast_for(self, key: str, ts: float) -> list[float] | None:
        """The forecasts for `key` at `ts` and the `horizon - 1` steps after it, from the timestamps before `ts` (None
        before the first, for an unknown key or an OD pair, or for a timestamp too late to be learned)."""
        self._advance(ts)
        i = self.index_.get(key)
        if i is None or i >= len(self.keys) or self.next_ is None or self._late(ts):
            return None
        return self.next_[:, i].tolist()

    def learn(self, key: str, ts: float, value: float) -> None:
        """Gather a value; the values of an earlier timestamp, now complete, go to the forecaster."""
        self._advance(ts)
        if self._late(ts):
            self.late_ += 1
        elif key in self.index_:
            self.gathering_[self.index_[key]] = float(value)
            self.gathering_ts_ = ts

    def link_event(self, key: str, ts: float, up: bool) -> list[float] | None:
        """A link goes down (or comes back) now; the link's forecasts for the next timestamp on, under the new state
        (None for an unknown link, or before the first timestamp)."""
        self._advance(ts)
        i = self.index_.get(key)
        if i is None or i >= len(self.keys):
            return None
        self.link_events_ += 1
        down = self.down_ - {i} if up else self.down_ | {i}
        if down != self.down_:
            self.down_ = down
            if knows_network(self.forecaster):
                self.forecaster.set_links_down(down)
                if self.next_ is not None:
                    self.next_ = self.forecaster.forecast(self.horizon)
        return None if self.next_ is None else self.next_[:, i].tolist()

    def _advance(self, ts: float) -> None:
        """A later timestamp completes the one being gathered: observe it."""
        if self.gathering_ts_ is not None and ts > self.gathering_ts_:
            self._observe()

    def _late(self, ts: float) -> bool:
        return (self.observed_ts_ is not None and ts <= self.observed_ts_) or (
            self.gathering_ts_ is not None and ts < self.gathering_ts_
        )

    def _observe(self) -> None:
        for i, v in self.gathering_.items():
            self.values_[i] = v
        dt = None
        if self.step and self.observed_ts_ is not None:
            dt = (self.gathering_ts_ - self.observed_ts_) / self.step
        links = len(self.keys)
        if self.demand_keys:
            self.forecaster.observe(self.values_[:links].copy(), dt, demands=self.values_[links:].copy())
        else:
            self.forecaster.observe(self.values_.copy(), dt)
        self.next_ = self.forecaster.forecast(self.horizon)
        self.observed_ += len(self.gathering_)
        self.observed_ts_, self.gathering_ts_, self.gathering_ = self.gathering_ts_, None, {}


class ForecastPredictor:
    """The event loop's predictor for a `KeyedForecaster`: `process(events)` answers every event with its series'
    forecast, then learns its value (a link event: applies it, then answers with its link's new forecast). `learned`
    counts the values the forecaster has observed and the link events applied; `errors` keeps the one-step errors
    (value minus its forecast) of the last `window` values that had a forecast, for `rolling_error`."""

    def __init__(self, model: KeyedForecaster, name: str, version: str = "0", window: int = 1000):
        self.model = model
        self.name = name
        self.version = version
        self.learned = 0
        self.errors: collections.deque[float] = collections.deque(maxlen=window)

    def begin(self, events: list[Event]) -> Begun:
        """The loop's first half of a batch (`stream_moe.predictor`): a forecaster has no rows to route."""
        return Begun(events, [])

    def end(self, begun: Begun, logits: list) -> list[Prediction]:
        return self.process(begun.events)

    def begin(self, events: list[Event]) -> Begun:
        """The first half of `process` for the loop (`stream_moe.predictor`): a forecaster has no rows to route."""
        return Begun(events, [])

    def end(self, begun: Begun, logits: list) -> list[Prediction]:
        """The second half: the whole of `process`."""
        return self.process(begun.events)

    def process(self, events: list[Event]) -> list[Prediction]:
        predictions, learned = [], self.model.observed_ + self.model.link_events_
        for e in events:
            event = (e.x or {}).get("event")
            if event in LINK_EVENTS:
                forecast = self.model.link_event(e.key, e.ts, up=LINK_EVENTS[event]) or []
                predictions.append(Prediction(e.id, forecast[0] if forecast else None, {}, [], e.key, e.ts, forecast))
                continue
            forecast = self.model.forecast_for(e.key, e.ts) or []
            predictions.append(Prediction(e.id, forecast[0] if forecast else None, {}, [], e.key, e.ts, forecast))
            value = e.y if e.y is not None else (e.x or {}).get("value")
            if value is not None:
                self.model.learn(e.key, e.ts, value)
                if forecast:
                    self.errors.append(float(value) - forecast[0])
        self.learned += self.model.observed_ + self.model.link_events_ - learned
        return predictions


def rolling_error(predictors: list[ForecastPredictor]) -> dict[str, float] | None:
    """Mean absolute and root mean squared one-step error over the predictors' recent errors (None before any).

    >>> from stream_moe.forecast.baselines import Persistence
    >>> p = ForecastPredictor(KeyedForecaster(Persistence(), ["A"]), "persistence")
    >>> _ = p.process([Event(str(t), {}, v, "A", float(t)) for t, v in enumerate([1.0, 3.0, 5.0, 8.0])])
    >>> rolling_error([p])  # persistence is 2, 2 and 3 short
    {'mae': 2.3333333333333335, 'rmse': 2.3804761428476167}
    """
    errors = [e for p in predictors for e in p.errors]
    if not errors:
        return None
    return {"mae": sum(map(abs, errors)) / len(errors), "rmse": math.sqrt(sum(e * e for e in errors) / len(errors))}


def served_demand_keys(name: str, forecast) -> list[str]:
    """The OD pair keys a served forecaster takes (`forecast`: the `ForecastSettings`): `forecast.pairs`, or every
    ordered pair of the topology's nodes, for a forecaster that uses demands; none for the others."""
    if not getattr(NETWORK_FORECASTERS.get(name), "uses_demands", False):
        return []
    return forecast.pairs or Network(forecast.topology).pair_names


def served_keyed_forecaster(model, forecast, keys: list[str], demand_keys: list[str]) -> KeyedForecaster:
    """The forecaster of the `model` settings over the served keys; a network forecaster gets the topology, the
    routing and the pairs of the `forecast` settings."""
    network = None
    if model.name in NETWORK_FORECASTERS:
        network = Network(forecast.topology, keys, demand_keys or None, forecast.routing)
    forecaster = build_forecaster(model.name, forecast.season, seed=model.seed, device=model.device, network=network,
                                  **model.params)
    return KeyedForecaster(forecaster, keys, forecast.step_s, forecast.horizon, demand_keys)
