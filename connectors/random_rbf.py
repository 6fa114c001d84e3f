"""river's `RandomRBFDrift`, instance for instance, with the centroids moved by a compiled loop.

river moves every drifting centroid in Python before each instance (50 centroids x 10 features: 500 updates), which
made the generator about half of an RBF replay's time. Here the random draws are river's (the same `random.Random`
calls in the same order), the centroids and their speeds are built as river builds them, and the movement and the
instance's arithmetic run compiled, operation for operation as river does them, so the streams are bit-identical
(tested against river).

>>> from river.datasets import synth
>>> ours = drifting_rbf(seed_model=1, seed_sample=2, change_speed=1e-3)
>>> river_stream = iter(synth.RandomRBFDrift(seed_model=1, seed_sample=2, change_speed=1e-3))
>>> all(next(ours) == next(river_stream) for _ in range(1000))
True
"""

from __future__ import annotations

import bisect
import itertools
import random
import typing

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _draw_chunk(centres, speeds, std_devs, n_drift, change_speed, index, directions, gauss, half, out):
    """For each instance of the chunk: move the drifting centroids one step (bouncing off 0 and 1), then place the
    instance around its centroid: `directions` are its uniform draws scaled to [-1, 1), `gauss` the normal draw of its
    distance. Writes the instances into `out`; `centres` and `speeds` keep the state between chunks.

    `half` is 0.5, passed in so that `** half` stays a call to libm's pow, as in Python: with the constant, the
    compiler makes it a square root, which differs from pow in the last bit about once in 1,400 values."""
    n_features = centres.shape[1]
    for t in range(len(index)):
        for i in range(n_drift):
            for j in range(n_features):
                centres[i, j] += speeds[i, j] * change_speed
                if centres[i, j] > 1.0 or centres[i, j] < 0.0:
                    centres[i, j] = 1.0 if centres[i, j] > 1.0 else 0.0
                    speeds[i, j] = -speeds[i, j]
        c = index[t]
        magnitude = 0.0
        for j in range(n_features):
            magnitude += directions[t, j] * directions[t, j]
        magnitude = magnitude ** half
        scale = gauss[t] * std_devs[c] / magnitude
        for j in range(n_features):
            out[t, j] = centres[c, j] + directions[t, j] * scale


def drifting_rbf(
    seed_model: int,
    seed_sample: int,
    n_classes: int = 2,
    n_features: int = 10,
    n_centroids: int = 50,
    change_speed: float = 0.0,
    n_drift_centroids: int = 50,
    chunk: int = 1024,
) -> typing.Iterator[tuple[dict[int, float], int]]:
    """The (x, y) pairs of `river.datasets.synth.RandomRBFDrift` with these parameters, without end; `chunk`
    instances are computed at a time."""
    model = random.Random(seed_model)
    centres, labels, std_devs, weights = [], [], [], []
    for _ in range(n_centroids):
        centres.append([model.random() for _ in range(n_features)])
        labels.append(model.randint(0, n_classes - 1))
        std_devs.append(model.random())
        weights.append(model.random())
    n_drift = min(n_drift_centroids, n_centroids)
    model = random.Random(seed_model)  # river draws the speeds from a fresh generator with the same seed
    speeds = []
    for _ in range(n_drift):
        speed = [model.random() for _ in range(n_features)]
        norm = 0.0
        for s in speed:
            norm += s * s
        norm = norm ** 0.5
        speeds.append([s / norm for s in speed])

    centres_a = np.array(centres, dtype=float)
    speeds_a = np.array(speeds, dtype=float).reshape(n_drift, n_features)
    std_a = np.array(std_devs, dtype=float)
    cumulative = list(itertools.accumulate(weights))  # river's running sum, term by term
    total = sum(weights)
    last = n_centroids - 1
    sample = random.Random(seed_sample)
    draw, gauss, features = sample.random, sample.gauss, range(n_features)
    out = np.empty((chunk, n_features))
    while True:
        index, units, normals = [], [], []
        for _ in range(chunk):
            index.append(min(bisect.bisect_right(cumulative, draw() * total), last))
            units.extend([draw() for _ in features])
            normals.append(gauss(0, 1))
        _draw_chunk(centres_a, speeds_a, std_a, n_drift, change_speed, np.array(index),
                    np.array(units).reshape(chunk, n_features) * 2.0 - 1.0, np.array(normals), 0.5, out)
        for row, c in zip(out.tolist(), index):
            yield dict(zip(features, row)), labels[c]
