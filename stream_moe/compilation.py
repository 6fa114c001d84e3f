"""The numba kernels' compilation: a clock of the time spent compiling them (kept out of measured throughput, and
announced, since a first run spends tens of seconds there), and a warm-up that compiles them all ahead of a first run
into numba's on-disk cache (the image build runs `python -m stream_moe.compilation`)."""

from __future__ import annotations

import random
import sys
import time
import typing

from numba.core import event

WARMED_MODELS = ("driftmoe-data", "driftmoe-task")  # their experts are the fast trees
ANNOUNCEMENT = "compiling kernels (once: later runs load them from numba's cache)..."


class CompileClock(event.Listener):
    """While entered, adds up the wall seconds numba spends compiling (nested compilations counted once) and calls
    `announce` once, when the first compilation starts. Kernels loaded from the cache are not compiled."""

    def __init__(self, announce: typing.Callable[[str], None] | None = None):
        self.seconds = 0.0
        self.announce = announce
        self._depth = 0
        self._started = 0.0
        self._announced = False

    def on_start(self, ev) -> None:
        if self._depth == 0:
            self._started = time.perf_counter()
            if self.announce is not None and not self._announced:
                self._announced = True
                self.announce(ANNOUNCEMENT)
        self._depth += 1

    def on_end(self, ev) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> "CompileClock":
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc) -> None:
        event.unregister("numba:compile", self)


def warm_rows(n: int, seed: int = 0) -> list[tuple[dict, str]]:
    """Rows with numeric and nominal features and three classes whose concept flips halfway, so that trees split on
    both kinds of feature and drift detectors fire: every kernel the models have is called."""
    rng = random.Random(seed)
    rows = []
    for t in range(n):
        x = {"a": rng.random(), "b": rng.random(), "c": rng.choice("xyz")}
        score = x["a"] + 0.5 * (x["c"] == "x") if t < n // 2 else x["b"] + 0.5 * (x["c"] == "z")
        rows.append((x, "lo" if score < 0.5 else "mid" if score < 1.0 else "hi"))
    return rows


def warm(n: int = 3000, batch: int = 32) -> float:
    """Compile (or load from the cache) the kernels of every compiled model and of the RandomRBF generator; returns
    the seconds spent compiling."""
    from connectors import generators
    from stream_moe.events import Event
    from stream_moe.models.registry import build_model
    from stream_moe.predictor import Predictor

    rows = warm_rows(n)
    with CompileClock() as clock:
        for name in WARMED_MODELS:
            predictor = Predictor(build_model(name, seed=0, device="cpu"), name)
            for start in range(0, n, batch):
                predictor.process([Event(id=str(i), x=x, y=y) for i, (x, y) in enumerate(rows[start:start + batch])])
        for _ in generators.generate("rbf_m5", n=100):
            pass
    return clock.seconds


if __name__ == "__main__":
    print(ANNOUNCEMENT, file=sys.stderr, flush=True)
    print(f"compiled in {warm():.1f} s")
