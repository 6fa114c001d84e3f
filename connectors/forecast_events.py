"""Decodes the JSON events of a forecaster (one measured value of one series, or a link going down or up) and
refuses anything that could poison it.

- A value: `{"id": "...", "key": "London-Paris", "ts": 1732780800.0, "value": 12.5}`: the series key (a link, or an
  OD pair ``origin>destination`` when the forecaster takes demands), the time of the measurement and its value; `id`
  is optional (default `key@ts`). The value becomes the event's label `y`: the loop forecasts it, then learns it
  (test, then train).
- A link event: `{"event": "link_down", "key": "London-Paris", "ts": 1732780800.0}` (or `"link_up"`), from the same
  topic as the values or another one of the same partitioning: the link's state from `ts` on. It becomes an event
  with `x = {"event": "link_down"}` and the link's new state as its label (0.0 down, 1.0 up); `id` defaults to
  `key@ts/event`.

Refusals are `DecodeError`s whose `kind` names the problem, as for `connectors.json_events` (`oversized`,
`invalid_json`, `wrong_type`, `missing_field`, `unknown_field`, `non_finite`), plus `unknown_key`, a key outside the
served series (or, for a link event, outside the links), and `unknown_event`, an `event` other than the two above.

>>> decoder = ForecastEventDecoder(keys=["A-B", "B-C"])
>>> from stream_moe.events import Position, Record
>>> decoder.decode(Record(b'{"key": "A-B", "ts": 1800, "value": 12.5}', Position("in", 0)))
Event(id='A-B@1800.0', x={}, y=12.5, key='A-B', ts=1800.0)
>>> decoder.decode(Record(b'{"event": "link_down", "key": "B-C", "ts": 1800}', Position("in", 1)))
Event(id='B-C@1800.0/link_down', x={'event': 'link_down'}, y=0.0, key='B-C', ts=1800.0)
>>> decoder.decode(Record(b'{"key": "A-C", "ts": 1800, "value": 12.5}', Position("in", 2)))
Traceback (most recent call last):
...
stream_moe.events.DecodeError: unknown series key 'A-C'
"""

from __future__ import annotations

import typing

from connectors.json_events import finite_float, parse_object
from stream_moe.events import DecodeError, Event, Record

FIELDS = {"id", "key", "ts", "value", "event"}
LINK_EVENTS = {"link_down": False, "link_up": True}  # the event's name: whether the link is up after it


def finite_number(data: dict, name: str) -> float:
    """`data[name]` as a float: present, a number (not a boolean) and finite."""
    value = data.get(name)
    if value is None:
        raise DecodeError(f"a forecast event needs {name!r}", "missing_field")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeError(f"{name!r} must be a number, got {value!r}", "wrong_type")
    if (number := finite_float(value)) is None:
        raise DecodeError(f"{name!r} is not a finite number: {value!r}", "non_finite")
    return number


class ForecastEventDecoder:
    """Validates and decodes forecast events.

    Parameters
    ----------
    keys
        The link series served; values of other keys are refused, and so are link events of other keys.
    max_bytes
        Larger messages are refused before parsing.
    demand_keys
        The OD pair series (``origin>destination``) whose values are accepted too, for a forecaster of demands.
    """

    def __init__(self, keys: typing.Collection[str], max_bytes: int = 65536, demand_keys: typing.Collection[str] = ()):
        self.keys = frozenset(keys)
        self.max_bytes = max_bytes
        self.demand_keys = frozenset(demand_keys)

    def decode(self, record: Record) -> Event:
        data = parse_object(record.value, self.max_bytes, FIELDS)
        key = data.get("key")
        if key is None:
            raise DecodeError("a forecast event needs 'key', its series", "missing_field")
        if not isinstance(key, str):
            raise DecodeError(f"'key' must be a string, got {key!r}", "wrong_type")
        if "event" in data:
            return self._link_event(data, key)
        if key not in self.keys and key not in self.demand_keys:
            raise DecodeError(f"unknown series key {key!r}", "unknown_key")
        ts, value = finite_number(data, "ts"), finite_number(data, "value")
        return Event(id=self._id(data, f"{key}@{ts}"), x={}, y=value, key=key, ts=ts)

    def _link_event(self, data: dict, key: str) -> Event:
        name = data["event"]
        if not isinstance(name, str) or name not in LINK_EVENTS:
            raise DecodeError(f"'event' must be one of {', '.join(LINK_EVENTS)}, got {name!r}", "unknown_event")
        if key not in self.keys:
            raise DecodeError(f"{name} of {key!r}, which is not a served link", "unknown_key")
        if "value" in data:
            raise DecodeError(f"a {name} event carries no 'value'", "unknown_field")
        ts = finite_number(data, "ts")
        return Event(id=self._id(data, f"{key}@{ts}/{name}"), x={"event": name}, y=float(LINK_EVENTS[name]), key=key,
                     ts=ts)

    @staticmethod
    def _id(data: dict, default: str) -> str:
        event_id = data.get("id", default)
        if not isinstance(event_id, str) or not event_id:
            raise DecodeError("'id' must be a non-empty string", "wrong_type")
        return event_id
