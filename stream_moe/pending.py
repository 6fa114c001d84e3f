"""The bounded table of predicted events still waiting for their label.

An event without a label is predicted at once; its features (and the prediction, for scoring) wait here until a
label-only event with the same id arrives, then the model learns it. The table is bounded in size and age so that
labels that never come cannot grow it without end: the oldest entries are evicted first, and every eviction is counted.
Time is the events' own clock (the largest event time seen), so replays and restarts expire the same entries.

>>> table = PendingLabels(max_size=2, max_age_s=10.0)
>>> table.add("a", {"f": 1.0}, "UP", ts=0.0); table.add("b", {"f": 2.0}, "DOWN", ts=1.0)
>>> table.add("c", {"f": 3.0}, "UP", ts=2.0)     # full: evicts "a"
>>> table.pop("a") is None, table.pop("b").x, table.evicted
(True, {'f': 2.0}, 1)
>>> table.add("d", {"f": 4.0}, "UP", ts=20.0)    # "c" is now 18 s old: expired
>>> len(table), table.expired
(1, 1)
"""

from __future__ import annotations

import collections
import dataclasses
import typing

from stream_moe.events import Features, Label


@dataclasses.dataclass(slots=True)
class Waiting:
    """A predicted event waiting for its label."""

    x: Features
    y_pred: Label | None
    ts: float


class PendingLabels:
    """Waiting events by id, oldest first; `evicted` counts those pushed out by `max_size`, `expired` those older than
    `max_age_s` (in event time)."""

    def __init__(self, max_size: int = 100_000, max_age_s: float = 3600.0):
        self.max_size = max_size
        self.max_age_s = max_age_s
        self.evicted = 0
        self.expired = 0
        self.joined = 0
        self.now = float("-inf")
        self._waiting: collections.OrderedDict[str, Waiting] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, id: str, x: Features, y_pred: Label | None, ts: float | None) -> None:
        ts = self.now if ts is None else ts
        self.now = max(self.now, ts)
        self._waiting[id] = Waiting(x, y_pred, ts)
        self._waiting.move_to_end(id)
        while len(self._waiting) > self.max_size:
            self._waiting.popitem(last=False)
            self.evicted += 1
        self._expire()

    def pop(self, id: str) -> Waiting | None:
        """The waiting event with this id, removed from the table; None when it is unknown, evicted or expired."""
        waiting = self._waiting.pop(id, None)
        if waiting is not None:
            self.joined += 1
        return waiting

    def _expire(self) -> None:
        horizon = self.now - self.max_age_s
        while self._waiting:
            oldest = next(iter(self._waiting.values()))
            if oldest.ts >= horizon:
                break
            self._waiting.popitem(last=False)
            self.expired += 1

    def items(self) -> typing.Iterator[tuple[str, Waiting]]:
        return iter(self._waiting.items())
