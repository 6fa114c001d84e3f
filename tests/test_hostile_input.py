"""No input stops the loop: property-based fuzzing of the decoder and of the whole loop, a model that raises on some
events (its state restored, the event dead-lettered), and labels joined whichever of label and event comes first."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import base, tree

from connectors.json_events import JsonEventDecoder
from connectors.sinks import ListSink
from connectors.source import IterableSource
from stream_moe.events import DecodeError, Position, Record
from stream_moe.loop import EventLoop
from stream_moe.models.registry import build_model
from stream_moe.predictor import Predictor
from stream_moe.shards import LABEL_DROPS, Shards

FEATURES = ("f1", "f2", "f3")


def valid_events(n: int, start: int = 0, seed: int = 0, labelled: bool = True) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        x = {f: rng.uniform(0, 10) for f in FEATURES}
        event = {"id": f"v{i}", "ts": float(i), "x": x}
        if labelled:
            event["y"] = int(x["f1"] + x["f2"] <= 8)
        out.append(event)
    return out


def as_records(values: list, source: str = "in") -> list[Record]:
    return [Record(v if v is None or isinstance(v, bytes) else json.dumps(v).encode(), Position(source, i))
            for i, v in enumerate(values)]


def run_loop(records: list[Record], shards: Shards, batch_size: int = 16):
    predictions, letters = ListSink(), ListSink()
    loop = EventLoop(IterableSource("in", records), JsonEventDecoder(), shards, sinks=[predictions],
                     dead_letters=[letters], batch_size=batch_size)
    return loop.run(), predictions.items, letters.items


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**320)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_event(draw) -> bytes | None:
    """A valid event with one thing wrong (or nothing): a field or feature replaced by any JSON value, dropped, or
    the whole record replaced by garbage; some are label-only events, some repeat an id."""
    event = valid_events(1, start=draw(st.integers(0, 30)), seed=draw(st.integers(0, 3)),
                         labelled=draw(st.booleans()))[0]
    mutation = draw(st.sampled_from(["none", "field", "feature", "drop", "label_only", "deep", "garbage", "tombstone",
                                     "huge_int", "far_ts"]))
    if mutation == "field":
        event[draw(st.sampled_from(["id", "x", "y", "ts", "key", "extra"]))] = draw(json_values)
    elif mutation == "feature":
        event["x"][draw(st.sampled_from(FEATURES))] = draw(json_values)
    elif mutation == "drop":
        del event[draw(st.sampled_from(["id", "x", "ts"]))]
    elif mutation == "label_only":
        event = {"id": event["id"], "y": draw(st.sampled_from([0, 1, "1", True]))}
    elif mutation == "deep":
        depth = draw(st.integers(500, 20000))
        return b'{"id": "d", "x": {"f1": ' + b"[" * depth + b"]" * depth + b', "f2": 1, "f3": 1}}'
    elif mutation == "garbage":
        return draw(st.binary(max_size=64))
    elif mutation == "tombstone":
        return None
    elif mutation == "huge_int":
        return json.dumps(event).replace(str(event["x"]["f1"]), "9" * draw(st.integers(309, 400)), 1).encode()
    elif mutation == "far_ts":
        event["ts"] = draw(st.sampled_from([1e300, 1e12, -1e300]))
    return json.dumps(event, allow_nan=True).encode()


records_of_anything = st.lists(
    st.one_of(mutated_event(), st.binary(max_size=80), json_values.map(lambda v: json.dumps(v).encode())),
    min_size=1, max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()), mutated_event()))
def test_the_decoder_only_ever_refuses(raw):
    decoder = JsonEventDecoder(features=list(FEATURES))
    try:
        event = decoder.decode(Record(raw, Position("in", 0)))
    except DecodeError as err:
        assert str(err) and err.kind
    else:
        assert isinstance(event.id, str) and (event.x is not None or event.y is not None)


@pytest.mark.parametrize("model", ["driftmoe-data", "hoeffding-tree"])
def test_fuzzed_records_never_escape_the_loop_and_all_are_accounted_for(model):
    def shards() -> Shards:
        return Shards(lambda: Predictor(build_model(model, seed=1), model))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records_of_anything, st.integers(1, 16))
    def check(values, batch_size):
        owned = shards()
        warm_up = valid_events(40, start=1000)
        records = as_records(warm_up + values)
        stats, predictions, letters = run_loop(records, owned, batch_size)
        table_letters = sum(d.kind in LABEL_DROPS for d in letters)
        assert stats.records == len(records)
        assert (len(predictions) + len(letters) - table_letters + stats.labels_joined + stats.labels_early
                == len(records)), "a record was neither predicted, dead-lettered nor joined"
        assert all(d.reason and d.kind for d in letters)
        assert owned.get(0).positions == {("in", 0): len(records)}
        after = valid_events(20, start=5000)
        more, predicted, _ = run_loop([Record(json.dumps(e).encode(), Position("in", len(records) + i))
                                       for i, e in enumerate(after)], owned)
        assert [p.id for p in predicted] == [e["id"] for e in after]
        assert all(p.y_pred in (0, 1) for p in predicted)

    check()


class Fragile(base.Classifier):
    """A Hoeffding tree that raises after learning an event whose f1 is 666 (its state half-updated by then)."""

    def __init__(self):
        self.tree = tree.HoeffdingTreeClassifier(grace_period=20)

    def learn_one(self, x, y):
        self.tree.learn_one(x, y)
        if x["f1"] == 666.0:
            raise ValueError("cannot learn 666")

    def predict_proba_one(self, x):
        return self.tree.predict_proba_one(x)


def test_a_model_that_raises_leaves_no_trace_and_its_event_becomes_a_dead_letter():
    clean = valid_events(600)
    poisoned = list(clean)
    for at in (5, 100, 101, 333, 599):  # one alone, two in a row, the last record
        poisoned.insert(at, {"id": f"p{at}", "ts": float(at), "x": {"f1": 666.0, "f2": 1.0, "f3": 1.0}, "y": 1})
    fragile = Shards(lambda: Predictor(Fragile(), "fragile"))
    fragile.get(0).journal_limit = 64  # snapshots taken between poisoned batches too
    stats, predictions, letters = run_loop(as_records(poisoned), fragile, batch_size=32)
    reference = Shards(lambda: Predictor(Fragile(), "fragile"))
    _, expected, _ = run_loop(as_records(clean), reference, batch_size=32)

    assert sorted(d.kind for d in letters) == ["model_error"] * 5
    assert all("cannot learn 666" in d.reason for d in letters)
    assert sorted(json.loads(d.raw)["id"] for d in letters) == sorted(f"p{at}" for at in (5, 100, 101, 333, 599))
    assert [(p.id, p.proba) for p in predictions] == [(p.id, p.proba) for p in expected]
    assert fragile.get(0).predictor.learned == reference.get(0).predictor.learned == 600
    assert stats.learned == 600 and fragile.get(0).positions == {("in", 0): 605}
    probe = {"f1": 3.0, "f2": 4.0, "f3": 5.0}
    assert fragile.get(0).predictor.model.predict_proba_one(probe) == reference.get(0).predictor.model.predict_proba_one(probe)


def test_a_string_in_a_numeric_feature_is_refused_before_the_model():
    events = valid_events(2000, labelled=True)
    for at in (50, 700, 1500):
        events[at]["x"]["f2"] = "abc"
    shards = Shards(lambda: Predictor(build_model("driftmoe-data", seed=1), "driftmoe-data"))
    stats, predictions, letters = run_loop(as_records(events), shards, batch_size=32)
    assert [(d.kind, d.position.offset) for d in letters] == [("wrong_type", at) for at in (50, 700, 1500)]
    assert letters[0].reason == "feature 'f2' is numeric, got 'abc'" and len(predictions) == 1997
    accuracy = sum(p.y_pred == e["y"] for p, e in zip(predictions, [e for e in events if e["x"]["f2"] != "abc"]))
    assert accuracy / len(predictions) > 0.85  # the stream is learnable: the poison did not break the model


def test_labels_join_their_events_in_any_order_and_exactly_once():
    events = valid_events(400, labelled=False)
    labels = [{"id": e["id"], "y": int(e["x"]["f1"] + e["x"]["f2"] <= 8)} for e in events]
    rng = random.Random(3)
    stream = [("e", e) for e in events] + [("l", label) for label in labels]
    rng.shuffle(stream)  # labels before, after and in the same batch as their events
    stream += [("l", labels[0]), ("e", events[1])]  # a second label and a repeated event
    shards = Shards(lambda: Predictor(tree.HoeffdingTreeClassifier(), "ht"), audit=True)
    stats, predictions, letters = run_loop(as_records([v for _, v in stream]), shards, batch_size=8)
    shard = shards.get(0)
    assert len(predictions) == 400 and stats.learned == 400
    assert sorted(shard.learned_ids) == sorted(e["id"] for e in events)
    assert sorted(d.kind for d in letters) == ["duplicate_id", "unknown_id"]
    assert len(shard.joins.pending) == 0 and len(shard.joins.early) == 0
    assert stats.labels_joined + stats.labels_early == 401 - 1


def test_early_labels_expire_into_dead_letters_and_far_future_times_are_refused():
    shards = Shards(lambda: Predictor(tree.HoeffdingTreeClassifier(), "ht"))
    shards.limits.early_max_age_s = 100.0
    values = [{"id": "lonely", "ts": 0.0, "y": 1}, *valid_events(50, start=0, labelled=True),
              {"id": "future", "ts": 1e300, "x": {"f1": 1.0, "f2": 1.0, "f3": 1.0}},
              *valid_events(100, start=50, labelled=True)]
    stats, predictions, letters = run_loop(as_records(values), shards)
    kinds = {d.kind: d for d in letters}
    assert set(kinds) == {"label_expired", "bad_ts"}
    assert json.loads(kinds["label_expired"].raw) == {"id": "lonely", "y": 1} and kinds["label_expired"].position.offset == 0
    assert kinds["bad_ts"].position.offset == 51
    assert shards.get(0).joins.now == 149.0  # the clock was not moved by 1e300
    assert len(predictions) == 150


def test_a_dead_letter_sink_that_fails_loses_its_letters_but_not_the_loop():
    class Broken(ListSink):
        def write(self, items):
            raise OSError("disk full")

    kept = ListSink()
    records = as_records([*valid_events(20), b"{broken", *valid_events(20, start=20)])
    loop = EventLoop(IterableSource("in", records), JsonEventDecoder(), Shards(lambda: Predictor(
        tree.HoeffdingTreeClassifier(), "ht")), dead_letters=[Broken(), kept], batch_size=8)
    stats = loop.run()
    assert stats.predictions == 40 and stats.dead_letters == 1 and stats.dead_letters_lost == 1
    assert [d.kind for d in kept.items] == ["invalid_json"]
