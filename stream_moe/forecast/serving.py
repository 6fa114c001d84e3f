"""A forecaster in the event loop: events carry a series key (a link), a timestamp and a value; each event gets the
forecast of its series for its timestamp, made before its value was seen (test, then train).

The events of one timestamp form one observation of all series (a series without an event at that timestamp keeps
its previous value). A timestamp is observed when the first event of a later one arrives, so its events may span
micro-batches. The value is the event's ``y``, else its ``x["value"]``.

>>> from stream_moe.events import Event
>>> from stream_moe.forecast.baselines import Persistence
>>> p = ForecastPredictor(Persistence(), keys=["A-B", "B-C"], name="persistence")
>>> events = [Event("1", {}, 5.0, "A-B", 0.0), Event("2", {}, 7.0, "B-C", 0.0), Event("3", {}, 6.0, "A-B", 60.0)]
>>> [(q.key, q.ts, q.y_pred) for q in p.process(events)]
[('A-B', 0.0, None), ('B-C', 0.0, None), ('A-B', 60.0, 5.0)]
"""

from __future__ import annotations

import numpy as np

from stream_moe.events import Event, Prediction
from stream_moe.forecast.registry import Forecaster


class ForecastPredictor:
    """Parameters
    ----------
    model: any forecaster of `stream_moe.forecast.registry` (named `model`, as in `stream_moe.predictor.Predictor`).
    keys: the series keys, in the forecaster's order; events of other keys get no forecast and are not learned.
    name, version: the model's name and version in the predictions it emits.
    step: the regular sampling interval in the timestamps' unit; when given, the forecaster sees the time since the
        previous timestamp in steps (irregular sampling), else every timestamp is one step.
    """

    def __init__(
        self, model: Forecaster, keys: list[str], name: str, version: str = "0", step: float | None = None
    ):
        self.model = model
        self.keys = list(keys)
        self.name = name
        self.version = version
        self.step = step
        self.learned = 0
        self._index = {k: i for i, k in enumerate(self.keys)}
        self._values = np.zeros(len(self.keys))
        self._pending: dict[int, float] = {}
        self._pending_ts: float | None = None
        self._observed_ts: float | None = None
        self._next: np.ndarray | None = None

    def process(self, events: list[Event]) -> list[Prediction]:
        predictions = []
        for e in events:
            if self._pending_ts is not None and e.ts != self._pending_ts:
                self._observe()
            i = self._index.get(e.key)
            y_pred = None if i is None or self._next is None else float(self._next[i])
            predictions.append(Prediction(e.id, y_pred, {}, [], e.key, e.ts))
            value = e.y if e.y is not None else e.x.get("value")
            if i is not None and value is not None:
                self._pending[i] = float(value)
                self._pending_ts = e.ts
        return predictions

    def _observe(self) -> None:
        for i, v in self._pending.items():
            self._values[i] = v
        dt = None
        if self.step and self._observed_ts is not None:
            dt = (self._pending_ts - self._observed_ts) / self.step
        self.model.observe(self._values.copy(), dt)
        self._next = self.model.forecast(1)[0]
        self.learned += len(self._pending)
        self._observed_ts, self._pending_ts, self._pending = self._pending_ts, None, {}
