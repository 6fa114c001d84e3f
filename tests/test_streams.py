"""The benchmark streams: reproducible from a seed, with the concepts and drifts they promise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from river.datasets import synth

from connectors.benchmarks import StreamUnavailable, describe, open_stream, stream_names
from connectors.generators import AGRAWAL_FUNCTIONS, GENERATORS, WAVEFORM_SWAPPED, generate, keyed_sea
from connectors.random_rbf import drifting_rbf

SEA_THRESHOLDS = [8.0, 9.0, 9.5, 8.0]  # functions 1, 2, 4, 1


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generators_are_reproducible_from_a_seed(name):
    a = list(generate(name, n=300, seed=4))
    b = list(generate(name, n=300, seed=4))
    c = list(generate(name, n=300, seed=5))
    assert a == b
    assert a != c
    assert len(a) == 300


def concept_agreement(data, threshold):
    """Share of instances labelled as the SEA function with this threshold would (noise flips 10%; river's SEA calls
    the side above the threshold positive)."""
    return np.mean([(x[0] + x[1] > threshold) == y for x, y in data])


def test_sea_abrupt_concepts_follow_the_schedule():
    n = 40_000
    data = list(generate("sea_a", n=n, seed=1))
    quarters = [data[i * n // 4 + 500 : (i + 1) * n // 4 - 500] for i in range(4)]  # away from the drift centres
    for segment, threshold in zip(quarters, SEA_THRESHOLDS):
        assert concept_agreement(segment, threshold) == pytest.approx(0.9, abs=0.02)
    assert concept_agreement(quarters[1], 8.0) < 0.87  # the concept really changed


def test_sea_gradual_drift_mixes_concepts_around_the_centre():
    """Where functions 1 (threshold 8) and 2 (threshold 9) disagree, the share labelled as function 1 says which
    concept an instance came from: about 0.9 before the drift, 0.5 at its centre, 0.1 after (10% noise)."""
    n = 80_000
    data = list(generate("sea_g", n=n, seed=1))
    centre, width = n // 4, n // 20

    def share_of_first_concept(segment):
        return np.mean([y for x, y in segment if 8.0 < x[0] + x[1] <= 9.0])

    before = share_of_first_concept(data[centre - 2 * width : centre - width])
    middle = share_of_first_concept(data[centre - width // 4 : centre + width // 4])
    after = share_of_first_concept(data[centre + width : centre + 2 * width])
    assert before > 0.8 and after < 0.2
    assert 0.35 < middle < 0.65


def test_concept_drift_matches_river_where_river_works():
    from river.datasets import synth

    from connectors.generators import concept_drift

    a, b = synth.SEA(variant=0, seed=1), synth.SEA(variant=1, seed=2)
    ours = list(itertools.islice(concept_drift(a, b, position=300, width=100, seed=9), 600))
    theirs = list(synth.ConceptDriftStream(a, b, position=300, width=100, seed=9).take(600))
    assert ours == theirs


def test_abrupt_drift_far_from_the_start_does_not_overflow():
    from connectors.generators import concept_drift

    stream = concept_drift(itertools.repeat("old"), itertools.repeat("new"), position=250_000, width=50, seed=1)
    assert next(stream) == "old"


def test_led_has_24_attributes_and_10_classes():
    data = list(generate("led_a", n=2000, seed=1))
    assert all(len(x) == 24 for x, _ in data)
    assert {y for _, y in data} == set(range(10))


@pytest.mark.parametrize("name, classes", [("rbf_m", 2), ("rbf_f", 2), ("rbf_m5", 5), ("rbf_f5", 5)])
def test_rbf_streams(name, classes):
    data = list(generate(name, n=3000, seed=1))
    assert all(len(x) == 10 for x, _ in data)
    assert len({y for _, y in data}) == classes


@pytest.mark.parametrize("n_classes, change_speed", [(2, 1e-3), (5, 1e-4), (3, 0.05)])
def test_rbf_is_rivers_generator_bit_for_bit(n_classes, change_speed):
    """Our compiled RandomRBFDrift gives river's instances exactly, across chunks and many bounces off the unit cube
    (at speed 0.05 a centroid crosses the cube in about a hundred steps)."""
    ours = drifting_rbf(seed_model=6, seed_sample=7, n_classes=n_classes, change_speed=change_speed, chunk=700)
    theirs = synth.RandomRBFDrift(seed_model=6, seed_sample=7, n_classes=n_classes, change_speed=change_speed)
    assert list(itertools.islice(ours, 5000)) == list(theirs.take(5000))


def test_open_stream_limits_and_names():
    stream = open_stream("sea_g", n=100, seed=1)
    records = list(itertools.chain.from_iterable(stream.source.batches(32)))
    assert len(records) == 100 and stream.length == 100
    assert stream.drifts == [25, 50, 75]
    assert stream.decoder.decode(records[7]).id == "7"


def test_missing_real_stream_says_where_it_looked(tmp_path):
    with pytest.raises(StreamUnavailable, match="covtype.*STREAM_MOE_DATA"):
        open_stream("covtype", data_dirs=[tmp_path])


def test_every_stream_is_listed():
    assert {"led_a", "led_g", "sea_a", "sea_g", "rbf_m", "rbf_f", "elec", "airlines", "covtype"} <= set(stream_names())


def test_elec_opens_from_the_data_directory(elec_path, data_dirs):
    stream = open_stream("elec", n=10, data_dirs=data_dirs)
    events = [stream.decoder.decode(r) for b in stream.source.batches(4) for r in b]
    assert len(events) == 10 and events[0].y == "UP"


# the streams of the broader suite: (name, attributes, classes)
BROADER = [("agrawal_a", 9, 2), ("agrawal_g", 9, 2), ("hyper", 10, 2), ("stagger_a", 3, 2), ("rtg_a", 10, 2),
           ("mixed_a", 4, 2), ("sine_a", 4, 2), ("waveform_a", 40, 3), ("phishing", 9, 2), ("bananas", 2, 2),
           ("segment", 18, 7)]


def events_of(name: str, n: int, seed: int) -> list:
    stream = open_stream(name, n=n, seed=seed)
    return [stream.decoder.decode(r) for b in stream.source.batches(100) for r in b]


@pytest.mark.parametrize("name, n_features, n_classes", BROADER)
def test_broader_streams_open_with_their_attributes_and_classes(name, n_features, n_classes):
    events = events_of(name, 600, seed=3)
    assert len(events) == 600 and all(len(e.x) == n_features for e in events)
    assert len({e.y for e in events}) == n_classes
    assert [(e.x, e.y) for e in events_of(name, 600, seed=3)] == [(e.x, e.y) for e in events]
    assert describe(name)


def test_agrawal_switches_its_function_at_each_drift():
    """Each quarter of agrawal_a is labelled by its own AGRAWAL function (5% perturbation of the attributes after
    labelling blurs a few), and by none of the others."""
    n = 4000
    data = list(generate("agrawal_a", n=n, seed=1))
    for q in range(4):
        segment = data[q * n // 4 + 100 : (q + 1) * n // 4 - 100]
        agreement = [np.mean([synth.Agrawal(classification_function=f)._classification_functions[f](
            *(x[k] for k in ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")))
            == y for x, y in segment]) for f in AGRAWAL_FUNCTIONS]
        assert agreement[q] > 0.9 and max(a for i, a in enumerate(agreement) if i != q) < 0.6


def test_waveform_attributes_trade_places_at_a_drift():
    """After the first drift the attributes hold the same values as before, some of them under another name."""
    n = 4000
    data = list(generate("waveform_a", n=n, seed=1))
    before, after = data[n // 4 - 400 : n // 4 - 100], data[n // 4 + 100 : n // 4 + 400]
    mean = lambda part: np.mean([[x[k] for k in range(40)] for x, _ in part], axis=0)  # noqa: E731
    moved = np.abs(mean(before) - mean(after)) > 0.5
    assert 2 <= moved.sum() <= WAVEFORM_SWAPPED


def test_keyed_sea_keys_follow_their_own_concepts_and_drift_points():
    """Each key's events agree with one of SEA's functions, negated or not, before its drift point and with another
    after it; keys differ in their concepts; the key is not a feature."""
    stream = list(keyed_sea(n=16_000, seed=3, keys=8, drifts=1))
    assert stream == list(keyed_sea(n=16_000, seed=3, keys=8, drifts=1)) != list(keyed_sea(n=16_000, seed=4, keys=8))
    assert {frozenset(x) for x, _, _ in stream} == {frozenset({"x0", "x1", "x2"})}
    concepts = [(t, negated) for t in (7.0, 8.0, 9.0, 9.5) for negated in (False, True)]

    def concept(part):
        agreement = [np.mean([((x["x0"] + x["x1"] > t) != negated) == y for x, y in part]) for t, negated in concepts]
        assert max(agreement) == pytest.approx(0.9, abs=0.03)
        return concepts[int(np.argmax(agreement))]

    schedules = []
    for key in sorted({key for _, _, key in stream}):
        rows = [(x, y) for x, y, k in stream if k == key]
        first, last = concept(rows[: len(rows) // 5]), concept(rows[-len(rows) // 5 :])  # around the drift point
        assert first != last
        schedules.append((first, last))
    assert len(set(schedules)) > 4
