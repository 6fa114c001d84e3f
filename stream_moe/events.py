"""The values that travel the data path: records from a source, decoded events, predictions, dead letters.

A `Record` is what a source hands over (raw bytes or text, or an already structured value from a generator) with its
position in that source; a decoder turns it into an `Event` or raises `DecodeError`. The wire format is in
docs/serving.md, "Events on the wire".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing

import orjson

Label = typing.Union[str, int, bool]
Features = dict[str, typing.Any]


@dataclasses.dataclass(slots=True, frozen=True)
class Position:
    """Where a record sits in its source: a Kafka partition and offset, or a file and its line number."""

    source: str
    offset: int
    partition: int = 0


@dataclasses.dataclass(slots=True)
class Record:
    """One undecoded item of a source and its position."""

    value: typing.Any
    position: Position


@dataclasses.dataclass(slots=True)
class Event:
    """A decoded input event; `y` is None when its label has not arrived (yet). A label-only event (`x` None) carries
    the label of an earlier event with the same id."""

    id: str
    x: Features | None
    y: Label | None = None
    key: str | None = None
    ts: float | None = None


@dataclasses.dataclass(slots=True)
class Prediction:
    """A model's answer for one event: the predicted label, class probabilities and the experts consulted; from a
    forecaster, `forecast` lists the values forecast for the event's timestamp (also `y_pred`) and the steps after it
    (empty while it has none), and is None from a classifier."""

    id: str
    y_pred: Label | float | None
    proba: dict[Label, float]
    experts: list[int]
    key: str | None = None
    ts: float | None = None
    forecast: list[float] | None = None

    def to_json(self, model_name: str, model_version: str) -> dict:
        """The wire form of docs/serving.md (probabilities keyed by the label's text), with `forecast` when a
        forecaster made it."""
        wire = {
            "id": self.id,
            "key": self.key,
            "y_pred": self.y_pred,
            "proba": {str(k): v for k, v in self.proba.items()},
            "experts": self.experts,
            "model": {"name": model_name, "version": model_version},
            "ts": self.ts,
        }
        if self.forecast is not None:
            wire["forecast"] = self.forecast
        return wire

    def to_bytes(self, model_name: str, model_version: str) -> bytes:
        """`to_json` encoded (orjson: a tenth of the json module's time; labels beyond its 64-bit integers fall back
        to the json module)."""
        wire = self.to_json(model_name, model_version)
        try:
            return orjson.dumps(wire, default=str, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return json.dumps(wire, default=str).encode()


class DecodeError(ValueError):
    """A record that cannot become an event; its message is the reason given in the dead letter, `kind` a short name of
    the problem for metrics (e.g. `invalid_json`, `missing_feature`)."""

    def __init__(self, reason: str, kind: str = "invalid"):
        super().__init__(reason)
        self.kind = kind


MAX_REASON_CHARS = 1000  # a reason quotes values from the record: long ones are cut


@dataclasses.dataclass(slots=True)
class DeadLetter:
    """A record that was refused, why, and where it came from."""

    raw: typing.Any
    reason: str
    position: Position
    kind: str = "invalid"

    def to_json(self, max_bytes: int | None = None) -> dict:
        """The wire form: the raw record as text (bytes that are not UTF-8 escaped, a structured value as its repr),
        the reason, the kind and the position. With `max_bytes`, a raw record whose letter would be larger as JSON is
        cut to fit, and the letter keeps the record's original length in bytes and its sha256 instead.

        >>> letter = DeadLetter(b"x" * 500, "oversized", Position("events", 7), "oversized").to_json(max_bytes=300)
        >>> letter["truncated"], letter["raw_bytes"], len(json.dumps(letter)) <= 300
        (True, 500, True)
        """
        raw = self.raw
        if isinstance(raw, bytes):
            text = raw.decode("utf-8", errors="backslashreplace")
        elif raw is None or isinstance(raw, str):
            text = raw
        else:
            text = repr(raw)
        reason = self.reason if len(self.reason) <= MAX_REASON_CHARS else self.reason[:MAX_REASON_CHARS] + "..."
        letter = {"raw": text, "reason": reason, "kind": self.kind, "source": self.position.source,
                  "partition": self.position.partition, "offset": self.position.offset}
        if max_bytes is None or text is None or len(json.dumps(letter)) <= max_bytes:  # ASCII: characters are bytes
            return letter
        original = raw if isinstance(raw, bytes) else text.encode("utf-8", errors="surrogateescape")
        letter.update(raw="", truncated=True, raw_bytes=len(original), raw_sha256=hashlib.sha256(original).hexdigest())
        budget = max_bytes - len(json.dumps(letter))
        # the escaped form of a character takes 1 to 12 bytes: cut, then halve until the letter fits
        cut = text[: max(0, budget)]
        while cut and len(json.dumps(cut)) - 2 > budget:
            cut = cut[: len(cut) // 2]
        letter["raw"] = cut
        return letter
