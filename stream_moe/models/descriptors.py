"""Representation descriptors (after SEMA, Wang et al. 2025): what inputs an expert was trained on, and how novel a
new input is to it.

A descriptor is a running diagonal Gaussian over the router's standardised inputs. Its raw novelty score for an input
is the mean squared standardised distance to that Gaussian (about 1 for inputs like the ones it learned); the score
is then z-scored against the raw scores of the descriptor's own most recent training inputs (under the statistics that
include them), so that "2" means "two
standard deviations more novel than what this expert usually sees", whatever the expert's region looks like.
"""

from __future__ import annotations

import numpy as np


class InputDescriptor:
    """Running mean/variance of an expert's training inputs and a ring of its recent novelty scores.

    >>> rng = np.random.default_rng(0)
    >>> d = InputDescriptor(recent=500)
    >>> d.learn(rng.normal(0, 1, size=(2000, 3)).astype(np.float32))
    >>> usual, novel = d.score(rng.normal(0, 1, size=(200, 3))), d.score(rng.normal(4, 1, size=(200, 3)))
    >>> bool(abs(usual.mean()) < 0.5), bool(novel.mean() > 5)
    (True, True)
    """

    def __init__(self, recent: int = 500, min_count: int = 30, absorb_below: float | None = None):
        self.recent = recent
        self.min_count = min_count
        self.absorb_below = absorb_below
        self.count = 0
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)
        self._scores = np.zeros(recent)
        self._n_scores = 0

    def _fit_width(self, z: np.ndarray) -> np.ndarray:
        width = z.shape[1]
        if width > len(self.mean):  # new input columns (features or categories) appeared: unseen so far, mean 0
            self.mean = np.pad(self.mean, (0, width - len(self.mean)))
            self.m2 = np.pad(self.m2, (0, width - len(self.m2)))
        return np.pad(z, ((0, 0), (0, len(self.mean) - width))) if width < len(self.mean) else z

    def _raw(self, z: np.ndarray) -> np.ndarray:
        var = self.m2 / max(self.count - 1, 1) + 1e-2  # the floor keeps constant columns from exploding
        return np.mean((z - self.mean) ** 2 / var, axis=1)

    @property
    def ready(self) -> bool:
        """Scores mean something: `min_count` inputs seen."""
        return self.count >= self.min_count

    @property
    def mature(self) -> bool:
        """Statistics settled: as many inputs seen as the ring of recent scores holds."""
        return self.count >= self.recent

    def score(self, z: np.ndarray) -> np.ndarray:
        """z-scored novelty of each row (0 for every row until the descriptor has seen `min_count` inputs)."""
        if not self.ready:
            return np.zeros(len(z))
        z = self._fit_width(np.asarray(z, dtype=np.float64))
        recent = self._scores[: min(self._n_scores, self.recent)]
        return (self._raw(z) - recent.mean()) / (recent.std() + 1e-6)

    def learn(self, z: np.ndarray) -> None:
        """Absorb these training inputs, then remember their scores as the descriptor's recent normal.

        With `absorb_below`, a mature descriptor ignores inputs more novel than that: an expert's descriptor keeps
        describing its own region even when the router sends it inputs from elsewhere (as SEMA freezes descriptors).
        """
        if z.shape[1] == 0:  # encoded before any statistics existed (a model's first batch): nothing to describe
            return
        z = self._fit_width(np.asarray(z, dtype=np.float64))
        if self.absorb_below is not None and self.mature:
            z = z[self.score(z) <= self.absorb_below]
            if not len(z):
                return
        n_b = len(z)
        mean_b = z.mean(axis=0)
        delta = mean_b - self.mean
        total = self.count + n_b
        self.m2 += ((z - mean_b) ** 2).sum(axis=0) + delta**2 * self.count * n_b / total
        self.mean += delta * n_b / total
        self.count = total
        scores = self._raw(z[-self.recent :])
        slots = (self._n_scores + np.arange(len(scores))) % self.recent
        self._scores[slots] = scores
        self._n_scores += len(scores)
