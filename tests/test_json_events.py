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
        (b'{"id": "1", "x": {"a": NaN, "b": 2}}', "invalid_json"),  # not JSON (RFC 8259)
        (b'{"id": "1", "x": {"a": -Infinity, "b": 2}}', "invalid_json"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "y": "SIDEWAYS"}, "unknown_class"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "y": [1]}, "wrong_type"),
        ({"id": "1", "x": {"a": 1, "b": 2}, "ts": "noon"}, "bad_ts"),
        ({"id": "1", "x": {"a": 1, "b": "x" * 300}}, "oversized"),
    ],
)
def test_refuses_bad_input_with_its_kind(value, kind):
    with pytest.raises(DecodeError) as err:
        decode(value)
    assert err.value.kind == kind and str(err.value)


@pytest.mark.parametrize(
    "raw, kind",
    [
        (None, "tombstone"),  # a Kafka record with a null value
        (b"[" * 30000 + b"]" * 30000, "invalid_json"),  # deeper than Python's recursion limit
        (b'{"id": "1", "x": {"a": ' + b"[" * 30000 + b"]" * 30000 + b', "b": 1}}', "invalid_json"),
        (b'{"id": "1", "y": 1' + b"0" * 5000 + b"}", "invalid_json"),  # more digits than Python parses
        (b'{"id": "1", "x": {"a": 1}, "ts": 1' + b"0" * 400 + b"}", "invalid_json"),  # beyond float range
        (b'{"id": "1", "x": {"a": 1' + b"0" * 400 + b"}}", "invalid_json"),
        ('{"id": "\\ud800", "y": "UP"}', "invalid_json"),  # a lone surrogate, escaped or not, is no text
        ('{"id": "\ud800", "y": "UP"}', "invalid_json"),
    ],
)
def test_refuses_what_would_crash_a_parser(raw, kind):
    decoder = JsonEventDecoder(max_bytes=1_000_000)
    record = Record(raw, Position("in", 0))
    with pytest.raises(DecodeError) as err:
        decoder.decode(record)
    assert err.value.kind == kind


def test_declared_kinds_are_checked_before_the_model():
    typed = JsonEventDecoder(features={"n": "numeric", "c": "nominal"})

    def kind_of(x):
        try:
            typed.decode(Record(json.dumps({"id": "1", "x": x}).encode(), Position("in", 0)))
        except DecodeError as err:
            return err.kind
        return "ok"

    assert kind_of({"n": 1.5, "c": "red"}) == kind_of({"n": 2, "c": 3}) == "ok"
    assert kind_of({"n": "abc", "c": "red"}) == "wrong_type"
    assert kind_of({"n": 1.0, "c": 2.5}) == "wrong_type"
    with pytest.raises(ValueError, match="numeric or nominal"):
        JsonEventDecoder(features={"n": "number"})
