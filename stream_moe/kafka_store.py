"""Shard snapshots on a compacted Kafka topic, so that replicas share nothing but the brokers.

The records of shard n go to partition n % (the topic's partition count), with these keys (UTF-8):

- `shard-<n>/slot-<s>/chunk-<i>`: the i-th piece, of at most `chunk_bytes`, of a snapshot. A snapshot is what a
  checkpoint file holds: the header line (format, sha256 of the pickle, `stream_moe.checkpoint.frame`), then the
  pickled state.
- `shard-<n>/slot-<s>/manifest`: sent once every chunk is acknowledged: the sha256 of a JSON object, a newline, the
  object (`generation`, `chunks`, `bytes`, `refs`: the blobs the snapshot refers to).
- `shard-<n>/blob-<sha256>/chunk-<i>-of-<count>`: the i-th piece of a blob (`stream_moe.checkpoint_store`), sent
  before the snapshot that refers to it; once no manifest refers to it, its chunks get tombstones.
- `shard-<n>/fence`: sent by a reader before it reads; it then reads up to it (end offsets can lag behind records
  already acknowledged).

A snapshot goes to the slot (0 or 1) that does not hold the newest complete one, so a writer killed midway leaves that
one whole; once its manifest is acknowledged, the chunks of its slot past its count get tombstones, and so do the blobs
neither manifest refers to. Compaction thus keeps, per shard, two manifests, the chunks of two snapshots, their blobs
and a fence.

A reader reads the partition from its start to its fence and keeps the newest value of each key of its shard (what
compaction keeps; of blobs, only where their chunks are), then tries the manifests, newest generation first: the first
whose chunks and blobs are all there and whose checksum holds is restored. A blob is read when it is asked for, from
the offsets of its chunks. Every record is sent with acks=all and `save` returns once the manifest is acknowledged,
so the offsets the service commits after it are always covered by a complete snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
import threading
import time
import typing
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.kafka import client_options
from stream_moe.checkpoint import FORMAT, MissingBlob, blob_digest, damaged, frame, incompatible, unframe

log = logging.getLogger(__name__)

SLOTS = 2
# Room in a producer request for a chunk's record framing, key and batch header.
RECORD_OVERHEAD = 64 * 1024


class StateTopicMissing(RuntimeError):
    """The checkpoint topic does not exist on the brokers."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A complete snapshot: its generation (higher is newer), its chunk count, its size in bytes and the blobs it
    refers to."""

    generation: int
    chunks: int
    bytes: int
    refs: tuple[str, ...] = ()

    def encode(self) -> bytes:
        body = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(body).hexdigest().encode() + b"\n" + body

    @classmethod
    def decode(cls, value: bytes) -> "Manifest":
        """The manifest a record value holds; `ValueError` when it is damaged."""
        digest, body = value.split(b"\n", 1)
        if hashlib.sha256(body).hexdigest().encode() != digest:
            raise ValueError("manifest checksum mismatch")
        fields = json.loads(body)
        return cls(int(fields["generation"]), int(fields["chunks"]), int(fields["bytes"]),
                   tuple(str(r) for r in fields.get("refs", ())))


@dataclasses.dataclass
class Slot:
    """The newest values of one slot's keys: its manifest (None: none) and its chunks by index (a value None once
    the snapshot was read: only the indices are kept)."""

    manifest: bytes | None = None
    chunks: dict[int, bytes | None] = dataclasses.field(default_factory=dict)

    def readable(self) -> Manifest | None:
        try:
            return Manifest.decode(self.manifest) if self.manifest is not None else None
        except (ValueError, KeyError, TypeError):
            return None

    def assemble(self, manifest: Manifest) -> bytes:
        """The snapshot the manifest describes; `ValueError` when a chunk is missing or the size differs."""
        missing = [i for i in range(manifest.chunks) if self.chunks.get(i) is None]
        if missing:
            raise ValueError(f"chunks {missing[:5]} of {manifest.chunks} missing")
        data = b"".join(self.chunks[i] for i in range(manifest.chunks))
        if len(data) != manifest.bytes:
            raise ValueError(f"{len(data)} bytes, not the manifest's {manifest.bytes}")
        return data


@dataclasses.dataclass
class ShardLog:
    """A shard's keys as compaction leaves them; `current` is the slot of the newest complete snapshot (None: none),
    `generation` the highest generation of a readable manifest (-1: none); `blobs` the offsets of each blob's chunks
    by index, with their count."""

    slots: dict[int, Slot] = dataclasses.field(default_factory=dict)
    current: int | None = None
    generation: int = -1
    blobs: dict[str, tuple[int, dict[int, int]]] = dataclasses.field(default_factory=dict)

    def put(self, name: str, value: bytes | None, offset: int = -1) -> None:
        """Take the record of key `shard-<n>/<name>` at `offset` (a tombstone when `value` is None)."""
        parts = name.split("/")
        if len(parts) == 2 and parts[0].startswith("blob-"):
            self.put_blob_chunk(parts[0][5:], parts[1], value is not None, offset)
            return
        if len(parts) != 2 or not parts[0].startswith("slot-") or not parts[0][5:].isdigit():
            return  # the fence, or a key of another layout
        slot = self.slots.setdefault(int(parts[0][5:]), Slot())
        if parts[1] == "manifest":
            slot.manifest = value
        elif parts[1].startswith("chunk-") and parts[1][6:].isdigit():
            if value is None:
                slot.chunks.pop(int(parts[1][6:]), None)
            else:
                slot.chunks[int(parts[1][6:])] = value

    def put_blob_chunk(self, digest: str, name: str, present: bool, offset: int) -> None:
        fields = name.split("-")  # chunk-<i>-of-<count>
        if len(fields) != 4 or not (fields[1].isdigit() and fields[3].isdigit()):
            return
        if not present:
            self.blobs.pop(digest, None)
            return
        count, offsets = self.blobs.setdefault(digest, (int(fields[3]), {}))
        offsets[int(fields[1])] = offset

    def has_blob(self, digest: str) -> bool:
        found = self.blobs.get(digest)
        return found is not None and len(found[1]) == found[0]

    def kept_refs(self) -> set[str] | None:
        """The blobs the readable manifests refer to (None when a manifest is damaged: its blobs are unknown)."""
        kept: set[str] = set()
        for slot in self.slots.values():
            if slot.manifest is not None:
                if (manifest := slot.readable()) is None:
                    return None
                kept.update(manifest.refs)
        return kept

    def newest(self, where: str) -> tuple[int, memoryview] | None:
        """The format and payload of the newest complete, intact snapshot (its slot becomes `current`), or None;
        damaged ones are logged and skipped."""
        readable = [(m, n) for n, slot in self.slots.items() if (m := slot.readable()) is not None]
        for n, slot in self.slots.items():
            if slot.manifest is not None and slot.readable() is None:
                log.warning("skipping snapshot in slot %d of %s: damaged manifest", n, where)
        self.generation = max((m.generation for m, _ in readable), default=-1)
        for manifest, n in sorted(readable, key=lambda found: found[0].generation, reverse=True):
            if missing := [r for r in manifest.refs if not self.has_blob(r)]:
                log.warning("skipping snapshot %d in slot %d of %s: %d of the blobs it refers to are missing",
                            manifest.generation, n, where, len(missing))
                continue
            try:
                form, _, payload = unframe(self.slots[n].assemble(manifest))
            except ValueError as err:
                log.warning("skipping snapshot %d in slot %d of %s: %s", manifest.generation, n, where, err)
                continue
            self.current = n
            return form, payload
        return None

    def forget_values(self) -> None:
        for slot in self.slots.values():
            slot.chunks = dict.fromkeys(slot.chunks)

    def leftovers(self) -> dict[int, list[int]]:
        """Chunk indices that no manifest refers to, by slot: those of a slot without a manifest, and those past the
        count of their slot's manifest (a slot whose manifest is damaged is left alone)."""
        found = {}
        for n, slot in self.slots.items():
            manifest = slot.readable()
            if slot.manifest is not None and manifest is None:
                continue
            count = manifest.chunks if manifest is not None else 0
            if stale := sorted(i for i in slot.chunks if i >= count):
                found[n] = stale
        return found


def chunk_key(shard: int, slot: int, index: int) -> bytes:
    return f"shard-{shard}/slot-{slot}/chunk-{index}".encode()


def manifest_key(shard: int, slot: int) -> bytes:
    return f"shard-{shard}/slot-{slot}/manifest".encode()


def blob_key(shard: int, digest: str, index: int, count: int) -> bytes:
    return f"shard-{shard}/blob-{digest}/chunk-{index}-of-{count}".encode()


class KafkaStore:
    """Snapshots of shards on `topic` (compacted, created beforehand, its partition count never changed) of the
    brokers at `bootstrap_servers`, cut in chunks of at most `chunk_bytes` (below the brokers' message.max.bytes);
    `client` holds the service's Kafka client options (security, ...). The producer and consumer are its own, opened
    on first use."""

    def __init__(self, bootstrap_servers: str, topic: str, chunk_bytes: int = 512 * 1024, client: dict | None = None,
                 read_timeout_s: float = 60.0):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.chunk_bytes = chunk_bytes
        self.client = dict(client or {})
        self.read_timeout_s = read_timeout_s
        self.producer: KafkaProducer | None = None
        self.consumer: KafkaConsumer | None = None
        self.partitions = 0
        self._logs: dict[int, ShardLog] = {}
        self._lock = threading.RLock()  # rebalance callbacks run on the source's IO thread

    def check(self) -> None:
        """Connect, and raise `StateTopicMissing` unless the topic exists."""
        with self._lock:
            if self.producer is not None:
                return
            options = client_options(self.client, "consumer")
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False,
                                     **{"max_partition_fetch_bytes": max(16 << 20, 2 * self.chunk_bytes), **options})
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                consumer.close()
                raise StateTopicMissing(
                    f"checkpoint_topic {self.topic!r} does not exist at {self.bootstrap_servers}; create it compacted, "
                    f"e.g. kafka-topics.sh --create --topic {self.topic} --partitions <those of the input topics> "
                    "--config cleanup.policy=compact")
            options = client_options(self.client, "producer")
            request = max(options.get("max_request_size", 1_048_576), self.chunk_bytes + RECORD_OVERHEAD)
            try:
                self.producer = KafkaProducer(bootstrap_servers=self.bootstrap_servers,
                                              **{**options, "acks": "all", "max_request_size": request})
            except Exception:
                consumer.close()
                raise
            self.consumer, self.partitions = consumer, len(partitions)

    def where(self, shard: int) -> str:
        return f"shard {shard} in topic {self.topic} (partition {shard % self.partitions})"

    def save(self, shard: int, payload: bytes, refs: typing.Iterable[str] = ()) -> int:
        with self._lock:
            self.check()
            shard_log = self._known(shard)
            slot = 1 if shard_log.current == 0 else 0
            refs = tuple(sorted(set(refs)))
            data = frame(payload, refs) + payload
            pieces = self._pieces(data)
            manifest = Manifest(shard_log.generation + 1, len(pieces), len(data), refs).encode()
            stale = [i for i in shard_log.slots.get(slot, Slot()).chunks if i >= len(pieces)]
            try:
                self._send(shard, [(chunk_key(shard, slot, i), piece) for i, piece in enumerate(pieces)])
                self._send(shard, [(manifest_key(shard, slot), manifest)])
                shard_log.slots[slot] = Slot(manifest, dict.fromkeys(range(len(pieces))))
                shard_log.current, shard_log.generation = slot, shard_log.generation + 1
                self._send(shard, [(chunk_key(shard, slot, i), None) for i in stale])
                self._collect(shard, shard_log)
            except BaseException:
                self._logs.pop(shard, None)  # what the topic holds is unknown now: read it again
                raise
            return len(data) + len(manifest)

    def put_blob(self, shard: int, digest: str, data: bytes) -> int:
        with self._lock:
            self.check()
            shard_log = self._known(shard)
            if shard_log.has_blob(digest):
                return 0
            pieces = self._pieces(data)
            try:
                sent = self._send(shard, [(blob_key(shard, digest, i, len(pieces)), piece)
                                          for i, piece in enumerate(pieces)])
            except BaseException:
                self._logs.pop(shard, None)
                raise
            shard_log.blobs[digest] = (len(pieces), {i: meta.offset for i, meta in enumerate(sent)})
            return len(data)

    def get_blob(self, shard: int, digest: str) -> bytes:
        with self._lock:
            self.check()
            found = self._known(shard).blobs.get(digest)
            if found is None or len(found[1]) != found[0]:
                raise MissingBlob(f"blob {digest} is not in {self.where(shard)}")
            count, offsets = found
            wanted = {offset: i for i, offset in offsets.items()}
            tp = TopicPartition(self.topic, shard % self.partitions)
            self.consumer.assign([tp])
            self.consumer.seek(tp, min(wanted))
            pieces, progress = {}, time.monotonic()
            while len(pieces) < count:
                polled = self.consumer.poll(timeout_ms=200)
                for records in polled.values():
                    for r in records:
                        if r.offset in wanted and r.value is not None:
                            pieces[wanted[r.offset]] = r.value
                stalled = not polled and time.monotonic() - progress > self.read_timeout_s
                if len(pieces) < count and (stalled or self.consumer.position(tp) > max(wanted)):
                    raise MissingBlob(f"blob {digest} of {self.where(shard)}: chunks "
                                      f"{sorted(set(range(count)) - set(pieces))} not at their offsets")
                if polled:
                    progress = time.monotonic()
            data = b"".join(pieces[i] for i in range(count))
            if blob_digest(data) != digest:
                raise MissingBlob(f"blob {digest} of {self.where(shard)} is damaged (its bytes do not match its name)")
            return data

    def restore(self, shard: int) -> typing.Any | None:
        with self._lock:
            self.check()
            shard_log = self._logs[shard] = self._scan(shard)
            found = shard_log.newest(self.where(shard))
            shard_log.forget_values()
            if found is None:
                if any(slot.manifest is not None for slot in shard_log.slots.values()):
                    raise damaged(f"of {self.where(shard)}", f"Delete its keys (tombstones for shard-{shard}/...)")
                return None
            form, payload = found
            if form != FORMAT:
                raise incompatible(self.where(shard), form, "Resume it with the version that wrote it, or delete "
                                   f"its keys (tombstones for shard-{shard}/...) to start fresh.")
            return pickle.loads(payload)

    def remove_leftovers(self, shard: int) -> None:
        with self._lock:
            self.check()
            shard_log = self._known(shard)
            leftovers = shard_log.leftovers()
            for slot, indices in leftovers.items():
                log.info("removing chunks %s of slot %d of %s, left by an interrupted save", indices, slot,
                         self.where(shard))
            self._send(shard, [(chunk_key(shard, slot, i), None) for slot, indices in leftovers.items()
                               for i in indices])
            for slot, indices in leftovers.items():
                for i in indices:
                    shard_log.slots[slot].chunks.pop(i)

    def close(self) -> None:
        with self._lock:
            for client in (self.producer, self.consumer):
                if client is not None:
                    client.close()
            self.producer = self.consumer = None
            self._logs.clear()

    def _known(self, shard: int) -> ShardLog:
        """What the topic holds of the shard, as the last restore read it (or as read now)."""
        shard_log = self._logs.get(shard)
        if shard_log is None:
            shard_log = self._logs[shard] = self._scan(shard)
            shard_log.newest(self.where(shard))
            shard_log.forget_values()
        return shard_log

    def _pieces(self, data: bytes) -> list[bytes]:
        return [data[i:i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes)] or [b""]

    def _collect(self, shard: int, shard_log: ShardLog) -> None:
        """Tombstones for the blobs that neither manifest refers to."""
        kept = shard_log.kept_refs()
        if kept is None:
            return
        gone = [d for d in shard_log.blobs if d not in kept]
        self._send(shard, [(blob_key(shard, d, i, shard_log.blobs[d][0]), None) for d in gone
                           for i in range(shard_log.blobs[d][0])])
        for d in gone:
            del shard_log.blobs[d]

    def _send(self, shard: int, records: list[tuple[bytes, bytes | None]]) -> list:
        """Send records to the shard's partition and wait until every in-sync replica has them; raises the first
        failure."""
        futures = [self.producer.send(self.topic, value=value, key=key, partition=shard % self.partitions)
                   for key, value in records]
        self.producer.flush()
        return [future.get() for future in futures]

    def _scan(self, shard: int) -> ShardLog:
        """The newest value of each key of the shard, read from the start of its partition up to a fence sent
        now."""
        [fence] = self._send(shard, [(f"shard-{shard}/fence".encode(), uuid.uuid4().hex.encode())])
        tp = TopicPartition(self.topic, shard % self.partitions)
        self.consumer.assign([tp])
        self.consumer.seek_to_beginning(tp)
        prefix = f"shard-{shard}/".encode()
        shard_log, progress = ShardLog(), time.monotonic()
        while self.consumer.position(tp) <= fence.offset:
            polled = self.consumer.poll(timeout_ms=200)
            for records in polled.values():
                for r in records:
                    if r.key is not None and r.key.startswith(prefix):
                        shard_log.put(r.key[len(prefix):].decode("utf-8", "replace"), r.value, r.offset)
            if polled:
                progress = time.monotonic()
            elif time.monotonic() - progress > self.read_timeout_s:
                raise TimeoutError(f"reading {self.where(shard)}: nothing came for {self.read_timeout_s:g} s before "
                                   f"offset {fence.offset}")
        return shard_log
