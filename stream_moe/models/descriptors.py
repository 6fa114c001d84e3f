"""Representation descriptors (after SEMA, Wang et al. 2025): what inputs an expert was trained on, and how novel a
new input is to it.

A descriptor is a running diagonal Gaussian over the router's inputs, kept in the features' own units: the router's
standardisation moves as new regions of the input space appear, and a descriptor kept in standardised units would
move with it, until an expert no longer recognises the inputs it learned when they come back. Its raw novelty score
for an input is the mean squared standardised distance to that Gaussian (about 1 for inputs like the ones it learned);
the score is then z-scored against the raw scores of the descriptor's own most recent training inputs (under the
statistics that include them), so that "2" means "two standard deviations more novel than what this expert usually
sees", whatever the expert's region looks like.
"""

from __future__ import annotations

import numpy as np

from stream_moe.models.features import Frame


class InputDescriptor:
    """Running mean/variance of an expert's training inputs and a ring of its recent novelty scores.

    >>> rng = np.random.default_rng(0)
    >>> d, frame = InputDescriptor(recent=500), Frame(np.zeros(3), np.ones(3))
    >>> d.learn(rng.normal(0, 1, size=(2000, 3)), frame)
    >>> usual, novel = d.score(rng.normal(0, 1, size=(200, 3)), frame), d.score(rng.normal(4, 1, size=(200, 3)), frame)
    >>> bool(abs(usual.mean()) < 0.5), bool(novel.mean() > 5)
    (True, True)

    The same inputs standardised differently (the encoder has since seen other regions) score the same:

    >>> later = Frame(np.full(3, 2.0), np.full(3, 3.0))
    >>> bool(abs(d.score((rng.normal(0, 1, size=(200, 3)) - 2.0) / 3.0, later).mean()) < 0.5)
    True
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

    def _values(self, z: np.ndarray, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """Rows z of `frame` in the features' units, and the frame's scale, both as wide as the descriptor."""
        u, scale = frame.values(np.asarray(z, dtype=np.float64)), frame.scale
        width = u.shape[1]
        if width > len(self.mean):  # new input columns (features or categories) appeared: never seen here
            self.mean = np.pad(self.mean, (0, width - len(self.mean)))
            self.m2 = np.pad(self.m2, (0, width - len(self.m2)))
        elif width < len(self.mean):  # encoded before columns it has seen existed: at its mean there
            u = np.concatenate([u, np.broadcast_to(self.mean[width:], (len(u), len(self.mean) - width))], axis=1)
            scale = np.pad(scale, (0, len(self.mean) - width), constant_values=1.0)
        return u, scale

    def _raw(self, u: np.ndarray, scale: np.ndarray) -> np.ndarray:
        # the floor (a hundredth of the column's variance over the whole stream) keeps constant columns from exploding
        var = self.m2 / max(self.count - 1, 1) + 1e-2 * scale**2
        return np.mean((u - self.mean) ** 2 / var, axis=1)

    @property
    def ready(self) -> bool:
        """Scores mean something: `min_count` inputs seen."""
        return self.count >= self.min_count

    @property
    def mature(self) -> bool:
        """Statistics settled: as many inputs seen as the ring of recent scores holds."""
        return self.count >= self.recent

    def score(self, z: np.ndarray, frame: Frame) -> np.ndarray:
        """z-scored novelty of each row of z, router inputs encoded in `frame` (0 for every row until the descriptor
        has seen `min_count` inputs)."""
        if not self.ready:
            return np.zeros(len(z))
        return self._novelty(*self._values(z, frame))

    def _novelty(self, u: np.ndarray, scale: np.ndarray) -> np.ndarray:
        recent = self._scores[: min(self._n_scores, self.recent)]
        return (self._raw(u, scale) - recent.mean()) / (recent.std() + 1e-6)

    def learn(self, z: np.ndarray, frame: Frame) -> None:
        """Absorb these training inputs, then remember their scores as the descriptor's recent normal.

        With `absorb_below`, a ready descriptor ignores inputs more novel than that: an expert's descriptor keeps
        describing its own region even when the router sends it inputs from elsewhere (as SEMA freezes descriptors),
        from its first `min_count` inputs on, so that a young expert is not taken for the owner of a new region.
        """
        if z.shape[1] == 0:  # encoded before any statistics existed (a model's first batch): nothing to describe
            return
        u, scale = self._values(z, frame)
        if self.absorb_below is not None and self.ready:
            u = u[self._novelty(u, scale) <= self.absorb_below]
            if not len(u):
                return
        n_b = len(u)
        mean_b = u.mean(axis=0)
        delta = mean_b - self.mean
        total = self.count + n_b
        self.m2 += ((u - mean_b) ** 2).sum(axis=0) + delta**2 * self.count * n_b / total
        self.mean += delta * n_b / total
        self.count = total
        scores = self._raw(u[-self.recent :], scale)
        slots = (self._n_scores + np.arange(len(scores))) % self.recent
        self._scores[slots] = scores
        self._n_scores += len(scores)
