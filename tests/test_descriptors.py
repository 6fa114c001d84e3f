"""Input descriptors: the pool's descriptors taught and scored together match each taught and scored alone."""

from __future__ import annotations

import copy

import numpy as np

from stream_moe.models.descriptors import InputDescriptor, absorb, scores
from stream_moe.models.features import Frame


def frames_and_batches(seed=0, n_batches=40):
    """Batches of router inputs whose frame moves and widens (new columns appear), as the encoder's do."""
    rng = np.random.default_rng(seed)
    for b in range(n_batches):
        width = 3 + b // 15
        frame = Frame(rng.normal(0, 0.1, width), rng.uniform(0.5, 2.0, width))
        centre = 4.0 if b % 10 >= 7 else 0.0  # some batches from another region: filtered once ready
        yield frame, rng.normal(centre, 1, (32, width))


def test_descriptors_taught_together_equal_each_taught_alone():
    rng = np.random.default_rng(1)
    together = [InputDescriptor(recent=100, absorb_below=4.0), None, InputDescriptor(recent=100),
                InputDescriptor(recent=100, absorb_below=4.0, min_count=200)]
    alone = copy.deepcopy(together)
    for frame, z in frames_and_batches():
        rows = [np.sort(rng.choice(len(z), rng.integers(0, len(z)), replace=False)) for _ in together]
        np.testing.assert_allclose(scores(together, z, frame),
                                   np.column_stack([np.zeros(len(z)) if d is None else d.score(z, frame)
                                                    for d in alone]), rtol=1e-9, atol=1e-9)
        absorb(together, z, frame, rows)
        for d, r in zip(alone, rows):
            if d is not None:
                d.learn(z[r], frame)
    assert together[0].count < together[2].count  # the filter refused the far batches
    for a, b in zip(together, alone):
        if a is not None:
            assert a.count == b.count and a._n_scores == b._n_scores
            np.testing.assert_allclose(a.mean, b.mean, rtol=1e-9)
            np.testing.assert_allclose(a.m2, b.m2, rtol=1e-9)
            np.testing.assert_allclose(a._scores, b._scores, rtol=1e-9)


def test_a_descriptor_wider_than_the_frame_sees_the_missing_columns_at_its_mean():
    d = InputDescriptor()
    d.learn(np.random.default_rng(2).normal(0, 1, (100, 3)), Frame(np.zeros(3), np.ones(3)))
    narrow = np.zeros((1, 2))
    at_mean = np.array([[0.0, 0.0, d.mean[2]]])
    assert d.score(narrow, Frame(np.zeros(2), np.ones(2)))[0] == d.score(at_mean, Frame(np.zeros(3), np.ones(3)))[0]
