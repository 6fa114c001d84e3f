"""Walk-forward evaluation of a forecaster on link loads with failures: observe a step, forecast h steps ahead, score.

Scores: RMSE and MAPE over the whole run (after a warm-up); for each change (a failure or a recovery), RMSE over a
window before and after it, and the recovery time: the steps until the error on the links the change affected most,
averaged over the next `rolling` steps, is back within `tolerance` times (1.1: 10% above) its level before the change.

A forecaster that knows the network (`registry.knows_network`) is told which links are down as soon as a step's
state is known, that is before it forecasts the step (a routing protocol announces a failure before the next load
measurement); one that `uses_demands` observes each step's OD demands with its loads.

>>> import numpy as np
>>> from stream_moe.forecast.baselines import Persistence
>>> loads = np.ones((60, 2))
>>> loads[30:, 0] = 3.0                                    # a jump on link 0 at step 30
>>> r = backtest(Persistence(), loads, [30], warmup=5, window=10, rolling=4)
>>> r.rmse_after(0) > r.rmse_before(0), r.recovery[0]      # one bad forecast, then persistence is right again
(True, 1)
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from stream_moe.forecast.registry import Forecaster, knows_network


@dataclasses.dataclass
class Backtest:
    loads: np.ndarray  # steps x links, the truth
    predictions: np.ndarray  # steps x links, the forecast made `horizon` steps before (NaN where none)
    changes: list[int]
    affected: list[list[int]]  # per change, the links whose load it moved most, most first
    recovery: list[int | None]  # per change, steps to recover (None: not within the steps before the next change)
    warmup: int
    window: int
    ms_per_step: float
    rolling: int = 12
    tolerance: float = 1.1

    def error_on(self, links: list[int]) -> np.ndarray:
        """The RMSE over `links` at every step (NaN where there is no forecast)."""
        return np.sqrt(np.mean((self.predictions[:, links] - self.loads[:, links]) ** 2, axis=1))

    def steps_to_recover(self, links: list[int], start: int, last: int) -> int | None:
        """Steps from `start` until the error on `links`, averaged over the next `rolling` steps, is within
        `tolerance` times its mean over the `window` steps before `start` (after the warm-up); None if not by `last`.
        """
        error = self.error_on(links)
        level = np.mean(error[max(start - self.window, self.warmup) : start])
        for k in range(last - start + 1):
            if np.mean(error[start + k : start + k + self.rolling]) <= self.tolerance * level:
                return k
        return None

    def _rmse(self, start: int, stop: int, links=slice(None)) -> float:
        start = max(start, self.warmup)
        err = self.predictions[start:stop, links] - self.loads[start:stop, links]
        return float(np.sqrt(np.mean(err**2)))

    @property
    def rmse(self) -> float:
        return self._rmse(0, len(self.loads))

    @property
    def mape(self) -> float:
        """Mean absolute percentage error over the loads above 1% of the mean load (failed links carry zero); NaN when
        no load is."""
        true, pred = self.loads[self.warmup :], self.predictions[self.warmup :]
        keep = true > 0.01 * true.mean()
        if not keep.any():
            return float("nan")
        return float(100 * np.mean(np.abs(pred[keep] - true[keep]) / true[keep]))

    def rmse_before(self, i: int) -> float:
        return self._rmse(self.changes[i] - self.window, self.changes[i])

    def rmse_after(self, i: int) -> float:
        return self._rmse(self.changes[i], self.changes[i] + self.window)

    def rmse_after_affected(self, i: int) -> float:
        return self._rmse(self.changes[i], self.changes[i] + self.window, self.affected[i])

    def summary(self) -> dict:
        return {
            "rmse": self.rmse,
            "mape": self.mape,
            "ms_per_step": self.ms_per_step,
            "changes": [
                {
                    "step": c,
                    "affected": self.affected[i],
                    "rmse_before": self.rmse_before(i),
                    "rmse_after": self.rmse_after(i),
                    "rmse_after_affected": self.rmse_after_affected(i),
                    "recovery_steps": self.recovery[i],
                }
                for i, c in enumerate(self.changes)
            ],
        }


def backtest(
    forecaster: Forecaster,
    loads: np.ndarray,
    changes: list[int],
    horizon: int = 1,
    warmup: int = 96,
    window: int = 48,
    rolling: int = 12,
    top: int = 3,
    tolerance: float = 1.1,
    down: np.ndarray | None = None,
    demands: np.ndarray | None = None,
    spans: np.ndarray | None = None,
) -> Backtest:
    """Run `forecaster` over `loads` (steps x links); `changes` are the steps where failures or recoveries happen.

    `down` (steps x links, True where a link is down) goes to a forecaster that knows the network, `demands` (steps
    x pairs) to one that uses them, `spans` (the time since the previous step, in steps) to every forecaster as `dt`.
    Refused (ValueError) when a score would cover no step: a horizon under 1, no step after the warm-up, or a change
    with no scored step before it (in the warm-up) or after it.
    """
    steps = len(loads)
    check_windows(steps, changes, horizon, warmup, window)
    aware = knows_network(forecaster) and down is not None
    if getattr(forecaster, "uses_demands", False) and demands is None:
        raise ValueError(f"{type(forecaster).__name__} forecasts from OD demands: give them")
    predictions = np.full(loads.shape, np.nan)
    state: frozenset[int] = frozenset()  # forecasters start with every link up
    start = time.perf_counter()
    for t in range(steps - horizon):
        if aware and (now := frozenset(np.flatnonzero(down[t]).tolist())) != state:  # down from the first step
            forecaster.set_links_down(now)
            state = now
        dt = None if spans is None or t == 0 else float(spans[t])
        if demands is not None and getattr(forecaster, "uses_demands", False):
            forecaster.observe(loads[t], dt, demands=demands[t])
        else:
            forecaster.observe(loads[t], dt)
        if aware and (now := frozenset(np.flatnonzero(down[t + 1]).tolist())) != state:  # known before forecasting
            forecaster.set_links_down(now)
            state = now
        predictions[t + horizon] = forecaster.forecast(horizon)[-1]
    ms_per_step = 1000 * (time.perf_counter() - start) / max(steps - horizon, 1)

    result = Backtest(loads, predictions, list(changes), [], [], warmup + horizon, window, ms_per_step, rolling,
                      tolerance)
    for i, c in enumerate(changes):
        moved = np.abs(loads[c : c + window].mean(0) - loads[max(c - window, 0) : c].mean(0))
        links = np.argsort(-moved)[:top].tolist()
        result.affected.append(links)
        end = (changes[i + 1] if i + 1 < len(changes) else steps) - rolling
        result.recovery.append(result.steps_to_recover(links, c, end))
    return result


def check_windows(steps: int, changes: list[int], horizon: int, warmup: int, window: int) -> None:
    """Refuse (ValueError, saying what to change) a run whose scores would cover no step.

    >>> check_windows(300, [100], horizon=1, warmup=96, window=48)
    >>> check_windows(300, [50], horizon=1, warmup=96, window=48)
    Traceback (most recent call last):
    ...
    ValueError: the change at step 50 leaves no scored step before it (scores start at step 97, after the warm-up)
    """
    if horizon < 1:
        raise ValueError(f"the horizon is {horizon} steps: forecasts are at least 1 step ahead")
    if window < 1:
        raise ValueError(f"the window around a change is {window} steps: it needs at least 1")
    if steps <= warmup + horizon:
        raise ValueError(f"{steps} steps, but the first {warmup} warm the forecaster up: at least "
                         f"{warmup + horizon + 1} are needed to score a {horizon}-step forecast")
    for c in changes:
        if c <= warmup + horizon:
            raise ValueError(f"the change at step {c} leaves no scored step before it (scores start at step "
                             f"{warmup + horizon}, after the warm-up)")
        if c >= steps:
            raise ValueError(f"the change at step {c} leaves no scored step after it (the last is {steps - 1})")
