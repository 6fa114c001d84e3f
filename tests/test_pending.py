"""The pending-label table: bounded by size and by age in event time, every drop counted."""

from __future__ import annotations

from stream_moe.pending import PendingLabels


def test_size_limit_evicts_oldest_first():
    table = PendingLabels(max_size=3, max_age_s=1e9)
    for i in range(5):
        table.add(str(i), {"f": i}, 0, ts=float(i))
    assert len(table) == 3 and table.evicted == 2
    assert table.pop("0") is None and table.pop("1") is None
    assert table.pop("2").x == {"f": 2} and table.joined == 1
    assert table.pop("2") is None  # a second label for the same id does not join again


def test_age_limit_follows_event_time():
    table = PendingLabels(max_size=100, max_age_s=10.0)
    table.add("old", {}, 0, ts=0.0)
    table.add("mid", {}, 0, ts=5.0)
    table.add("new", {}, 0, ts=12.0)
    assert table.expired == 1 and table.pop("old") is None and table.pop("mid") is not None
    table.add("no-ts", {}, 0, ts=None)  # takes the table's clock
    assert table.pop("no-ts") is not None and table.now == 12.0
