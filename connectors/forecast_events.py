"""Decodes the JSON events of a forecaster (one measured value of one series) and refuses anything that could poison it.

`{"id": "...", "key": "London-Paris", "ts": 1732780800.0, "value": 12.5}`: the series key (a link), the time of the
measurement and its value; `id` is optional (default `key@ts`). The value becomes the event's label `y`: the loop
forecasts it, then learns it (test, then train). Refusals are `DecodeError`s whose `kind` names the problem, as for
`connectors.json_events` (`oversized`, `invalid_json`, `wrong_type`, `missing_field`, `unknown_field`, `non_finite`),
plus `unknown_key`, a key outside the served series.

>>> decoder = ForecastEventDecoder(keys=["A-B", "B-C"])
>>> from stream_moe.events import Position, Record
>>> decoder.decode(Record(b'{"key": "A-B", "ts": 1800, "value": 12.5}', Position("in", 0)))
Event(id='A-B@1800.0', x={}, y=12.5, key='A-B', ts=1800.0)
>>> decoder.decode(Record(b'{"key": "A-C", "ts": 1800, "value": 12.5}', Position("in", 1)))
Traceback (most recent call last):
...
stream_moe.events.DecodeError: unknown series key 'A-C'
"""

from __future__ import annotations

import typing

from connectors.json_events import finite_float, parse_object
from stream_moe.events import DecodeError, Event, Record

FIELDS = {"id", "key", "ts", "value"}


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
        The series served; events of other keys are refused.
    max_bytes
        Larger messages are refused before parsing.
    """

    def __init__(self, keys: typing.Collection[str], max_bytes: int = 65536):
        self.keys = frozenset(keys)
        self.max_bytes = max_bytes

    def decode(self, record: Record) -> Event:
        data = parse_object(record.value, self.max_bytes, FIELDS)
        key = data.get("key")
        if key is None:
            raise DecodeError("a forecast event needs 'key', its series", "missing_field")
        if not isinstance(key, str):
            raise DecodeError(f"'key' must be a string, got {key!r}", "wrong_type")
        if key not in self.keys:
            raise DecodeError(f"unknown series key {key!r}", "unknown_key")
        ts, value = finite_number(data, "ts"), finite_number(data, "value")
        event_id = data.get("id", f"{key}@{ts}")
        if not isinstance(event_id, str) or not event_id:
            raise DecodeError("'id' must be a non-empty string", "wrong_type")
        return Event(id=event_id, x={}, y=value, key=key, ts=ts)
