"""The compile clock: numba's compilation time is measured (to keep it out of throughput) and announced once."""

from __future__ import annotations

import numba

from stream_moe.compilation import ANNOUNCEMENT, CompileClock, warm_rows


def test_the_clock_counts_compilation_once_and_announces_it_once():
    @numba.njit
    def add(a, b):
        return a + b

    @numba.njit
    def twice(a):  # compiling it compiles `add` inside it: nested, counted once
        return add(a, a)

    said = []
    with CompileClock(said.append) as clock:
        assert twice(2) == 4
        compiled = clock.seconds
        assert twice(3) == 6  # already compiled: no time added
        assert twice(1.5) == 3.0  # a new signature compiles again, without a second announcement
    assert compiled > 0 and clock.seconds > compiled
    assert said == [ANNOUNCEMENT]
    total = clock.seconds
    add(1.0, 2.0)  # a compilation after the clock is left is not counted
    assert clock.seconds == total


def test_warm_rows_cover_numeric_and_nominal_features_and_a_change_of_concept():
    rows = warm_rows(1000)
    assert {type(v) for x, _ in rows for v in x.values()} == {float, str}
    assert {y for _, y in rows} == {"lo", "mid", "hi"}
    first, second = rows[:500], rows[500:]
    rule = [(x["a"] + 0.5 * (x["c"] == "x") < 0.5) == (y == "lo") for x, y in first + second]
    assert all(rule[:500]) and not all(rule[500:])
