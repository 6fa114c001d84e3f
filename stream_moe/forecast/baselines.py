"""Baseline forecasters, with the interface of `stream_moe.forecast.liquid.LiquidForecaster`: `observe` the latest
value of every series, `forecast` the next h steps (h x series).

>>> f = SeasonalPersistence(season=3)
>>> for v in ([1.0], [2.0], [3.0], [1.5]):
...     f.observe(v)
>>> f.forecast(3)[:, 0].tolist()  # one season ago: 2, 3, then the newest 1.5
[2.0, 3.0, 1.5]
"""

from __future__ import annotations

import collections

import numpy as np
import torch
from river import linear_model, optim, preprocessing, time_series
from torch import nn


class Persistence:
    """Every step ahead is the latest value."""

    def observe(self, values, dt: float | None = None) -> None:
        self.last_ = np.asarray(values, dtype=float)

    def forecast(self, h: int = 1) -> np.ndarray:
        return np.tile(self.last_, (h, 1))


class SeasonalPersistence:
    """Each step ahead is the value one `season` before it (the latest value until a season has been seen)."""

    def __init__(self, season: int):
        self.season = season

    def observe(self, values, dt: float | None = None) -> None:
        if not hasattr(self, "history_"):
            self.history_ = collections.deque(maxlen=self.season)
        self.history_.append(np.asarray(values, dtype=float))

    def forecast(self, h: int = 1) -> np.ndarray:
        if len(self.history_) < self.season:
            return np.tile(self.history_[-1], (h, 1))
        out = list(self.history_)
        for _ in range(h):
            out.append(out[-self.season])
        return np.stack(out[self.season :])


class RetrainedMLP:
    """The incremental learner of the paper: an MLP over the last `lags` values (and, with `season`, the value one
    season before the step ahead), retrained every `retrain_every` steps on the last `window` observations.

    One MLP serves all series (their samples are pooled); each series is standardised with its mean and deviation over
    the training window, frozen until the next retraining. Training continues from the previous weights for `epochs`
    full-batch Adam steps. It forecasts persistence until it has been trained: a retraining due before the window
    holds a season and the lags waits until it does. The step counts default to two seasons (`retrain_every`) and
    two weeks of seasons (`window`), the paper's 96 and 672 at 48 steps a day; without a season, 96 and 672.
    """

    def __init__(
        self,
        lags: int = 8,
        season: int | None = None,
        retrain_every: int | None = None,
        window: int | None = None,
        hidden: int = 32,
        epochs: int = 50,
        lr: float = 1e-2,
        seed: int = 0,
    ):
        self.lags = lags
        self.season = season
        self.retrain_every = retrain_every
        self.window = window
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.seed = seed

    def _features(self, z: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Features to forecast the step after each index in `ends` of z (steps x series): (ends x series) x inputs."""
        columns = [z[ends - k] for k in range(self.lags)]
        if self.season:
            columns.append(z[ends + 1 - self.season])
        return np.stack(columns, axis=-1).reshape(-1, len(columns))

    @property
    def _first(self) -> int:
        """The first index of a window whose next step can be forecast: the lags and a season are behind it."""
        return max(self.lags - 1, (self.season or 0) - 1)

    def observe(self, values, dt: float | None = None) -> None:
        if not hasattr(self, "history_"):
            day = self.season or 48
            self.retrain_every_ = self.retrain_every or 2 * day
            window = self.window or 14 * day
            if window < self._first + 2:
                raise ValueError(f"a window of {window} steps holds no training sample: it needs the lags and a "
                                 f"season ({self._first + 2} steps)")
            self.history_ = collections.deque(maxlen=window)
            self.seen_ = 0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                n_in = self.lags + (1 if self.season else 0)
                self.net_ = nn.Sequential(nn.Linear(n_in, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))
            self.optimizer_ = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
            self.scale_ = None
        self.history_.append(np.asarray(values, dtype=float))
        self.seen_ += 1
        due = self.seen_ % self.retrain_every_ == 0 or self.scale_ is None
        if due and len(self.history_) >= self._first + 2:
            self._retrain()

    def _retrain(self) -> None:
        raw = np.stack(self.history_)
        self.scale_ = (raw.mean(0), raw.std(0) + 1e-8)
        z = (raw - self.scale_[0]) / self.scale_[1]
        ends = np.arange(self._first, len(z) - 1)
        x = torch.as_tensor(self._features(z, ends), dtype=torch.float32)
        y = torch.as_tensor(z[ends + 1].reshape(-1, 1), dtype=torch.float32)
        for _ in range(self.epochs):
            loss = nn.functional.mse_loss(self.net_(x), y)
            self.optimizer_.zero_grad()
            loss.backward()
            self.optimizer_.step()

    @torch.no_grad()
    def forecast(self, h: int = 1) -> np.ndarray:
        if self.scale_ is None:
            return np.tile(self.history_[-1], (h, 1))
        recent = list(self.history_)[-max(self.lags, self.season or 0) :]
        z = list((np.stack(recent) - self.scale_[0]) / self.scale_[1])
        for _ in range(h):
            x = torch.as_tensor(self._features(np.stack(z), np.array([len(z) - 1])), dtype=torch.float32)
            z.append(self.net_(x).numpy()[:, 0].astype(float))
        return np.maximum(np.stack(z[-h:]) * self.scale_[1] + self.scale_[0], 0.0)


class Snarimax:
    """river's SNARIMAX, one model per series (river's time-series models forecast a single series): online
    (seasonal) ARIMA fitted by stochastic gradient, here with a learning rate of 0.001: with river's default (0.01)
    it diverges on some links of the benchmark scenarios (RMSE in the 1e12s on euro28-mild).

    Guarded against divergence, which a burst or a jump across a gap in the timestamps can still start: once `memory`
    values (default two seasons) are remembered, a series whose one-step forecast leaves the band of those values,
    widened by `guard` times their range on either side, is reset, a fresh model learning them again (`resets_`
    counts the resets per series), and every forecast is clipped to the band; forecasts are never below zero. An
    infinite `guard` turns the guard off.

    river's Holt-Winters is not offered: in river 0.26 its additive form initialises the seasonal terms as ratios to
    the level (the multiplicative form's initialisation), so it starts far off and trails persistence for many seasons;
    its multiplicative form divides by a level that a failed link brings to zero.
    """

    def __init__(
        self, p: int = 2, d: int = 1, q: int = 1, season: int | None = None, sp: int = 1, sd: int = 0, lr: float = 0.001,
        memory: int | None = None, guard: float = 1.0,
    ):
        self.p = p
        self.d = d
        self.q = q
        self.season = season
        self.sp = sp
        self.sd = sd
        self.lr = lr
        self.memory = memory
        self.guard = guard

    def _model(self):
        m, sp, sd = (self.season, self.sp, self.sd) if self.season else (1, 0, 0)
        sgd = linear_model.LinearRegression(optimizer=optim.SGD(self.lr), intercept_lr=self.lr)
        return time_series.SNARIMAX(self.p, self.d, self.q, m=m, sp=sp, sd=sd,
                                    regressor=preprocessing.StandardScaler() | sgd)

    def observe(self, values, dt: float | None = None) -> None:
        values = np.asarray(values, dtype=float)
        if not hasattr(self, "models_"):
            self.models_ = [self._model() for _ in values]
            self.recent_ = collections.deque(maxlen=self.memory or 2 * (self.season or 48))
            self.resets_ = np.zeros(len(values), dtype=int)
        self.recent_.append(values)
        for model, v in zip(self.models_, values):
            model.learn_one(float(v))
        if (band := self._band()) is None:
            return
        for i, model in enumerate(self.models_):
            ahead = model.forecast(1)[0]
            if not (np.isfinite(ahead) and band[0][i] <= ahead <= band[1][i]):
                self.models_[i] = self._model()
                for past in self.recent_:
                    self.models_[i].learn_one(float(past[i]))
                self.resets_[i] += 1

    def _band(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Where forecasts may lie, once `memory` values are remembered (None before)."""
        if len(self.recent_) < self.recent_.maxlen or self.guard == np.inf:
            return None
        recent = np.stack(self.recent_)
        low, high = recent.min(0), recent.max(0)
        reach = self.guard * (high - low) + 1e-9 * (1 + np.abs(high))
        return low - reach, high + reach

    def forecast(self, h: int = 1) -> np.ndarray:
        ahead = np.nan_to_num(np.array([m.forecast(h) for m in self.models_], dtype=float).T, nan=0.0)
        band = self._band()
        return np.maximum(ahead, 0.0) if band is None else np.clip(ahead, np.maximum(band[0], 0.0), band[1])
