"""The join tables: bounded by size and by age in event time, every drop counted; the watermark refuses event times
far ahead of processing time."""

from __future__ import annotations

from stream_moe.joins import BoundedTable, JoinLimits, Joins, RecentIds


def test_size_limit_evicts_oldest_first():
    table = BoundedTable(max_size=3, max_age_s=1e9)
    evicted = [table.add(str(i), {"f": i}, ts=float(i)) for i in range(5)]
    assert evicted[3] == [("0", {"f": 0})] and evicted[4] == [("1", {"f": 1})]
    assert len(table) == 3 and table.evicted == 2
    assert table.pop("0") is None and table.pop("1") is None
    assert table.pop("2") == {"f": 2} and table.joined == 1
    assert table.pop("2") is None  # a second label for the same id does not join again


def test_age_limit_follows_event_time():
    table = BoundedTable(max_size=100, max_age_s=10.0)
    table.add("old", "a", ts=0.0)
    table.add("mid", "b", ts=5.0)
    assert table.expire(now=12.0) == [("old", "a")]
    assert table.expired == 1 and "old" not in table and table.pop("mid") == "b"


def test_recent_ids_forget_the_oldest_and_zero_keeps_none():
    ids = RecentIds(3)
    assert all(ids.add(str(i)) for i in range(5))
    assert not ids.add("4") and ids.add("0") and len(ids) == 3
    none = RecentIds(0)
    assert none.add("a") and none.add("a") and len(none) == 0


def test_watermark_ignores_event_times_far_ahead_of_processing_time():
    joins = Joins(JoinLimits(max_ts_ahead_s=60.0))
    assert joins.accepts(100.0, wall=1000.0) and joins.now == 100.0
    assert not joins.accepts(1e300, wall=1000.0) and joins.now == 100.0
    assert joins.accepts(1050.0, wall=1000.0) and joins.now == 1050.0
    assert joins.accepts(None, wall=1000.0) and joins.time_of(None) == 1050.0
    assert joins.accepts(3.0, wall=1000.0) and joins.now == 1050.0  # an old event does not move it back


def test_entries_that_came_before_any_event_time_take_the_first_one():
    joins = Joins(JoinLimits(early_max_age_s=10.0))
    joins.early.add("label-first", "y", joins.time_of(None))  # no clock yet
    assert joins.accepts(1000.0, wall=1000.0)
    assert joins.early.expire(joins.now) == []  # not expired by a clock that started after it
    assert joins.early.expire(1011.0) == [("label-first", "y")]
