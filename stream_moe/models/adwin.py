"""ADWIN (Bifet & Gavaldà 2007) with its whole state in one array and its loop compiled, so that an expert's monitor
reads a micro-batch of errors in one call (`scan_pair`) instead of two Python calls per error. It makes the same
detections as river's `drift.ADWIN` with the same parameters (tested on random streams; river's stays the oracle).

The window is ADWIN2's exponential histogram: level i holds up to `max_buckets` buckets of 2**i values (a total and a
variance each); when a level overflows, its two oldest buckets merge into one of the next level. Every `clock`
updates, past `grace_period` values, each split of the window into older W0 and newer W1 at a bucket boundary is
tested; the first with |mean(W0) - mean(W1)| above the bound drops the oldest bucket and is a drift, and the test
starts over on the shortened window. The arithmetic is river's, term for term, so rounding agrees too.

`rises_only` (not in river) reports only the cuts where the newer values' mean is above the older's: on an error
stream, a drift is the error rising. Without it, a learner that improves (a young tree, a slow 5-class concept)
drifts again and again and is replaced by a younger one. MOA's Hoeffding Adaptive Tree applies the same rule to its
nodes' error estimators. The window still drops its older part on a fall, as ADWIN does.

>>> import random
>>> rng = random.Random(12345)
>>> adwin = ADWIN()
>>> for i, x in enumerate(rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)):
...     adwin.update(x)
...     if adwin.drift_detected:
...         print(f"Change detected at index {i}, input value: {x}")
Change detected at index 1023, input value: 4

On errors that fall (a learner getting better), river's rule reports drifts, `rises_only` none:

>>> errors = [int(rng.random() < 0.5) for _ in range(1000)] + [int(rng.random() < 0.1) for _ in range(1000)]
>>> both, rises, drifts = ADWIN(), ADWIN(rises_only=True), [0, 0]
>>> for error in errors:
...     both.update(error)
...     rises.update(error)
...     drifts = [drifts[0] + both.drift_detected, drifts[1] + rises.drift_detected]
>>> drifts, rises.width < len(errors)
([1, 0], True)
"""

from __future__ import annotations

import math

import numba
import numpy as np
from river import base

jit = numba.njit(cache=True, nogil=True)

LEVELS = 48  # 2**47 values in the oldest bucket: more than any stream holds
# the state array: parameters and scalars, then buckets per level, then each level's bucket totals and variances
DELTA, CLOCK, MAX_BUCKETS, MIN_WINDOW, GRACE, RISES_ONLY, TOTAL, VARIANCE, WIDTH, TOTAL_WIDTH, N_LEVELS, TICK, \
    DETECTIONS, DETECTED = range(14)
HEADER = 14
STABLE, WARNING, DRIFT = 0, 1, 2  # as `stream_moe.models.detectors`


@jit
def _layout(state):
    """Where the bucket counts, totals and variances start, and the slots per level (one more than max_buckets: a
    level holds max_buckets + 1 for the instant before it merges)."""
    slots = int(state[MAX_BUCKETS]) + 1
    counts = HEADER
    totals = counts + LEVELS
    return counts, totals, totals + LEVELS * slots, slots


@jit
def _shift(state, level, by):
    """Drop the `by` oldest buckets of `level`."""
    counts, totals, variances, slots = _layout(state)
    n = int(state[counts + level])
    for start in (totals, variances):
        row = start + level * slots
        for k in range(n - by):
            state[row + k] = state[row + k + by]
        for k in range(n - by, n):
            state[row + k] = 0.0
    state[counts + level] = n - by


@jit
def _push(state, level, total, variance):
    counts, totals, variances, slots = _layout(state)
    k = int(state[counts + level])
    state[totals + level * slots + k] = total
    state[variances + level * slots + k] = variance
    state[counts + level] = k + 1


@jit
def _insert(state, value):
    """Add one value: a new bucket at level 0, the window's total and variance updated, overflowing levels merged."""
    _push(state, 0, value, 0.0)
    width = state[WIDTH] + 1.0
    state[WIDTH] = width
    increment = 0.0
    if width > 1.0:
        gap = value - state[TOTAL] / (width - 1.0)
        increment = (width - 1.0) * gap * gap / width
    state[VARIANCE] += increment
    state[TOTAL] += value
    counts, totals, variances, slots = _layout(state)
    limit = int(state[MAX_BUCKETS])
    level = 0
    while state[counts + level] == limit + 1:
        size = float(1 << level)
        t0, t1 = state[totals + level * slots], state[totals + level * slots + 1]
        v0, v1 = state[variances + level * slots], state[variances + level * slots + 1]
        mean0, mean1 = t0 / size, t1 / size
        merged_variance = v0 + v1 + size * 0.5 * (mean0 - mean1) * (mean0 - mean1)
        if level + 1 == state[N_LEVELS]:
            state[N_LEVELS] += 1
        _push(state, level + 1, t0 + t1, merged_variance)
        _shift(state, level, 2)
        if state[counts + level + 1] <= limit:
            break
        level += 1


@jit
def _drop_oldest(state):
    """Remove the oldest bucket from the window (after a cut)."""
    counts, totals, variances, slots = _layout(state)
    level = int(state[N_LEVELS]) - 1
    size = float(1 << level)
    total, variance = state[totals + level * slots], state[variances + level * slots]
    mean = total / size
    state[WIDTH] -= size
    state[TOTAL] -= total
    width = state[WIDTH]
    window_mean = state[TOTAL] / width
    state[VARIANCE] -= variance + size * width * (mean - window_mean) * (mean - window_mean) / (size + width)
    _shift(state, level, 1)
    if state[counts + level] == 0:
        state[N_LEVELS] -= 1


@jit
def _cut(state):
    """Test every split of the window, oldest buckets first; at the first significant one drop the oldest bucket.
    Returns 1 for a cut where the newer values' mean is higher, -1 for one where it is lower, 0 for none."""
    counts, totals, variances, slots = _layout(state)
    width, min_window = state[WIDTH], state[MIN_WINDOW]
    log_term = math.log(2.0 * math.log(width) / state[DELTA])
    n0, n1, u0, u1 = 0.0, width, 0.0, state[TOTAL]
    for level in range(int(state[N_LEVELS]) - 1, -1, -1):
        size = float(1 << level)
        n = int(state[counts + level])
        for k in range(n):
            n0 += size
            n1 -= size
            total = state[totals + level * slots + k]
            u0 += total
            u1 -= total
            if level == 0 and k == n - 1:
                return 0  # W1 empty
            if n1 >= min_window and n0 >= min_window:
                inverse = 1.0 / (n0 - min_window + 1.0) + 1.0 / (n1 - min_window + 1.0)
                bound = math.sqrt(2.0 * inverse * (state[VARIANCE] / width) * log_term) + 2.0 / 3.0 * log_term * inverse
                if abs(u0 / n0 - u1 / n1) > bound:
                    _drop_oldest(state)
                    return 1 if u1 / n1 > u0 / n0 else -1
    return 0


@jit
def _clear(state):
    """An empty window (the parameters kept)."""
    state[TOTAL:] = 0.0
    state[N_LEVELS] = 1.0


@jit
def _step(state, value):
    """One value: whether it completes a drift (with `rises_only`, a cut on a rise). A detector that drifted on its
    previous value starts afresh first."""
    if state[DETECTED]:
        _clear(state)
    _insert(state, value)
    state[TICK] += 1.0
    detected = False
    if state[TICK] % state[CLOCK] == 0 and state[WIDTH] > state[GRACE]:
        while True:
            cut = _cut(state)
            if cut == 0:
                break
            detected = detected or cut > 0 or not state[RISES_ONLY]
    state[TOTAL_WIDTH] += state[WIDTH]
    if detected:
        state[DETECTIONS] += 1.0
    state[DETECTED] = detected
    return detected


@jit
def scan_pair(drift, warning, errors, stop_at_warning):
    """An error monitor's loop (see `ErrorMonitor.scan`) on a drift detector's state and, when it has rows, a warning
    detector's: how many errors were read and DRIFT, WARNING or STABLE."""
    for i in range(errors.shape[0]):
        if _step(drift, errors[i]):
            return i + 1, DRIFT
        if warning.shape[0] > 0 and _step(warning, errors[i]) and stop_at_warning:
            return i + 1, WARNING
    return errors.shape[0], STABLE


class ADWIN(base.DriftDetector):
    """ADWIN drift detector, compiled: river's `drift.ADWIN` parameters, meaning and detections.

    Parameters
    ----------
    delta
        Significance of the test that splits the window.
    clock
        Updates between two tests.
    max_buckets
        Buckets kept per level before the two oldest merge.
    min_window_length
        Smallest sub-window a test considers.
    grace_period
        Values before the first test.
    rises_only
        Report only cuts where the mean rose (see the module's docstring); False: river's detections.
    """

    def __init__(self, delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10, rises_only=False):
        super().__init__()
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.rises_only = rises_only
        self._reset()

    def _reset(self):
        super()._reset()
        self.state_ = np.zeros(HEADER + LEVELS * (1 + 2 * (self.max_buckets + 1)))
        self.state_[:TOTAL] = (self.delta, self.clock, self.max_buckets, self.min_window_length, self.grace_period,
                               self.rises_only)
        _clear(self.state_)

    def update(self, x):
        """Add one value; `drift_detected` says whether it completed a drift."""
        _step(self.state_, float(x))

    @property
    def drift_detected(self) -> bool:
        """Whether the last value completed a drift (read from the state, which `scan_pair` updates too)."""
        return bool(self.state_[DETECTED])

    @property
    def width(self) -> int:
        """Values in the window."""
        return int(self.state_[WIDTH])

    @property
    def n_detections(self) -> int:
        """Drifts detected so far."""
        return int(self.state_[DETECTIONS])

    @property
    def variance(self) -> float:
        """The window's sum of squared deviations from its mean (river's `variance`)."""
        return float(self.state_[VARIANCE])

    @property
    def total(self) -> float:
        """The window's sum."""
        return float(self.state_[TOTAL])

    @property
    def estimation(self) -> float:
        """The window's mean."""
        return self.total / self.width if self.width else 0.0
