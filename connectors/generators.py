"""The synthetic drift benchmarks, built from river's generators, reproducible from a seed: those of DriftMoE (SEA,
LED, RandomRBF) and those of the wider literature (AGRAWAL, Hyperplane, STAGGER, RandomTree, Mixed, SINE, Waveform).

At the benchmark length of 1,000,000 the drifts are centred at 250k, 500k and 750k, with width 50 (abrupt) or 50,000
(gradual), as in the paper. A shorter `n` compresses the same schedule (drifts at n/4, n/2, 3n/4, gradual width n/20),
so a short run still crosses every concept. RandomRBF and Hyperplane drift all the time instead (incremental drift).
`sea_keyed` is SEA for many keys, each with its own concepts and drift point: a stream for one model per key.
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
AGRAWAL_FUNCTIONS = (0, 2, 4, 6)  # river counts AGRAWAL's functions from 0: functions 1 -> 3 -> 5 -> 7
WAVEFORM_SWAPPED = 10  # attributes that trade places at each Waveform drift, as MOA's WaveformGeneratorDrift does


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


def nested_positions(n: int, gradual: bool) -> tuple[list[int], int]:
    """Each nesting level's drift position, and the width, for concepts chained through nested concept drifts.

    As in river and MOA, positions count per stream and a nested stream only advances when it is drawn from, so each
    nesting level takes the distance between consecutive centres as its position.
    """
    centres, width = drift_schedule(n, gradual)
    return [centres[0]] + [b - a for a, b in zip(centres, centres[1:])], width


def _chain(concepts: list, n: int, gradual: bool, seed: int):
    """Concepts one after another through nested concept drifts, on the drift schedule of `n`."""
    gaps, width = nested_positions(n, gradual)
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


def switching(n: int, seed: int, gradual: bool, generator, functions: tuple[int, ...], **params):
    """A river generator with a `classification_function` parameter, through `functions` in turn on the drift schedule,
    each concept with its own seed (as SEA and LED).

    >>> from river.datasets import synth
    >>> [y for _, y in itertools.islice(switching(8, 1, False, synth.STAGGER, (0, 1, 2, 0)), 8)]
    [0, 0, 0, 0, 1, 0, 0, 0]
    """
    concepts = [generator(classification_function=f, seed=seed + i, **params) for i, f in enumerate(functions)]
    return _chain(concepts, n, gradual, seed)


def random_tree(n: int, seed: int, gradual: bool):
    """river's RandomTree (5 numeric and 5 nominal attributes of 5 values, 2 classes), a new random tree at each drift."""
    concepts = [synth.RandomTree(seed_tree=seed + i, seed_sample=seed + 50 + i) for i in range(4)]
    return _chain(concepts, n, gradual, seed)


def _swapped(stream, order: list):
    """Attribute k takes the value of attribute order[k]; the attributes keep their names and order."""
    for x, y in stream:
        yield {k: x[source] for k, source in zip(x, order)}, y


def waveform(n: int, seed: int, gradual: bool):
    """river's Waveform with its 19 noise attributes (40 in all, 3 classes); at each drift `WAVEFORM_SWAPPED` attributes
    drawn at random trade places, as in MOA's WaveformGeneratorDrift."""
    concepts, order = [], list(range(40))
    for i in range(4):
        if i:
            rng = random.Random(seed + 200 + i)
            chosen = rng.sample(range(40), WAVEFORM_SWAPPED)
            previous, order = order, list(order)
            for a, b in zip(chosen, rng.sample(chosen, len(chosen))):
                order[a] = previous[b]
        concepts.append(_swapped(synth.Waveform(seed=seed + i, has_noise=True), order))
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


def keyed_sea(n: int, seed: int, keys: int = 1000, drifts: int = 1, noise: float = 0.1):
    """SEA for `keys` keys, each on its own concept schedule: (x, y, key) triples, keys drawn at random event by event.

    A key's concepts are `drifts` + 1 of SEA's four functions in its own order, each with its labels negated or not
    (a coin per key and concept: keys disagree, as customers with opposite preferences do), switching abruptly at
    the key's own drift points, drawn within the middle 60% of its expected n / keys events. The key is not among the
    features, so one model for every key sees a mixture of concepts it cannot tell apart.

    >>> [key for _, _, key in generate("sea_keyed", n=4, seed=1)]
    ['k911', 'k783', 'k289', 'k953']
    """
    if not 0 <= drifts < 4:
        raise ValueError(f"a key passes through at most SEA's four functions: drifts must be 0-3, not {drifts}")
    rng = np.random.default_rng(seed)
    thresholds = np.array([8.0, 9.0, 7.0, 9.5])  # SEA functions 1-4
    functions = np.argsort(rng.random((keys, 4)), axis=1)[:, : drifts + 1]  # each key's own order
    negated = rng.random((keys, drifts + 1)) < 0.5
    per_key = max(1, n // keys)
    points = np.sort(rng.integers(per_key // 5, per_key - per_key // 5 + 1, size=(keys, drifts)), axis=1)
    key = rng.integers(keys, size=n)
    x = rng.uniform(0.0, 10.0, size=(n, 3))
    flip = rng.random(n) < noise
    seen = np.zeros(keys, dtype=np.int64)
    for t in range(n):
        k = key[t]
        concept = int(np.searchsorted(points[k], seen[k], side="right"))
        seen[k] += 1
        above = x[t, 0] + x[t, 1] > thresholds[functions[k, concept]]
        features = {"x0": float(x[t, 0]), "x1": float(x[t, 1]), "x2": float(x[t, 2])}
        yield features, bool(above ^ negated[k, concept] ^ flip[t]), f"k{k}"


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
    "agrawal_a": (
        functools.partial(switching, gradual=False, generator=synth.Agrawal, functions=AGRAWAL_FUNCTIONS,
                          perturbation=0.05),
        "AGRAWAL loan applications, 9 attributes (3 of them coded categories), functions 1-3-5-7, 5% perturbation, "
        "abrupt drifts",
    ),
    "agrawal_g": (
        functools.partial(switching, gradual=True, generator=synth.Agrawal, functions=AGRAWAL_FUNCTIONS,
                          perturbation=0.05),
        "AGRAWAL loan applications, 9 attributes (3 of them coded categories), functions 1-3-5-7, 5% perturbation, "
        "gradual drifts",
    ),
    "hyper": (
        lambda n, seed: synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.001),
        "Hyperplane, 10 attributes, 5 of its weights moving by 0.001 an instance (direction reversed with "
        "probability 10%), 5% noise: incremental drift",
    ),
    "stagger_a": (
        functools.partial(switching, gradual=False, generator=synth.STAGGER, functions=(0, 1, 2, 0)),
        "STAGGER, 3 attributes of 3 values (coded 0-2), functions 1-2-3-1, abrupt drifts",
    ),
    "rtg_a": (
        functools.partial(random_tree, gradual=False),
        "RandomTree, 5 numeric and 5 nominal attributes (5 values, coded 0-4), 2 classes, a new tree at each drift, "
        "abrupt",
    ),
    "mixed_a": (
        functools.partial(switching, gradual=False, generator=synth.Mixed, functions=(0, 1, 0, 1)),
        "Mixed, 2 boolean and 2 numeric attributes, functions 1-2-1-2 (the labels reversed), abrupt drifts",
    ),
    "sine_a": (
        functools.partial(switching, gradual=False, generator=synth.Sine, functions=(0, 1, 2, 3), has_noise=True),
        "SINE, 2 relevant and 2 noise attributes, functions SINE1, reversed SINE1, SINE2, reversed SINE2, abrupt "
        "drifts",
    ),
    "waveform_a": (
        functools.partial(waveform, gradual=False),
        "Waveform, 21 attributes and 19 of noise, 3 classes; at each drift 10 attributes trade places, abrupt",
    ),
    "sea_keyed": (
        keyed_sea,
        "SEA for 1,000 keys (events carry a key), each with its own order of two SEA functions, negated or not by a "
        "coin per key, and its own drift point; 10% noise",
    ),
}


def generate(name: str, n: int = BENCHMARK_LENGTH, seed: int = 1):
    """The first `n` (x, y) pairs of benchmark `name` ((x, y, key) triples for a keyed stream: `sea_keyed`).

    >>> [y for _, y in generate("sea_a", n=8, seed=1)]
    [True, False, True, False, False, False, False, True]
    """
    build, _ = GENERATORS[name]
    return itertools.islice(build(n=n, seed=seed), n)


def drifts(name: str, n: int) -> list[int]:
    """Drift centres of a generated benchmark of length n (none for RandomRBF and Hyperplane, which drift all the
    time, nor for a keyed stream, whose keys drift each at its own point)."""
    if name == "recur4":
        segment = n // 12
        return list(range(segment, 12 * segment, segment))
    return drift_schedule(n, gradual=False)[0] if not name.startswith(("rbf", "hyper", "sea_keyed")) else []
