"""The checkpoint contract, run on every store (a shared directory; a compacted Kafka topic on the test broker): the
newest intact snapshot is restored, an interrupted save never is and its leftovers are removed, a damaged snapshot is
skipped, all damaged or of another format is refused. Then what only the Kafka store has: chunks under the record size,
two slots per shard, tombstones, reads up to a fence."""

from __future__ import annotations

import os
import pickle
import uuid

import pytest
from river import tree

from stream_moe.checkpoint import FORMAT, MAGIC, DamagedCheckpoints, IncompatibleCheckpoint, MissingBlob, blob_digest, frame
from stream_moe.checkpoint_store import DirectoryStore
from stream_moe.events import Event, Position, Record
from stream_moe.joins import JoinLimits
from stream_moe.keyed_models import KeyedPredictor
from stream_moe.predictor import Predictor
from stream_moe.shards import Shards

CHUNK = 1024


def state(n: int, size: int = 2000) -> dict:
    """A state whose pickle is about `size` bytes (`size` // CHUNK chunks in the Kafka store)."""
    return {"n": n, "blob": os.urandom(size)}


def reformat(data: bytes, form: int) -> bytes:
    """A snapshot's bytes with another format in its header (its checksum, of the payload, still holds)."""
    header, payload = data.split(b"\n", 1)
    assert header.startswith(MAGIC + b" %d " % FORMAT)
    return header.replace(b" %d " % FORMAT, b" %d " % form, 1) + b"\n" + payload


class DirectoryHarness:
    """Opens directory stores on one directory, and damages or interrupts them as a disk or a crash would."""

    def __init__(self, tmp_path, monkeypatch):
        self.directory = tmp_path / "checkpoints"
        self.monkeypatch = monkeypatch

    def open(self) -> DirectoryStore:
        return DirectoryStore(self.directory, keep=3)

    def snapshots(self, shard: int) -> list:
        return self.open().checkpointer(shard).paths()

    def damage(self, shard: int, newest: int = 0) -> None:
        """Flip the last byte of a snapshot (0: the newest, 1: the one before, ...)."""
        path = self.snapshots(shard)[-1 - newest]
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))

    def reformat_newest(self, shard: int, form: int) -> None:
        path = self.snapshots(shard)[-1]
        path.write_bytes(reformat(path.read_bytes(), form))

    def interrupt_save(self, store: DirectoryStore, shard: int, payload: bytes) -> None:
        """A save killed after writing its temporary file, before the rename."""
        def killed(*args):
            raise KeyboardInterrupt("killed")

        with self.monkeypatch.context() as m:
            m.setattr(os, "replace", killed)
            with pytest.raises(KeyboardInterrupt):
                store.save(shard, payload)

    def leftovers(self, shard: int) -> int:
        return len(list((self.directory / f"shard-{shard}").glob(".checkpoint-*.tmp")))

    def damage_blob(self, shard: int, digest: str) -> None:
        path = self.directory / f"shard-{shard}" / "blobs" / digest
        path.write_bytes(b"x" + path.read_bytes()[1:])

    def newest_size(self, shard: int) -> int:
        return self.snapshots(shard)[-1].stat().st_size


class KafkaHarness:
    """Opens Kafka stores on one fresh topic of the test broker, reads what it holds and writes into it as a damaged
    or interrupted writer would."""

    def __init__(self, broker, partitions: int = 2):
        from kafka import KafkaProducer

        self.broker = broker
        self.topic = f"state-{uuid.uuid4().hex[:8]}"
        self.partitions = partitions
        broker.create_topics({self.topic: partitions})
        self.producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=4_000_000)
        self.stores = []

    def open(self, chunk_bytes: int = CHUNK):
        from stream_moe.kafka_store import KafkaStore

        store = KafkaStore(self.broker.bootstrap, self.topic, chunk_bytes=chunk_bytes)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()
        self.producer.close()

    def records(self, partition: int) -> list:
        """Every record of a partition, read up to a marker produced now (end offsets can lag)."""
        from kafka import KafkaConsumer, TopicPartition

        marker = self.producer.send(self.topic, b"marker", key=b"test-marker", partition=partition).get(30)
        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False)
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        found = []
        while consumer.position(tp) <= marker.offset:
            for records in consumer.poll(500).values():
                found += records
        consumer.close()
        return [r for r in found if r.offset < marker.offset]

    def live(self, shard: int) -> dict[str, bytes]:
        """The shard's keys and values as compaction leaves them: the newest value of each key, tombstones dropped."""
        newest = {}
        prefix = f"shard-{shard}/"
        for r in self.records(shard % self.partitions):
            if r.key.decode().startswith(prefix):
                newest[r.key.decode()[len(prefix):]] = r.value
        return {k: v for k, v in newest.items() if v is not None}

    def manifests(self, shard: int) -> list[tuple[int, int, int]]:
        """(generation, slot, chunks) of the shard's manifests, newest first."""
        from stream_moe.kafka_store import Manifest

        found = []
        for key, value in self.live(shard).items():
            if key.endswith("/manifest"):
                m = Manifest.decode(value)
                found.append((m.generation, int(key.split("/")[0][5:]), m.chunks))
        return sorted(found, reverse=True)

    def _put(self, shard: int, key: str, value: bytes | None) -> None:
        self.producer.send(self.topic, value, key=f"shard-{shard}/{key}".encode(),
                           partition=shard % self.partitions).get(30)

    def damage(self, shard: int, newest: int = 0) -> None:
        """Overwrite the first chunk of a snapshot with its bytes flipped (0: the newest, 1: the one before)."""
        _, slot, _ = self.manifests(shard)[newest]
        value = self.live(shard)[f"slot-{slot}/chunk-0"]
        self._put(shard, f"slot-{slot}/chunk-0", bytes(b ^ 0xFF for b in value[:40]) + value[40:])

    def reformat_newest(self, shard: int, form: int) -> None:
        """Rewrite the newest snapshot, chunks and manifest, with another format in its header."""
        from stream_moe.kafka_store import Manifest

        generation, slot, chunks = self.manifests(shard)[0]
        live = self.live(shard)
        data = reformat(b"".join(live[f"slot-{slot}/chunk-{i}"] for i in range(chunks)), form)
        pieces = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        for i, piece in enumerate(pieces):
            self._put(shard, f"slot-{slot}/chunk-{i}", piece)
        self._put(shard, f"slot-{slot}/manifest", Manifest(generation, len(pieces), len(data)).encode())

    def interrupt_save(self, store, shard: int, payload: bytes) -> None:
        """A save killed after sending two thirds of its chunks (delivered: the worst case for a reader)."""
        chunks = -(-(len(frame(payload)) + len(payload)) // store.chunk_bytes)
        send, sent = store.producer.send, []

        def dying(topic, value=None, key=None, partition=None):
            if b"/chunk-" in key:
                if len(sent) >= chunks * 2 // 3:
                    raise KeyboardInterrupt("killed")
                sent.append(key)
            return send(topic, value=value, key=key, partition=partition)

        store.producer.send = dying
        with pytest.raises(KeyboardInterrupt):
            store.save(shard, payload)
        store.producer.send = send
        store.producer.flush()
        assert len(sent) > 1

    def damage_blob(self, shard: int, digest: str) -> None:
        """Overwrite a blob's first chunk with its first byte changed."""
        key = next(k for k in self.live(shard) if k.startswith(f"blob-{digest}/chunk-0-"))
        self._put(shard, key, b"x" + self.live(shard)[key][1:])

    def leftovers(self, shard: int) -> int:
        """Chunks that no manifest refers to."""
        counts = {slot: chunks for _, slot, chunks in self.manifests(shard)}
        return sum(1 for key in self.live(shard) if "/chunk-" in key
                   and int(key.split("chunk-")[1]) >= counts.get(int(key.split("/")[0][5:]), 0))

    def newest_size(self, shard: int) -> int:
        _, slot, chunks = self.manifests(shard)[0]
        live = self.live(shard)
        return len(live[f"slot-{slot}/manifest"]) + sum(len(live[f"slot-{slot}/chunk-{i}"]) for i in range(chunks))


@pytest.fixture(params=["directory", "kafka"])
def harness(request, tmp_path, monkeypatch):
    if request.param == "directory":
        yield DirectoryHarness(tmp_path, monkeypatch)
    else:
        kafka = KafkaHarness(request.getfixturevalue("broker"))
        yield kafka
        kafka.close()


def test_restores_the_newest_snapshot_and_nothing_before_the_first(harness):
    store = harness.open()
    assert store.restore(0) is None
    states = [state(n, size=500 * (n + 1)) for n in range(4)]
    for s in states:
        assert store.save(0, pickle.dumps(s)) > len(pickle.dumps(s))  # a header (and a manifest) besides the pickle
    assert harness.open().restore(0) == states[-1]  # as a new owner reads it
    assert harness.open().restore(1) is None  # another shard has none


def test_an_interrupted_save_is_never_restored_and_its_leftovers_are_removed(harness):
    store = harness.open()
    store.save(0, pickle.dumps(state(0, 2000)))
    store.save(0, pickle.dumps(state(1, 3000)))
    harness.interrupt_save(store, 0, pickle.dumps(state(2, 12_000)))
    assert harness.leftovers(0) > 0
    owner = harness.open()  # the next owner, after the crash
    assert owner.restore(0)["n"] == 1
    owner.remove_leftovers(0)
    assert harness.leftovers(0) == 0
    assert owner.restore(0)["n"] == 1
    owner.save(0, pickle.dumps(state(3, 5000)))
    assert harness.open().restore(0)["n"] == 3


def test_a_damaged_snapshot_is_skipped_for_the_one_before(harness):
    store = harness.open()
    for n in range(3):
        store.save(0, pickle.dumps(state(n, 3000)))
    harness.damage(0)
    assert harness.open().restore(0)["n"] == 1


def test_every_snapshot_damaged_is_refused(harness):
    store = harness.open()
    for n in range(2):
        store.save(0, pickle.dumps(state(n, 3000)))
    harness.damage(0, newest=0)
    harness.damage(0, newest=1)
    with pytest.raises(DamagedCheckpoints, match="every checkpoint .* is damaged.*allow a fresh start"):
        harness.open().restore(0)


def test_a_snapshot_of_another_format_is_refused_not_skipped(harness):
    store = harness.open()
    for n in range(2):
        store.save(0, pickle.dumps(state(n)))
    harness.reformat_newest(0, FORMAT + 1)
    owner = harness.open()
    with pytest.raises(IncompatibleCheckpoint, match=f"format {FORMAT + 1}.*reads format {FORMAT}"):
        owner.restore(0)
    with pytest.raises(IncompatibleCheckpoint):  # nothing was removed
        harness.open().restore(0)


def blob(size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    return blob_digest(data), data


def test_blobs_stay_while_a_kept_snapshot_refers_to_them(harness):
    store = harness.open()
    (old, old_data), (new, new_data) = blob(2500), blob(700)  # several chunks, one chunk
    assert store.put_blob(0, old, old_data) == 2500 and store.put_blob(0, old, old_data) == 0  # there already
    store.put_blob(0, new, new_data)
    store.save(0, pickle.dumps(state(0)), refs=[old, new])
    owner = harness.open()
    assert owner.restore(0)["n"] == 0
    assert owner.get_blob(0, old) == old_data and owner.get_blob(0, new) == new_data
    for n in range(1, 4):  # the snapshots that still refer to `old` age out
        owner.save(0, pickle.dumps(state(n)), refs=[new])
    reader = harness.open()
    assert reader.restore(0)["n"] == 3 and reader.get_blob(0, new) == new_data
    with pytest.raises(MissingBlob, match=old):
        reader.get_blob(0, old)


def test_a_snapshot_whose_blob_is_gone_is_skipped_and_a_damaged_blob_is_refused(harness):
    store = harness.open()
    name, data = blob(1500)
    store.put_blob(0, name, data)
    store.save(0, pickle.dumps(state(0)), refs=[name])
    store.save(0, pickle.dumps(state(1)), refs=[name, blob(10)[0]])  # a blob never put (its writer died first)
    owner = harness.open()
    assert owner.restore(0)["n"] == 0
    harness.damage_blob(0, name)
    damaged_reader = harness.open()
    damaged_reader.restore(0)
    with pytest.raises(MissingBlob, match="damaged"):
        damaged_reader.get_blob(0, name)


def labelled(start: int, n: int) -> list[tuple[Event, Record]]:
    """Labelled events with ids start..start+n-1 at offsets of the same numbers."""
    return [(Event(str(i), {"a": float(i % 7)}, i % 2, None, float(i)),
             Record(b"", Position("events", i, 0))) for i in range(start, start + n)]


def shards_on(store, allow_fresh_start: bool = False) -> Shards:
    return Shards(lambda: Predictor(tree.HoeffdingTreeClassifier(), "ht"), limits=JoinLimits(), audit=True,
                  allow_fresh_start=allow_fresh_start, store=store)


def test_shards_hand_a_shard_over_through_the_store_and_report_what_was_written(harness):
    shards = shards_on(harness.open())
    shards.get(0).process(labelled(0, 300), wall=1e9)
    shards.save()
    assert shards.saved_bytes == harness.newest_size(0) and shards.save_seconds > 0
    taken = shards_on(harness.open()).get(0)  # another replica takes the partition
    assert taken.predictor.learned == 300 and taken.positions == {("events", 0): 300}
    assert taken.learned_ids == [str(i) for i in range(300)]


def test_models_per_key_are_handed_over_as_blobs_and_reloaded_on_demand(harness):
    def keyed():
        return KeyedPredictor(tree.HoeffdingTreeClassifier, "ht", max_live=2)

    events = [(Event(str(i), {"a": float(i % 7), "b": float(i % 5)}, (i % 7 > 3) != (i % 3 == 0), f"k{i % 3}", float(i)),
               Record(b"", Position("events", i, 0))) for i in range(600)]
    shards = Shards(keyed, audit=True, store=harness.open())
    shards.get(0).process(events, wall=1e9)
    shards.save()
    probes = [Event("p", {"a": 5.0, "b": 1.0}, key=k) for k in ("k0", "k1", "k2")]
    expected = [p.proba for p in shards.get(0).predictor.process(probes)]
    taken = Shards(keyed, audit=True, store=harness.open()).get(0)  # another replica takes the partition
    assert taken.predictor.learned == 600 and sorted(taken.predictor.model.spilled) == ["k0", "k1", "k2"]
    assert [p.proba for p in taken.predictor.process(probes)] == expected


def test_shards_refuse_a_shard_whose_snapshots_are_all_damaged_unless_a_fresh_start_is_allowed(harness):
    shards = shards_on(harness.open())
    shards.get(0).process(labelled(0, 50), wall=1e9)
    shards.save()
    shards.save()
    harness.damage(0, newest=0)
    harness.damage(0, newest=1)
    with pytest.raises(DamagedCheckpoints):
        shards_on(harness.open()).get(0)
    fresh = shards_on(harness.open(), allow_fresh_start=True)
    assert fresh.get(0).predictor.learned == 0
    fresh.get(0).process(labelled(50, 20), wall=1e9)
    fresh.save()
    assert shards_on(harness.open()).get(0).learned_ids == [str(i) for i in range(50, 70)]


# What only the Kafka store has.

@pytest.fixture
def kafka(broker):
    harness = KafkaHarness(broker)
    yield harness
    harness.close()


def test_kafka_snapshots_are_chunked_under_the_record_size_and_compaction_keeps_two_per_shard(kafka):
    store = kafka.open(chunk_bytes=CHUNK)
    payloads = [pickle.dumps(state(n, size)) for n, size in enumerate([9000, 2000, 7000, 500, 4000, 12_000, 1000])]
    for n, payload in enumerate(payloads):
        store.save(0, payload)
        store.save(2, pickle.dumps(state(100 + n, 1500)))  # another shard on the same partition
    chunks = [-(-(len(frame(p)) + len(p)) // CHUNK) for p in payloads]
    records = [r for r in kafka.records(0) if r.key.startswith(b"shard-")]
    assert all(len(r.value) <= CHUNK for r in records if r.value is not None and b"/chunk-" in r.key)
    assert any(r.value is None for r in records), "shrinking snapshots should leave tombstones"
    manifests = kafka.manifests(0)
    assert [(g, count) for g, _, count in manifests] == [(6, chunks[6]), (5, chunks[5])]
    assert {s for _, s, _ in manifests} == {0, 1}
    expected = {"fence"} | {f"slot-{s}/manifest" for _, s, _ in manifests}
    expected |= {f"slot-{s}/chunk-{i}" for _, s, count in manifests for i in range(count)}
    assert set(kafka.live(0)) == expected, "compaction would keep more than two snapshots"
    assert kafka.open().restore(0)["n"] == 6 and kafka.open().restore(2)["n"] == 106


def test_kafka_readers_see_every_acknowledged_snapshot(kafka):
    """Each owner reads up to a fence it sent, so the snapshot another one just saved is never missed."""
    writers = [kafka.open(), kafka.open()]
    for n in range(12):
        writers[n % 2].restore(1)
        writers[n % 2].save(1, pickle.dumps(state(n, 1500)))
        assert writers[(n + 1) % 2].restore(1)["n"] == n


def test_kafka_store_refuses_a_missing_topic(broker):
    from stream_moe.kafka_store import KafkaStore, StateTopicMissing

    with pytest.raises(StateTopicMissing, match="checkpoint_topic 'absent-state' does not exist.*cleanup.policy"):
        KafkaStore(broker.bootstrap, "absent-state").check()
