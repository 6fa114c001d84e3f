"""Decodes JSON events of the wire format in DESIGN.md and refuses anything that could poison a model.

`{"id": "...", "key": "...", "ts": 1732780800.0, "x": {"f1": 0.3, "f2": "red"}, "y": "UP"}`: `y` is optional, and a
label-only event `{"id": "...", "y": ...}` labels an earlier one. Each refusal is a `DecodeError` whose `kind` names
the problem (`oversized`, `invalid_json`, `wrong_type`, `missing_field`, `unknown_field`, `missing_feature`,
`extra_feature`, `non_finite`, `unknown_class`), so dead letters can be counted by kind.

>>> decoder = JsonEventDecoder(features=["f1", "f2"], classes=["UP", "DOWN"])
>>> from stream_moe.events import Position, Record
>>> decoder.decode(Record(b'{"id": "7", "x": {"f1": 0.5, "f2": "red"}, "y": "UP"}', Position("in", 0)))
Event(id='7', x={'f1': 0.5, 'f2': 'red'}, y='UP', key=None, ts=None)
>>> decoder.decode(Record(b'{"id": "7", "x": {"f1": NaN, "f2": "red"}}', Position("in", 1)))
Traceback (most recent call last):
...
stream_moe.events.DecodeError: feature 'f1' is not a finite number: nan
"""

from __future__ import annotations

import json
import math
import typing

from stream_moe.events import DecodeError, Event, Record

FIELDS = {"id", "key", "ts", "x", "y"}


def parse_object(raw: bytes | str, max_bytes: int, fields: typing.Collection[str]) -> dict:
    """The JSON object of a message no larger than `max_bytes`, with no fields but `fields`; else a `DecodeError`."""
    if len(raw) > max_bytes:
        raise DecodeError(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}", "oversized")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodeError(f"invalid JSON: {err}", "invalid_json") from None
    if not isinstance(data, dict):
        raise DecodeError(f"expected a JSON object, got {type(data).__name__}", "wrong_type")
    if unknown := set(data) - set(fields):
        raise DecodeError(f"unknown fields: {sorted(unknown)}", "unknown_field")
    return data


class JsonEventDecoder:
    """Validates and decodes JSON events.

    Parameters
    ----------
    features
        The feature names every event must have, exactly; None accepts any names.
    classes
        The known class labels; None accepts any label.
    max_bytes
        Larger messages are refused before parsing.
    """

    def __init__(
        self,
        features: typing.Sequence[str] | None = None,
        classes: typing.Sequence | None = None,
        max_bytes: int = 65536,
    ):
        self.features = None if features is None else frozenset(features)
        self.classes = None if classes is None else frozenset(classes)
        self.max_bytes = max_bytes

    def decode(self, record: Record) -> Event:
        data = parse_object(record.value, self.max_bytes, FIELDS)
        event_id = data.get("id")
        if isinstance(event_id, int) and not isinstance(event_id, bool):
            event_id = str(event_id)
        if not isinstance(event_id, str) or not event_id:
            raise DecodeError("'id' must be a non-empty string", "missing_field" if event_id is None else "wrong_type")
        x = data.get("x")
        y = data.get("y")
        if x is None and y is None:
            raise DecodeError("an event needs 'x', 'y' or both", "missing_field")
        if x is not None:
            self._check_features(x)
        if y is not None:
            if not isinstance(y, (str, int, bool)):
                raise DecodeError(f"label must be a string, integer or boolean, got {type(y).__name__}", "wrong_type")
            if self.classes is not None and y not in self.classes:
                raise DecodeError(f"unknown class label {y!r}", "unknown_class")
        key, ts = data.get("key"), data.get("ts")
        if key is not None and not isinstance(key, str):
            raise DecodeError("'key' must be a string", "wrong_type")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts)):
            raise DecodeError("'ts' must be a finite number of seconds", "wrong_type")
        return Event(id=event_id, x=x, y=y, key=key, ts=None if ts is None else float(ts))

    def _check_features(self, x) -> None:
        if not isinstance(x, dict):
            raise DecodeError(f"'x' must be an object of features, got {type(x).__name__}", "wrong_type")
        if self.features is not None:
            if missing := self.features - x.keys():
                raise DecodeError(f"missing features: {sorted(missing)}", "missing_feature")
            if extra := x.keys() - self.features:
                raise DecodeError(f"unexpected features: {sorted(extra)}", "extra_feature")
        for name, value in x.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise DecodeError(f"feature {name!r} must be a number or a string, got {value!r}", "wrong_type")
            if isinstance(value, float) and not math.isfinite(value):
                raise DecodeError(f"feature {name!r} is not a finite number: {value!r}", "non_finite")
