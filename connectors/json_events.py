"""Decodes JSON events of the wire format in DESIGN.md and refuses anything that could poison a model.

`{"id": "...", "key": "...", "ts": 1732780800.0, "x": {"f1": 0.3, "f2": "red"}, "y": "UP"}`: `y` is optional, and a
label-only event `{"id": "...", "y": ...}` labels an event (before or after it). Each refusal is a `DecodeError` whose
`kind` names the problem (`tombstone`, `oversized`, `invalid_json`, `wrong_type`, `missing_field`, `unknown_field`,
`missing_feature`, `extra_feature`, `non_finite`, `unknown_class`, `bad_ts`), so dead letters can be counted by kind.

Features may be declared with their kind (`{"f1": "numeric", "f2": "nominal"}`): a numeric feature must then be a
number (not a boolean) that is finite as a float, a nominal one a string or an integer, so that no value of the wrong
kind reaches the model. Undeclared numbers must be finite floats too.

>>> decoder = JsonEventDecoder(features=["f1", "f2"], classes=["UP", "DOWN"])
>>> from stream_moe.events import Position, Record
>>> decoder.decode(Record(b'{"id": "7", "x": {"f1": 0.5, "f2": "red"}, "y": "UP"}', Position("in", 0)))
Event(id='7', x={'f1': 0.5, 'f2': 'red'}, y='UP', key=None, ts=None)
>>> decoder.decode(Record(b'{"id": "7", "x": {"f1": 1e999, "f2": "red"}}', Position("in", 1)))
Traceback (most recent call last):
...
stream_moe.events.DecodeError: invalid JSON: number is infinity when parsed as double: line 1 column 25 (char 24)
>>> typed = JsonEventDecoder(features={"f1": "numeric", "f2": "nominal"})
>>> typed.decode(Record(b'{"id": "8", "x": {"f1": "abc", "f2": "red"}}', Position("in", 2)))
Traceback (most recent call last):
...
stream_moe.events.DecodeError: feature 'f1' is numeric, got 'abc'
"""

from __future__ import annotations

import math
import typing

import orjson

from stream_moe.events import DecodeError, Event, Record

FIELDS = {"id", "key", "ts", "x", "y"}
FEATURE_KINDS = ("numeric", "nominal")


def finite_float(value) -> float | None:
    """`value` as a float when it is a number (not a boolean) that is finite in float range, else None.

    >>> finite_float(2), finite_float(float("inf")), finite_float(10 ** 400), finite_float(True)
    (2.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


def parse_object(raw: bytes | str | None, max_bytes: int, fields: typing.Collection[str]) -> dict:
    """The JSON object of a message no larger than `max_bytes`, with no fields but `fields`; else a `DecodeError`."""
    if raw is None:
        raise DecodeError("empty record (a tombstone)", "tombstone")
    if not isinstance(raw, (bytes, str)):
        raise DecodeError(f"expected bytes or text, got {type(raw).__name__}", "wrong_type")
    if len(raw) > max_bytes:
        raise DecodeError(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}", "oversized")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:  # also invalid UTF-8, NaN, numbers beyond float range, deep nesting
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
        The feature names every event must have, exactly, or a mapping of them to their kind, `numeric` or `nominal`;
        None accepts any names.
    classes
        The known class labels; None accepts any label.
    max_bytes
        Larger messages are refused before parsing.
    """

    def __init__(
        self,
        features: typing.Sequence[str] | typing.Mapping[str, str] | None = None,
        classes: typing.Sequence | None = None,
        max_bytes: int = 65536,
    ):
        self.kinds = dict(features) if isinstance(features, typing.Mapping) else {}
        if bad := {k for k in self.kinds.values() if k not in FEATURE_KINDS}:
            raise ValueError(f"feature kinds must be {' or '.join(FEATURE_KINDS)}, got {sorted(bad)}")
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
        if ts is not None and (ts := finite_float(ts)) is None:
            raise DecodeError("'ts' must be a finite number of seconds", "bad_ts")
        return Event(id=event_id, x=x, y=y, key=key, ts=ts)

    def _check_features(self, x) -> None:
        if not isinstance(x, dict):
            raise DecodeError(f"'x' must be an object of features, got {type(x).__name__}", "wrong_type")
        if self.features is not None:
            if missing := self.features - x.keys():
                raise DecodeError(f"missing features: {sorted(missing)}", "missing_feature")
            if extra := x.keys() - self.features:
                raise DecodeError(f"unexpected features: {sorted(extra)}", "extra_feature")
        kinds = self.kinds
        for name, value in x.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise DecodeError(f"feature {name!r} must be a number or a string, got {value!r}", "wrong_type")
            kind = kinds.get(name)
            if isinstance(value, str):
                if kind == "numeric":
                    raise DecodeError(f"feature {name!r} is numeric, got {value!r}", "wrong_type")
            elif kind == "nominal":
                if not isinstance(value, int):
                    raise DecodeError(f"feature {name!r} is nominal, got {value!r}", "wrong_type")
            elif finite_float(value) is None:
                raise DecodeError(f"feature {name!r} is not a finite number: {value!r}", "non_finite")
