"""Drift detectors on an expert's error stream, by name or as river objects, with a warning level for every kind.

>>> make_detector("ddm(drift_threshold=2.5)")
DDM (
  warm_start=30
  warning_threshold=2.
  drift_threshold=2.5
)
>>> import random
>>> rng = random.Random(2)
>>> monitor = ErrorMonitor(make_detector("adwin(delta=0.001)"), make_detector("adwin(delta=0.01)"))
>>> states = [monitor.update(rng.random() < (0.1 if i < 2000 else 0.25)) for i in range(4000)]
>>> 2000 < states.index(WARNING) < states.index(DRIFT)
True
"""

from __future__ import annotations

import ast
import functools
import inspect
import re

import numpy as np
from river import base, drift
from river.drift import binary

from stream_moe.models import adwin

DETECTORS = {
    "adwin": adwin.ADWIN,  # compiled, river's detections (river's `drift.ADWIN` may be passed as an object)
    "kswin": drift.KSWIN,
    "page_hinkley": drift.PageHinkley,
    "ddm": binary.DDM,
    "eddm": binary.EDDM,
    "hddm_a": binary.HDDMA,
    "hddm_w": binary.HDDMW,
}
# Not FHDDM: river's implementation takes 1 for a correct prediction (it watches the share of ones fall), the opposite
# of its docstring and of the other binary detectors, so on an error stream it never fires.

STABLE, WARNING, DRIFT = adwin.STABLE, adwin.WARNING, adwin.DRIFT
_NO_WARNING = np.zeros(0)

_SPEC = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$")


def make_detector(spec: str | base.DriftDetector, seed: int | None = None) -> base.DriftDetector:
    """A fresh detector from a name with optional keyword arguments ("adwin", "ddm(drift_threshold=2.5)") or a clone
    of a river detector. `seed` seeds a detector that draws at random (KSWIN) when the spec sets no seed of its own,
    so that a model's runs repeat.

    >>> make_detector("kswin", seed=3).seed, make_detector("kswin(seed=1)", seed=3).seed
    (3, 1)
    """
    if isinstance(spec, base.DriftDetector):
        return spec.clone()
    detector, arguments, seeded = _parse(spec)
    kwargs = dict(arguments)  # the spec's literals: numbers, strings, tuples
    if seed is not None and "seed" not in kwargs and seeded:
        kwargs["seed"] = seed
    return detector(**kwargs)


@functools.lru_cache(maxsize=256)
def _parse(spec: str) -> tuple[type, dict, bool]:
    """A spec's detector class, keyword arguments and whether the class takes a seed. Cached: a pool makes two
    detectors per expert from the same specs, and parsing them took a quarter of making a DriftMoE model."""
    match = _SPEC.match(spec)
    if not match or match.group(1).lower() not in DETECTORS:
        raise ValueError(f"unknown drift detector {spec!r}; known: {', '.join(DETECTORS)}")
    kwargs = {}
    if match.group(2):
        call = ast.parse(f"f({match.group(2)})", mode="eval").body
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    detector = DETECTORS[match.group(1).lower()]
    return detector, kwargs, "seed" in inspect.signature(detector).parameters


class ErrorMonitor:
    """Watches one expert's 0/1 errors and says STABLE, WARNING or DRIFT.

    Detectors with a warning zone of their own (DDM, EDDM, HDDM_A, HDDM_W) give the warning; for the others
    (ADWIN, KSWIN, Page-Hinkley) a second, more sensitive detector does, as in ARF. After a drift both restart.
    """

    def __init__(self, drift_detector: base.DriftDetector, warning_detector: base.DriftDetector | None = None):
        self.drift_detector = drift_detector
        self.warning_detector = None if hasattr(drift_detector, "warning_detected") else warning_detector
        self._prototypes = (drift_detector.clone(), self.warning_detector and self.warning_detector.clone())
        self._compiled = all(isinstance(d, adwin.ADWIN) for d in (drift_detector, self.warning_detector) if d)

    def update(self, error: bool) -> int:
        """One error: DRIFT, WARNING or STABLE."""
        return self.scan([error])[1]

    def scan(self, errors, stop_at_warning: bool = True) -> tuple[int, int]:
        """Feed 0/1 errors in order until a drift (or a warning, with `stop_at_warning`): how many were read and
        DRIFT, WARNING or STABLE (all read, nothing to act on). An expert's errors arrive a batch at a time: compiled
        ADWINs read them in one call."""
        if self._compiled:
            warning = self.warning_detector
            read, state = adwin.scan_pair(self.drift_detector.state_, _NO_WARNING if warning is None else warning.state_,
                                          np.asarray(errors, dtype=np.float64), stop_at_warning)
        else:
            read, state = self._scan(errors, stop_at_warning)
        if state == DRIFT:
            self.drift_detector = self._prototypes[0].clone()
            if self.warning_detector is not None:
                self.warning_detector = self._prototypes[1].clone()
        return read, state

    def _scan(self, errors, stop_at_warning: bool) -> tuple[int, int]:
        """`scan` with river's detectors (or any), one error at a time."""
        drift, warning = self.drift_detector, self.warning_detector
        for i, error in enumerate(np.asarray(errors, dtype=bool).tolist()):
            drift.update(error)
            if drift.drift_detected:
                return i + 1, DRIFT
            if warning is not None:
                warning.update(error)
                warned = warning.drift_detected
            else:
                warned = getattr(drift, "warning_detected", False)
            if warned and stop_at_warning:
                return i + 1, WARNING
        return len(errors), STABLE
