"""The compiled ADWIN against river's, the oracle: same detections, same window, on random streams and parameters."""

from __future__ import annotations

import pickle
import random

import pytest
from river import drift

from stream_moe.models.adwin import ADWIN
from stream_moe.models.detectors import ErrorMonitor


def drifting(rng, n, binary):
    """n values whose mean jumps at random times: 0/1 errors, or Gaussian values."""
    values, level = [], rng.random()
    for _ in range(n):
        if rng.random() < 0.002:
            level = rng.random()
        values.append(float(rng.random() < level) if binary else rng.gauss(10 * level, 3 * rng.random()))
    return values


@pytest.mark.parametrize("seed", range(40))
def test_detects_exactly_what_rivers_adwin_detects(seed):
    rng = random.Random(seed)
    params = {"delta": rng.choice([0.5, 0.1, 0.01, 0.002, 0.001]), "clock": rng.choice([1, 4, 32]),
              "max_buckets": rng.choice([2, 3, 5]), "min_window_length": rng.choice([1, 5, 10]),
              "grace_period": rng.choice([1, 10, 50])}
    river_adwin, ours = drift.ADWIN(**params), ADWIN(**params)
    detections = {"river": [], "ours": []}
    for i, x in enumerate(drifting(rng, 4000, binary=seed % 2 == 0)):
        river_adwin.update(x)
        ours.update(x)
        for name, detector in (("river", river_adwin), ("ours", ours)):
            if detector.drift_detected:
                detections[name].append(i)
    assert detections["ours"] == detections["river"]
    assert len(detections["river"]) > 0 or params["delta"] < 0.01  # the streams drift: the test compares detections
    assert (ours.width, ours.total, ours.variance, ours.n_detections) == (
        river_adwin.width, river_adwin.total, river_adwin.variance, river_adwin.n_detections)


def test_a_compiled_monitor_says_what_a_monitor_of_rivers_detectors_says():
    errors = drifting(random.Random(9), 20_000, binary=True)
    compiled = ErrorMonitor(ADWIN(delta=0.001), ADWIN(delta=0.01))
    oracle = ErrorMonitor(drift.ADWIN(delta=0.001), drift.ADWIN(delta=0.01))
    assert compiled._compiled and not oracle._compiled
    states = {}
    for name, monitor in (("compiled", compiled), ("river", oracle)):
        seen, at = [], 0
        while at < len(errors):  # batches of 50; a scan stops at a drift and, every third batch, at a warning
            read, state = monitor.scan(errors[at : at + 50], stop_at_warning=(at // 50) % 3 == 0)
            at += read
            seen.append((at, state))
        states[name] = seen
    assert states["compiled"] == states["river"]
    assert {state for _, state in states["river"]} == {0, 1, 2}


def test_pickle_and_clone():
    adwin = ADWIN(delta=0.01)
    values = drifting(random.Random(3), 3000, binary=True)
    for x in values[:2000]:
        adwin.update(x)
    restored, clone = pickle.loads(pickle.dumps(adwin)), adwin.clone()
    assert clone.width == 0 and clone.delta == 0.01
    for x in values[2000:]:
        adwin.update(x)
        restored.update(x)
        assert restored.drift_detected == adwin.drift_detected
    assert restored.width == adwin.width


def rates(rng, *levels, n=2000):
    """0/1 errors at each rate of `levels` in turn, n each."""
    return [float(rng.random() < level) for level in levels for _ in range(n)]


def drifts(detector, values) -> list[int]:
    found = []
    for i, x in enumerate(values):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


@pytest.mark.parametrize("seed", range(10))
def test_rises_only_reports_a_rise_as_river_does_and_no_fall(seed):
    rng = random.Random(seed)
    rising, falling = rates(rng, 0.1, 0.4), rates(rng, 0.4, 0.1)
    (first, *_), (first_rising, *_) = drifts(ADWIN(), rising), drifts(ADWIN(rises_only=True), rising)
    assert first_rising == first and 2000 <= first < 2400
    assert drifts(ADWIN(), falling)
    rises = ADWIN(rises_only=True)
    assert drifts(rises, falling) == []
    assert rises.width < len(falling) and rises.estimation < 0.25  # the window let older, higher errors go


def test_a_learning_curve_is_no_drift_to_a_rises_only_monitor():
    """An expert whose error falls from 50% to 10% as it learns: river's ADWIN calls that change a drift (and an
    expert would be replaced by a younger one); a monitor of rises-only ADWINs waits for the error to rise."""
    rng = random.Random(4)
    curve = [float(rng.random() < 0.1 + 0.4 * max(0.0, 1 - i / 15_000)) for i in range(20_000)]
    relapse = rates(rng, 0.3, n=3000)
    two_sided = ErrorMonitor(ADWIN(delta=0.001), ADWIN(delta=0.01))
    rises_only = ErrorMonitor(ADWIN(delta=0.001, rises_only=True), ADWIN(delta=0.01, rises_only=True))
    assert two_sided.scan(curve, stop_at_warning=False)[1] == 2
    read, state = rises_only.scan(curve, stop_at_warning=False)
    assert (read, state) == (len(curve), 0)
    read, state = rises_only.scan(relapse)
    assert state in (1, 2) and read < 500
