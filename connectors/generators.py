"""The synthetic drift benchmarks of DriftMoE, built from river's generators, reproducible from a seed.

At the benchmark length of 1,000,000 the drifts are centred at 250k, 500k and 750k, with width 50 (abrupt) or 50,000
(gradual), as in the paper. A shorter `n` compresses the same schedule (drifts at n/4, n/2, 3n/4, gradual width n/20),
so a short run still crosses every concept.
"""

from __future__ import annotations

import functools
import itertools
import math
import random

import numpy as np

from river.datasets import synth

from connectors.random_rbf import drifting_rbf

BENCHMARK_LENGTH = 1_000_000
LED_DRIFTING_ATTRIBUTES = (1, 3, 5, 7)
SEA_VARIANTS = (0, 1, 3, 0)  # SEA functions 1 -> 2 -> 4 -> 1 (thresholds 8, 9, 9.5, 8)


def drift_schedule(n: int, gradual: bool) -> tuple[list[int], int]:
    """Drift centres and width for a stream of length n."""
    centres = [n // 4, n // 2, 3 * n // 4]
    return centres, (n // 20 if gradual else 50)


def concept_drift(stream, drift_stream, position: int, width: int, seed: int):
    """river's `ConceptDriftStream` (same draws, same sigmoid), without its overflow: river evaluates
    exp(-4 (t - p) / w) directly, which overflows once t is more than ~177 widths before the centre (width 50 at
    position 250,000), so the abrupt 1M benchmarks cannot be generated with it.
    """
    rng = random.Random(seed)
    before, after = iter(stream), iter(drift_stream)
    for t in itertools.count(1):
        v = -4.0 * (t - position) / width
        p_drift = 0.0 if v > 700.0 else 1.0 / (1.0 + math.exp(v))
        try:
            yield next(before) if rng.random() > p_drift else next(after)
        except StopIteration:
            return


def _chain(concepts: list, n: int, gradual: bool, seed: int):
    """Concepts one after another through nested concept drifts.

    As in river and MOA, positions count per stream and a nested stream only advances when it is drawn from, so each
    nesting level takes the distance between consecutive centres as its position.
    """
    centres, width = drift_schedule(n, gradual)
    gaps = [centres[0]] + [b - a for a, b in zip(centres, centres[1:])]
    stream = concepts[-1]
    for i in range(len(concepts) - 2, -1, -1):
        stream = concept_drift(concepts[i], stream, position=gaps[i], width=width, seed=seed + 100 + i)
    return stream


def led(n: int, seed: int, gradual: bool):
    concepts = [
        synth.LEDDrift(seed=seed + i, noise_percentage=0.1, irrelevant_features=True, n_drift_features=k)
        for i, k in enumerate(LED_DRIFTING_ATTRIBUTES)
    ]
    return _chain(concepts, n, gradual, seed)


def sea(n: int, seed: int, gradual: bool):
    concepts = [synth.SEA(variant=v, noise=0.1, seed=seed + i) for i, v in enumerate(SEA_VARIANTS)]
    return _chain(concepts, n, gradual, seed)


def rbf(n: int, seed: int, change_speed: float, n_classes: int):
    """river's `RandomRBFDrift`, bit for bit, from our compiled copy (river's took half of an RBF replay's time)."""
    return drifting_rbf(
        seed_model=seed,
        seed_sample=seed + 1,
        n_classes=n_classes,
        n_features=10,
        n_centroids=50,
        change_speed=change_speed,
        n_drift_centroids=50,
    )


def recurring(n: int, seed: int, n_concepts: int = 4, n_features: int = 10, repeats: int = 3):
    """Concepts that come back: each has its own input region (a Gaussian around its own centre) and its own labelling
    hyperplane through that centre; they follow each other in turn, `repeats` times, in equal segments. A stream where
    an expert pool should end near `n_concepts` experts, whatever the number of switches."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(n_concepts, n_features))
    normals = rng.normal(size=(n_concepts, n_features))
    segment = max(1, n // (n_concepts * repeats))
    for t in range(n):
        c = (t // segment) % n_concepts
        x = centres[c] + rng.normal(size=n_features)
        y = bool((x - centres[c]) @ normals[c] > 0) != (rng.random() < 0.05)
        yield {f"x{i}": float(v) for i, v in enumerate(x)}, y


GENERATORS = {
    "led_a": (functools.partial(led, gradual=False), "LED, 24 attributes (7 relevant), 10% noise, abrupt drifts"),
    "led_g": (functools.partial(led, gradual=True), "LED, 24 attributes (7 relevant), 10% noise, gradual drifts"),
    "sea_a": (functools.partial(sea, gradual=False), "SEA, functions 1-2-4-1, 10% noise, abrupt drifts"),
    "sea_g": (functools.partial(sea, gradual=True), "SEA, functions 1-2-4-1, 10% noise, gradual drifts"),
    "rbf_m": (functools.partial(rbf, change_speed=1e-4, n_classes=2), "RandomRBF, 50 drifting centroids, speed 1e-4, 2 classes"),
    "rbf_f": (functools.partial(rbf, change_speed=1e-3, n_classes=2), "RandomRBF, 50 drifting centroids, speed 1e-3, 2 classes"),
    "rbf_m5": (functools.partial(rbf, change_speed=1e-4, n_classes=5), "RandomRBF, 50 drifting centroids, speed 1e-4, 5 classes"),
    "rbf_f5": (functools.partial(rbf, change_speed=1e-3, n_classes=5), "RandomRBF, 50 drifting centroids, speed 1e-3, 5 classes"),
    "recur4": (recurring, "4 recurring concepts, each with its own input region, 3 rounds (11 switches), 5% noise"),
}


def generate(name: str, n: int = BENCHMARK_LENGTH, seed: int = 1):
    """The first `n` (x, y) pairs of benchmark `name`.

    >>> [y for _, y in generate("sea_a", n=8, seed=1)]
    [True, False, True, False, False, False, False, True]
    """
    build, _ = GENERATORS[name]
    return itertools.islice(build(n=n, seed=seed), n)


def drifts(name: str, n: int) -> list[int]:
    """Drift centres of a generated benchmark of length n (none for RandomRBF, which drifts all the time)."""
    if name == "recur4":
        segment = n // 12
        return list(range(segment, 12 * segment, segment))
    return drift_schedule(n, gradual=False)[0] if name.startswith(("led", "sea")) else []
