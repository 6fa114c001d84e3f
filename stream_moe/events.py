"""The values that travel the data path: records from a source, decoded events, predictions, dead letters.

A `Record` is what a source hands over (raw bytes or text, or an already structured value from a generator) with its
position in that source; a decoder turns it into an `Event` or raises `DecodeError`. See `../shared/DESIGN.md`.
"""

from __future__ import annotations

import dataclasses
import typing

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
        """The wire form of `../shared/DESIGN.md` (probabilities keyed by the label's text), with `forecast` when a
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


class DecodeError(ValueError):
    """A record that cannot become an event; its message is the reason given in the dead letter, `kind` a short name of
    the problem for metrics (e.g. `invalid_json`, `missing_feature`)."""

    def __init__(self, reason: str, kind: str = "invalid"):
        super().__init__(reason)
        self.kind = kind


@dataclasses.dataclass(slots=True)
class DeadLetter:
    """A record that was refused, why, and where it came from."""

    raw: typing.Any
    reason: str
    position: Position
    kind: str = "invalid"

    def to_json(self) -> dict:
        raw = self.raw
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="backslashreplace")
        elif not isinstance(raw, str):
            raw = repr(raw)
        return {
            "raw": raw,
            "reason": self.reason,
            "kind": self.kind,
            "source": self.position.source,
            "partition": self.position.partition,
            "offset": self.position.offset,
        }
