"""A liquid neural network (CfC or LTC cell) that forecasts every series of a network at once and keeps learning.

All series (links) are one batch: a step of the whole network is one forward pass of the cell, whatever the number of
links. The network forecasts the next *change* of each series, in units of that series' typical change (an
exponentially weighted mean of its absolute changes, outliers clipped), from two inputs per series: its latest change
and, when `season` is given, its change at the same time one season ago. Working on changes, not levels, makes a
forecaster that a sudden shift of level (a failure re-routing traffic) disturbs for one step, not until its statistics
have caught up. The hidden state is carried from step to step.

Online adaptation: after each observation, one gradient step on the last `window` steps (truncated backpropagation
through time, starting from the hidden state carried `window` steps ago). After a link failure shifts the loads, the
network thus keeps fitting the new regime at once, where a periodically retrained learner waits for its next round.

>>> import numpy as np
>>> f = LiquidForecaster(season=24, seed=0)
>>> t = np.arange(600)
>>> load = lambda t: 5 + np.sin(2 * np.pi * t / 24)
>>> for v in np.stack([load(t), 2 * load(t + 6)], axis=1):
...     f.observe(v)
>>> f.forecast(2).shape
(2, 2)
>>> bool(abs(f.forecast(1)[0, 0] - load(600)) < 0.5 * abs(load(600) - load(599)))  # beats persistence
True
"""

from __future__ import annotations

import collections

import numpy as np
import torch
from torch import nn

from stream_moe.devices import resolve_device
from stream_moe.forecast.cells import CELLS


class LiquidForecaster:
    """Parameters
    ----------
    cell: ``cfc`` or ``ltc``.
    hidden: neurons of the cell.
    window: steps of the recent window each online update learns from (0: no online learning).
    lr: Adam's learning rate of the online updates.
    season: steps per season (e.g. a day) for the seasonal inputs; None leaves them out (zero).
    lags: the latest changes that are inputs (1: the latest alone).
    seasons: past seasons whose change at the same time of day is an input.
    spread: steps either side of each seasonal change that are inputs too.
    decay: weight of a new change in each series' typical change.
    clip: changes are clipped to this many typical changes.
    nonnegative: forecasts below zero become zero (loads and demands; not residuals).
    device: ``auto``, ``cpu`` or ``cuda``.
    seed: seed of the initial weights.

    Every series gets ``lags + seasons * (2 * spread + 1)`` inputs. More lags and seasons let the cell average out
    noise that a single change carries: forecasting the simulator's OD demands (5% noise), 16 lags and two seasons
    with a spread of one bring od-cfc's RMSE from 0.384 to 0.299 on euro28-mild and from 0.075 to 0.068 on
    abilene-mild (means over seeds 3-5, `benchmarks/forecast_suite.py`, results in
    benchmarks/results/forecast_network.jsonl).
    """

    def __init__(
        self,
        cell: str = "cfc",
        hidden: int = 16,
        window: int = 8,
        lr: float = 3e-3,
        season: int | None = None,
        lags: int = 1,
        seasons: int = 1,
        spread: int = 0,
        decay: float = 0.01,
        clip: float = 5.0,
        nonnegative: bool = True,
        device: str = "auto",
        seed: int = 0,
    ):
        self.cell = cell
        self.hidden = hidden
        self.window = window
        self.lr = lr
        self.season = season
        self.lags = lags
        self.seasons = seasons
        self.spread = spread
        self.decay = decay
        self.clip = clip
        self.nonnegative = nonnegative
        self.device = device
        self.seed = seed

    def _build(self, values: np.ndarray) -> None:
        n = len(values)
        self.device_ = resolve_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.cell_ = CELLS[self.cell](self.lags + self.seasons * (2 * self.spread + 1), self.hidden)
            self.head_ = nn.Linear(self.hidden, 1)
        self.cell_.to(self.device_)
        self.head_.to(self.device_)
        self.optimizer_ = torch.optim.Adam([*self.cell_.parameters(), *self.head_.parameters()], lr=self.lr, fused=True)
        self.typical_ = np.zeros(n)  # exponentially weighted mean absolute change, before bias correction
        self.count_ = 0
        # raw values (the first twice: a first change of zero), time spans and hidden states, newest last
        back = max(self.lags - 1, self.seasons * self.season + self.spread if self.season else 0)
        self.values_ = collections.deque([values], maxlen=self.window + 3 + back)
        self.spans_ = collections.deque(maxlen=self.window + 1)
        self.states_ = collections.deque([torch.zeros(n, self.hidden, device=self.device_)], maxlen=self.window + 2)

    @property
    def scale_(self) -> np.ndarray:
        return self.typical_ / (1 - (1 - self.decay) ** max(self.count_, 1)) + 1e-8

    def _changes(self, v: np.ndarray) -> np.ndarray:
        """The changes of the values v, in typical changes and clipped: steps x series."""
        return np.clip(np.diff(v, axis=0) / self.scale_, -self.clip, self.clip)

    def _inputs(self, v: np.ndarray, d: np.ndarray, steps: int) -> np.ndarray:
        """Inputs of the last `steps` steps, from the values v and their changes d (d[i] leads from v[i] to v[i+1]):
        series x steps x inputs, the last `lags` changes, newest first, then for each of the last `seasons` seasons
        the change one season before the next step (and `spread` steps either side of it), scaled by how the level
        moved since then, so that a link whose load a failure doubled, or took away, expects its daily swing doubled,
        or gone. An input before the first change is zero."""
        i = np.arange(len(d) - steps, len(d))
        columns = [np.zeros((steps, d.shape[1])) for _ in range(self.lags + self.seasons * (2 * self.spread + 1))]
        for lag in range(self.lags):
            seen = i - lag >= 0
            columns[lag][seen] = d[i[seen] - lag]
        if self.season:
            offsets = [k * self.season - o for k in range(1, self.seasons + 1) for o in range(-self.spread, self.spread + 1)]
            for column, offset in zip(columns[self.lags :], offsets):
                back = i + 1 - offset
                seen = back >= 0
                now, back = i[seen] + 1, back[seen]
                ratio = np.divide(v[now], v[back], out=np.ones((len(back), d.shape[1])), where=v[back] > 0)
                column[seen] = d[back] * np.clip(ratio, 0, self.clip)
        return np.stack(columns, axis=2).transpose(1, 0, 2)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=self.device_)

    def observe(self, values, dt: float | None = None) -> None:
        """Learn the latest value of every series; `dt`, the time since the previous observation in steps (1 when
        sampling is regular)."""
        values = np.asarray(values, dtype=float)
        if not hasattr(self, "cell_"):
            self._build(values)
        change = np.abs(values - self.values_[-1])
        if self.count_ > 1 / self.decay:
            change = np.minimum(change, self.clip * self.scale_)
        self.typical_ = (1 - self.decay) * self.typical_ + self.decay * change
        self.count_ += 1
        self.values_.append(values)
        self.spans_.append(1.0 if dt is None else float(dt))
        v = np.stack(self.values_)
        d = self._changes(v)
        regular = all(span == 1.0 for span in self.spans_)  # the cells skip the time spans' work when all are 1
        spans = None if regular else self._tensor(np.array(self.spans_)).expand(len(values), -1)
        adapt = self.window and len(self.states_) + 1 >= self.states_.maxlen
        inputs = self._tensor(self._inputs(v, d, self.window + 1 if adapt else 1))  # the newest step's last
        with torch.no_grad():
            self.states_.append(self.cell_(inputs[:, -1], self.states_[-1], 1.0 if regular else spans[:, -1:]))
        if adapt:
            window_spans = None if regular else spans[:, -self.window - 1 : -1]
            self._adapt(inputs[:, :-1], self._tensor(d[-self.window :].T), window_spans)

    def _adapt(self, inputs: torch.Tensor, target: torch.Tensor, spans: torch.Tensor | None) -> None:
        """One gradient step on the last `window` one-step forecasts (their inputs, the changes they forecast and
        their time spans, None when all are 1), from the state carried before them."""
        self.cell_.fit_window(inputs, self.states_[0], spans, self.head_, target)
        self.optimizer_.step()

    @torch.no_grad()
    def forecast(self, h: int = 1) -> np.ndarray:
        """The next h values of every series (h x series), each step's forecast change fed back as the next input."""
        v = np.stack(self.values_)
        d = self._changes(v) if h > 1 else None  # inputs of the steps after the first
        state = self.states_[-1]
        for k in range(h):
            change = self.head_(state).squeeze(-1).cpu().numpy().astype(float)
            level = v[-1] + change * self.scale_
            if self.nonnegative and (level < 0).any():
                level = np.maximum(level, 0.0)
                change = (level - v[-1]) / self.scale_
            v = np.concatenate([v, level[None]])
            if k + 1 < h:
                d = np.concatenate([d, change[None]])
                state = self.cell_(self._tensor(self._inputs(v, d, 1)[:, 0]), state, 1.0)
        return v[-h:]

    @torch.no_grad()
    def rewrite_history(self, transform) -> None:
        """Replace the remembered values by ``transform(values)`` (steps x series in, the same shape out), e.g. the
        loads the past would have carried under a new routing; each series' typical change follows its rewritten
        changes, and the recent hidden states are run again from the oldest one kept, so that the next forecasts
        continue from the rewritten past. Nothing is learned from it."""
        if not hasattr(self, "cell_"):
            return
        before = np.stack(self.values_)
        after = np.asarray(transform(before), dtype=float)
        moved, moved_now = np.abs(np.diff(before, axis=0)).mean(0), np.abs(np.diff(after, axis=0)).mean(0)
        self.typical_ = self.typical_ * np.divide(moved_now, moved, out=np.ones_like(moved), where=moved > 0)
        self.values_ = collections.deque(after, maxlen=self.values_.maxlen)
        steps = len(self.states_) - 1
        if steps == 0:
            return
        spans = None
        if any(span != 1.0 for span in list(self.spans_)[-steps:]):
            spans = self._tensor(np.array(list(self.spans_)[-steps:])).expand(len(after[0]), -1)
        inputs = self._tensor(self._inputs(after, self._changes(after), steps))
        states = self.cell_.run(inputs, self.states_[0], spans)
        self.states_ = collections.deque([self.states_[0], *(s.clone() for s in states.unbind(1))],
                                         maxlen=self.states_.maxlen)
