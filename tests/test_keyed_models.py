"""One model per event key: each key learns its own concept, spilled models come back exactly as they left, the
routers of a micro-batch's models share one bank, and per-key models are checkpointed with their shard."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from river import tree

from connectors.json_events import JsonEventDecoder
from connectors.sinks import ListSink
from connectors.source import IterableSource
from stream_moe.commands.serve import build_service, served_classifier
from stream_moe.config import Settings
from stream_moe.events import Event, Position, Record
from stream_moe.keyed_models import KeyedPredictor
from stream_moe.loop import EventLoop
from stream_moe.models.driftmoe_data import DriftMoEData
from stream_moe.models.router_bank import RouterBank
from stream_moe.predictor import Predictor
from stream_moe.shards import Shards


def keyed_stream(n: int, keys: int, seed: int = 0, labelled: bool = True) -> list[Event]:
    """Each key has its own concept: for key k the class is whether feature k % 3 exceeds 5 (opposite concepts
    share features, so one model for all keys cannot fit them)."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        k = rng.randrange(keys)
        x = {f"f{j}": rng.uniform(0, 10) for j in range(3)}
        y = int((x[f"f{k % 3}"] > 5) != (k % 2 == 1))
        events.append(Event(str(i), x, y if labelled else None, key=f"k{k}"))
    return events


def accuracy(predictor, events, batch: int = 16) -> float:
    hits = 0
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        hits += sum(p.y_pred == e.y for p, e in zip(predictor.process(chunk), chunk))
    return hits / len(events)


def test_a_model_per_key_learns_each_keys_concept():
    events = keyed_stream(6000, keys=6)
    keyed = accuracy(KeyedPredictor(tree.HoeffdingTreeClassifier, "ht"), events)
    shared = accuracy(Predictor(tree.HoeffdingTreeClassifier(), "ht"), events)
    assert keyed > 0.9 and keyed > shared + 0.2


def test_spilled_models_come_back_exactly_as_they_left():
    events = keyed_stream(3000, keys=7, seed=1)
    roomy = KeyedPredictor(tree.HoeffdingTreeClassifier, "ht", max_live=100)
    tight = KeyedPredictor(tree.HoeffdingTreeClassifier, "ht", max_live=2)
    for start in range(0, len(events), 16):
        chunk = events[start:start + 16]
        assert [(p.y_pred, p.proba) for p in roomy.process(chunk)] == [(p.y_pred, p.proba) for p in tight.process(chunk)]
    assert len(tight.model.live) == 2 and len(tight.model) == 7 and tight.model.spills > 50
    assert tight.model.reloads == tight.model.spills - 5 and tight.learned == roomy.learned == 3000


def test_mixtures_per_key_share_one_router_bank_and_match_their_own_routers():
    def mixture() -> DriftMoEData:
        return DriftMoEData(n_experts=4, hidden=(16,), device="cpu", seed=3)

    bank = RouterBank(device="cpu", **mixture().router_settings)
    banked = KeyedPredictor(mixture, "driftmoe-data", max_live=3, bank=bank)
    alone = KeyedPredictor(mixture, "driftmoe-data", max_live=3)
    events = keyed_stream(1500, keys=5, seed=2)
    agree = total = 0
    for start in range(0, len(events), 32):
        chunk = events[start:start + 32]
        a, b = banked.process(chunk), alone.process(chunk)
        for p, q in zip(a, b):
            total += 1
            agree += p.y_pred == q.y_pred and np.allclose(list(p.proba.values()), list(q.proba.values()), atol=1e-4)
    assert len(bank) >= 3 and len(banked.model.live) == 3  # spilled models left the bank
    assert agree / total > 0.99  # equal to float rounding (a batched product sums in another order)


def test_keyed_models_are_checkpointed_with_their_shard(tmp_path):
    settings = Settings(model={"name": "hoeffding-tree"},
                        serve={"out": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "ckpt"),
                               "embedded_n": 1, "model_per": "key", "max_models": 2})
    events = keyed_stream(900, keys=4, seed=4, labelled=False)
    labels = [{"id": e.id, "y": int((e.x[f"f{int(e.key[1:]) % 3}"] > 5) != (int(e.key[1:]) % 2 == 1))}
              for e in events]
    wire = [json.dumps({"id": e.id, "key": e.key, "x": e.x}) for e in events] + [json.dumps(v) for v in labels]
    records = [Record(w.encode(), Position("in", i)) for i, w in enumerate(wire)]

    service = build_service(settings)
    shards = service.shards
    loop = EventLoop(IterableSource("in", records), JsonEventDecoder(), shards, dead_letters=[ListSink()])
    stats = loop.run()
    shards.save()
    shard = shards.get(0)
    assert stats.learned == 900 and stats.labels_joined == 900
    assert len(shard.predictor.model) == 4 and len(shard.predictor.model.live) == 2

    restored = Shards(service.shards.make_predictor, checkpoint_dir=tmp_path / "ckpt").get(0)
    # every model is a blob of the store, reloaded when its key comes back
    assert restored.predictor.learned == 900 and not restored.predictor.model.live
    assert sorted(restored.predictor.model.spilled) == ["k0", "k1", "k2", "k3"]
    assert len(list((tmp_path / "ckpt" / "shard-0" / "blobs").iterdir())) == 4
    probe = [Event("p", {"f0": 7.0, "f1": 2.0, "f2": 2.0}, key=k) for k in ("k0", "k1", "k2", "k3")]
    assert [p.proba for p in restored.predictor.process(probe)] == [p.proba for p in shard.predictor.process(probe)]


def items(events: list[Event], start: int = 0) -> list:
    return [(e, Record(b"", Position("in", start + i))) for i, e in enumerate(events)]


def probe(predictor, keys) -> list[dict]:
    return [p.proba for p in predictor.process([Event("p", {"f0": 7.0, "f1": 2.0, "f2": 6.0}, key=k) for k in keys])]


def test_checkpoints_put_only_the_models_that_changed_and_spilled_ones_leave_memory(tmp_path):
    keys = [f"k{k}" for k in range(6)]
    shards = Shards(lambda: KeyedPredictor(tree.HoeffdingTreeClassifier, "ht", max_live=3),
                    checkpoint_dir=tmp_path, keep=2)
    blobs = tmp_path / "shard-0" / "blobs"
    shard = shards.get(0)
    shard.process(items(keyed_stream(1200, keys=6, seed=7)), wall=1e9)
    shards.save()
    models = shard.predictor.model
    assert all(isinstance(s, str) for s in models.spilled.values()), "spilled models are names once put"
    assert len(models.spilled) == 3 and len(list(blobs.iterdir())) == 6
    everything = shards.saved_bytes

    shards.save()  # nothing changed: the snapshot alone
    assert shards.saved_bytes < everything / 6

    only_k0 = [e for e in keyed_stream(3000, keys=6, seed=8) if e.key == "k0"]
    shard.process(items(only_k0, start=1200), wall=1e9)
    shards.save()  # k0's model, and k0's old blob kept by the checkpoint before
    assert everything / 20 < shards.saved_bytes < everything / 2
    assert len(list(blobs.iterdir())) == 7
    shards.save()
    assert len(list(blobs.iterdir())) == 6, "a blob no kept checkpoint refers to is deleted"

    expected = probe(shards.get(0).predictor, keys)
    taken = Shards(shards.make_predictor, checkpoint_dir=tmp_path).get(0)  # another replica
    assert probe(taken.predictor, keys) == expected and taken.predictor.model.reloads == 6
    shard.restore()  # the in-memory snapshot, as after a model error, names its models too
    assert probe(shard.predictor, keys) == expected


@pytest.mark.parametrize(("router_bank", "banked"), [("auto", False), ("on", True), ("off", False)])
def test_per_key_models_on_the_cpu_share_a_bank_only_when_asked(router_bank, banked):
    """On the CPU a bank made per-key serving slower (benchmarks/keyed_serving.py): `auto` leaves it to CUDA."""
    settings = Settings(model={"name": "driftmoe-data", "device": "cpu"},
                        serve={"model_per": "key", "router_bank": router_bank})
    assert (served_classifier(settings).make_predictor().bank is not None) == banked


class Touchy(DriftMoEData):
    """A mixture that raises after learning a batch holding f0 = 666 (its state half-updated by then)."""

    def finish_batch(self, routing, logits):
        answers = super().finish_batch(routing, logits)
        if any(x.get("f0") == 666.0 for x in routing.xs):
            raise ValueError("666")
        return answers


def two_partitions(events: list[Event]) -> list[Record]:
    wire = [json.dumps({"id": e.id, "x": e.x, "y": e.y}).encode() for e in events]
    return [Record(w, Position("in", i // 2, partition=i % 2)) for i, w in enumerate(wire)]


def run_shards(records: list[Record], shards: Shards) -> list:
    predictions = ListSink()
    EventLoop(IterableSource("in", records), JsonEventDecoder(), shards, sinks=[predictions], batch_size=32).run()
    return predictions.items


def test_the_shards_of_a_process_route_through_one_bank_in_one_call_per_micro_batch():
    def mixture():
        return Touchy(n_experts=4, hidden=(16,), device="cpu", seed=5)

    events = keyed_stream(1200, keys=1, seed=6)
    for at in (301, 302, 800):
        events[at] = Event(events[at].id, {**events[at].x, "f0": 666.0}, 1)
    bank = RouterBank(device="cpu", **mixture().router_settings)
    calls = []
    scores = bank.scores
    bank.scores = lambda members, z: calls.append(len(set(np.asarray(members).tolist()))) or scores(members, z)
    together = Shards(lambda: Predictor(mixture(), "touchy", bank=bank), route_together=True)
    alone = Shards(lambda: Predictor(mixture(), "touchy"))
    banked, separate = run_shards(two_partitions(events), together), run_shards(two_partitions(events), alone)

    assert max(calls) == 2 and calls.count(2) > 30  # both shards' routers in one call
    assert [p.id for p in banked] == [p.id for p in separate] and len(banked) == 1197  # the three 666 refused
    same = sum(p.y_pred == q.y_pred for p, q in zip(banked, separate))
    assert same / len(banked) > 0.99  # equal to float rounding
    assert together.get(0).predictor.learned + together.get(1).predictor.learned == 1197
