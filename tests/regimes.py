"""Input regimes for tests of self-expansion: one Gaussian region per regime, each with its own linear concept."""

from __future__ import annotations

import numpy as np


def regimes(sequence, per_regime, seed=0, n_features=6):
    """`per_regime` instances of each regime in `sequence` (centres far apart): input shifts that grow a
    self-expanding pool and, past its budget, prune it."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(max(sequence) + 1, n_features))
    normals = rng.normal(size=(max(sequence) + 1, n_features))
    data = []
    for r in sequence:
        x = centres[r] + rng.normal(size=(per_regime, n_features))
        y = ((x - centres[r]) @ normals[r] > 0).tolist()
        data += [({f"f{i}": float(v) for i, v in enumerate(row)}, label) for row, label in zip(x, y)]
    return data
