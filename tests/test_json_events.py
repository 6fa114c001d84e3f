"""The JSON event decoder refuses every kind of bad input with a reason and a kind."""

from __future__ import annotations

import json

import pytest

from connectors.json_events import JsonEventDecoder
from stream_moe.events import DecodeError, Event, Position, Record

DECODER = JsonEventDecoder(features=["a", "b"], classes=["UP", "DOWN"], max_bytes=200)


def decode(value) -> Event:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return DECODER.decode(Record(raw, Position("in", 0)))


def test_decodes_full_and_label_only_events():
    e = decode({"id": "1", "key": "k", "ts": 5, "x": {"a": 1, "b": "red"}, "y": "UP"})
    assert (e.id, e.key, e.ts, e.x, e.y) == ("1", "k", 5.0, {"a": 1, "b": "red"}, "UP")
    assert decode({"id": 2, "y": "DOWN"}) == Event("2", None, "DOWN")
    assert decode({"id": "3", "x": {"a": 1, "b": 2}}).y is None


@pytest.mark.parametrize(
    "value, kind",
    [
        (b"\xff\xfe", "invalid_json"),
        (b"{not json", "invalid_json"),
        ([1, 2], "wrong_type"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "extra": 1}, "unknown_field"),
        ({"x": {"a": 1, "b": 2}}, "missing_field"),
        ({"id": "1"}, "missing_field"),
        ({"id": 1.5, "y": "UP"}, "wrong_type"),
        ({"id": "1", "x": [1, 2]}, "wrong_type"),
        ({"id": "1", "x": {"a": 1, "b": None}}, "wrong_type"),
        ({"id": "1", "x": {"a": True, "b": 1}}, "wrong_type"),
        ({"id": "1", "x": {"a": 1}}, "missing_feature"),
        ({"id": "1", "x": {"a": 1, "b": 2, "c": 3}}, "extra_feature"),
        (b'{"id": "1", "x": {"a": NaN, "b": 2}}', "non_finite"),
        (b'{"id": "1", "x": {"a": -Infinity, "b": 2}}', "non_finite"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "y": "SIDEWAYS"}, "unknown_class"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "y": [1]}, "wrong_type"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "ts": "noon"}, "wrong_type"),
        ({"id": "1", "x": {"a": 1, "b": "x" * 300}}, "oversized"),
    ],
)
def test_refuses_bad_input_with_its_kind(value, kind):
    with pytest.raises(DecodeError) as err:
        decode(value)
    assert err.value.kind == kind and str(err.value)
