"""The tables that join labels to their events whichever arrives first, and refuse repeated ids.

A shard keeps three bounded tables and one clock, all checkpointed together with its model:
- `pending`: predicted events waiting for their label (features and prediction, by id);
- `early`: labels that arrived before their event (two topics consumed at different speeds, a catch-up after a
  restart), joined when the event comes;
- `recent`: the ids of the last events seen, so that a repeated event is refused rather than learned twice, and a
  second label for an event already labelled is told apart from an early one.

Ages are in event time: `now` is the watermark, the largest timestamp accepted (the shard refuses timestamps too far
ahead of processing time, so no single record can move it far). Replays and restarts expire the same entries.

>>> table = BoundedTable(max_size=2, max_age_s=10.0)
>>> table.add("a", "first", ts=0.0), table.add("b", "second", ts=1.0)
([], [])
>>> table.add("c", "third", ts=2.0)      # full: evicts "a"
[('a', 'first')]
>>> table.pop("a"), table.pop("b"), table.evicted
(None, 'second', 1)
>>> table.expire(now=20.0)               # "c" is now 18 s old
[('c', 'third')]
"""

from __future__ import annotations

import collections
import dataclasses
import typing

from stream_moe.events import Features, Label, Position

T = typing.TypeVar("T")


class BoundedTable(typing.Generic[T]):
    """Values by id in order of arrival, at most `max_size` (the oldest are evicted first) and at most `max_age_s` old
    (in event time, on `expire`). `evicted`, `expired` and `joined` count what left the table and how."""

    def __init__(self, max_size: int, max_age_s: float):
        self.max_size = max_size
        self.max_age_s = max_age_s
        self.evicted = 0
        self.expired = 0
        self.joined = 0
        self._items: collections.OrderedDict[str, tuple[float, T]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, id: str) -> bool:
        return id in self._items

    def add(self, id: str, value: T, ts: float) -> list[tuple[str, T]]:
        """Keep `value` under `id` (replacing an entry of that id); return what the size limit evicted."""
        self._items[id] = (ts, value)
        self._items.move_to_end(id)
        evicted = []
        while len(self._items) > self.max_size:
            old_id, (_, old) = self._items.popitem(last=False)
            evicted.append((old_id, old))
        self.evicted += len(evicted)
        return evicted

    def pop(self, id: str) -> T | None:
        """The value of `id`, removed from the table (a join); None when there is none."""
        item = self._items.pop(id, None)
        if item is None:
            return None
        self.joined += 1
        return item[1]

    def stamp_unknown(self, ts: float) -> None:
        """Give the entries stamped with no time (-inf: they came before any event time) the time `ts`."""
        for id, (old, value) in self._items.items():
            if old == float("-inf"):
                self._items[id] = (ts, value)

    def expire(self, now: float) -> list[tuple[str, T]]:
        """Remove and return the entries older than `max_age_s` at event time `now`, oldest first (entries are in
        order of arrival, which is close to event time: one out of order waits until those before it expire)."""
        horizon, expired = now - self.max_age_s, []
        while self._items:
            id, (ts, value) = next(iter(self._items.items()))
            if ts >= horizon:
                break
            self._items.popitem(last=False)
            expired.append((id, value))
        self.expired += len(expired)
        return expired


class RecentIds:
    """The last `max_size` ids seen, for refusing repeats (0 keeps none).

    >>> ids = RecentIds(max_size=2)
    >>> [ids.add(i) for i in ("a", "b", "a", "c", "a")]   # "a" is forgotten once two newer ids came
    [True, True, False, True, True]
    """

    def __init__(self, max_size: int):
        self.max_size = max_size
        self._order: collections.deque[str] = collections.deque()
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: str) -> bool:
        return id in self._ids

    def add(self, id: str) -> bool:
        """Remember `id`; False when it was seen already (and is kept as it was)."""
        if id in self._ids:
            return False
        if self.max_size > 0:
            self._ids.add(id)
            self._order.append(id)
            if len(self._order) > self.max_size:
                self._ids.discard(self._order.popleft())
        return True


@dataclasses.dataclass(slots=True)
class Waiting:
    """A predicted event waiting for its label, and its key (which model learns it, when models are per key)."""

    x: Features
    y_pred: Label | None
    key: str | None = None


@dataclasses.dataclass(slots=True)
class EarlyLabel:
    """A label waiting for its event, and where it was read (for its dead letter if the event never comes)."""

    y: Label
    position: Position


@dataclasses.dataclass
class JoinLimits:
    """Bounds of a shard's join tables and of its event clock (see `stream_moe.config.ServeSettings`)."""

    pending_max_size: int = 100_000
    pending_max_age_s: float = 3600.0
    early_max_size: int = 100_000
    early_max_age_s: float = 3600.0
    recent_ids: int = 100_000
    max_ts_ahead_s: float = 3600.0


class Joins:
    """A shard's join tables and its watermark `now` (the largest event time accepted)."""

    def __init__(self, limits: JoinLimits | None = None):
        limits = limits or JoinLimits()
        self.max_ts_ahead_s = limits.max_ts_ahead_s
        self.pending: BoundedTable[Waiting] = BoundedTable(limits.pending_max_size, limits.pending_max_age_s)
        self.early: BoundedTable[EarlyLabel] = BoundedTable(limits.early_max_size, limits.early_max_age_s)
        self.recent = RecentIds(limits.recent_ids)
        self.now = float("-inf")

    def accepts(self, ts: float | None, wall: float) -> bool:
        """Whether an event time is usable at processing time `wall` (not further ahead than `max_ts_ahead_s`); an
        accepted one moves the watermark."""
        if ts is None:
            return True
        if ts > wall + self.max_ts_ahead_s:
            return False
        if ts > self.now:
            if self.now == float("-inf"):  # the first event time: entries that came before it take it
                self.pending.stamp_unknown(ts)
                self.early.stamp_unknown(ts)
            self.now = ts
        return True

    def time_of(self, ts: float | None) -> float:
        """The event time of an entry: its own, else the watermark (-inf before any event time: see `accepts`)."""
        return self.now if ts is None else ts
