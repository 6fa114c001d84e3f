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
        self._normal: tuple[float, float] | None = None

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
        return scores([self], z, frame)[:, 0]

    def learn(self, z: np.ndarray, frame: Frame) -> None:
        """Absorb these training inputs, then remember their scores as the descriptor's recent normal.

        With `absorb_below`, a ready descriptor ignores inputs more novel than that: an expert's descriptor keeps
        describing its own region even when the router sends it inputs from elsewhere (as SEMA freezes descriptors),
        from its first `min_count` inputs on, so that a young expert is not taken for the owner of a new region.
        """
        absorb([self], z, frame, [np.arange(len(z))])

    def _widen(self, width: int) -> None:
        """New input columns (features or categories) appeared: never seen here."""
        if width > len(self.mean):
            self.mean = np.pad(self.mean, (0, width - len(self.mean)))
            self.m2 = np.pad(self.m2, (0, width - len(self.m2)))

    def _remember(self, raw: np.ndarray) -> None:
        """The raw scores of the inputs just absorbed (the last `recent` of them) become the recent normal."""
        slots = (self._n_scores + np.arange(len(raw))) % self.recent
        self._scores[slots] = raw
        self._n_scores += len(raw)
        self._normal = None


# The pool's descriptors are scored and taught together: the same arithmetic as one descriptor at a time, stacked.


def _groups(descriptors, z: np.ndarray, frame: Frame):
    """The present descriptors' positions grouped by width, each group with the rows z of `frame` in the features'
    units, (1 or G, B, W), and the scale, (W,). Normally one group as wide as the frame; a descriptor wider than the
    frame (the rows were encoded before columns it has seen existed) sees them at its mean there."""
    u = frame.values(np.asarray(z, dtype=np.float64))
    width = u.shape[1]
    by_width: dict[int, list[int]] = {}
    for e, d in enumerate(descriptors):
        if d is not None:
            d._widen(width)
            by_width.setdefault(len(d.mean), []).append(e)
    for w, members in by_width.items():
        if w == width:
            yield members, u[None], frame.scale
        else:
            extra = [np.broadcast_to(descriptors[e].mean[width:], (len(u), w - width)) for e in members]
            yield members, np.stack([np.concatenate([u, x], axis=1) for x in extra]), np.pad(
                frame.scale, (0, w - width), constant_values=1.0)


def _raw(u: np.ndarray, mean: np.ndarray, m2: np.ndarray, count: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Raw novelty (G, B): the mean squared standardised distance of each row u (1 or G, B, W) to each descriptor's
    Gaussian (mean, m2: (G, W); count: (G,))."""
    # the floor (a hundredth of the column's variance over the whole stream) keeps constant columns from exploding
    variance = m2 / np.maximum(count - 1, 1)[:, None] + 1e-2 * scale**2
    return np.mean((u - mean[:, None]) ** 2 / variance[:, None], axis=2)


def _normals(ds: list[InputDescriptor]) -> None:
    """Mean and spread of each descriptor's recent training scores (what z-scores the raw ones), computed once per
    `learn`."""
    for d in ds:
        if d._normal is None:
            recent = d._scores[: min(d._n_scores, d.recent)]
            d._normal = (float(recent.mean()), float(recent.std() + 1e-6))


def _novelty(ds: list[InputDescriptor], u: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """z-scored novelty (G, B) of ready descriptors."""
    _normals(ds)
    centre, spread = np.array([d._normal for d in ds]).T
    mean, m2 = np.stack([d.mean for d in ds]), np.stack([d.m2 for d in ds])
    raw = _raw(u, mean, m2, np.array([d.count for d in ds]), scale)
    return (raw - centre[:, None]) / spread[:, None]


def _take(u: np.ndarray, picked: list[int]) -> np.ndarray:
    """The rows of a group's members `picked` (positions in the group), when each member has its own."""
    return u if len(u) == 1 else u[picked]


def scores(descriptors: list[InputDescriptor | None], z: np.ndarray, frame: Frame) -> np.ndarray:
    """Each descriptor's `score` of the rows z (router inputs encoded in `frame`), shape (B, E); 0 for a missing or
    not yet ready one.

    >>> rng = np.random.default_rng(1)
    >>> frame, ds = Frame(np.zeros(2), np.ones(2)), [InputDescriptor(), None, InputDescriptor()]
    >>> ds[0].learn(rng.normal(0, 1, (100, 2)), frame); ds[2].learn(rng.normal(5, 1, (100, 2)), frame)
    >>> out = scores(ds, rng.normal(0, 1, (4, 2)), frame)
    >>> bool((abs(out[:, 0]) < 3).all()), out[:, 1].tolist(), bool((out[:, 2] > 5).all())
    (True, [0.0, 0.0, 0.0, 0.0], True)
    """
    out = np.zeros((len(z), len(descriptors)))
    for members, u, scale in _groups(descriptors, z, frame):
        ready = [g for g, e in enumerate(members) if descriptors[e].ready]
        if ready:
            out[:, [members[g] for g in ready]] = _novelty(
                [descriptors[members[g]] for g in ready], _take(u, ready), scale).T
    return out


def absorb(descriptors: list[InputDescriptor | None], z: np.ndarray, frame: Frame, rows: list) -> None:
    """Each present descriptor e learns the rows `rows[e]` (indices, in order) of z, router inputs encoded in
    `frame`, as `InputDescriptor.learn` does: filtered by `absorb_below` once ready, merged into its mean and
    variance (Chan's update), their scores remembered."""
    if z.shape[1] == 0:  # encoded before any statistics existed (a model's first batch): nothing to describe
        return
    for members, u, scale in _groups(descriptors, z, frame):
        ds = [descriptors[e] for e in members]
        taken = np.zeros((len(ds), len(z)), dtype=bool)
        for g, e in enumerate(members):
            taken[g, rows[e]] = True
        filtering = [g for g, d in enumerate(ds) if d.absorb_below is not None and d.ready]
        if filtering:
            novel = _novelty([ds[g] for g in filtering], _take(u, filtering), scale)
            taken[filtering] &= novel <= np.array([ds[g].absorb_below for g in filtering])[:, None]
        n_b = taken.sum(axis=1)
        live = np.flatnonzero(n_b).tolist()
        if not live:
            continue
        ds, taken, n_b, u = [ds[g] for g in live], taken[live], n_b[live], _take(u, live)
        weight = taken[:, :, None]
        count = np.array([d.count for d in ds])
        mean = np.stack([d.mean for d in ds])
        mean_b = (u * weight).sum(axis=1) / n_b[:, None]
        delta = mean_b - mean
        total = count + n_b
        m2 = np.stack([d.m2 for d in ds]) + (((u - mean_b[:, None]) ** 2) * weight).sum(axis=1)
        m2 += delta**2 * (count * n_b / total)[:, None]
        mean += delta * (n_b / total)[:, None]
        for g, d in enumerate(ds):
            d.mean, d.m2, d.count = mean[g], m2[g], int(total[g])
        raw = _raw(u, mean, m2, total, scale)
        for g, d in enumerate(ds):
            d._remember(raw[g, taken[g]][-d.recent :])
