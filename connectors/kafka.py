"""Kafka source and sinks (kafka-python): a consumer-group member with manual commits, and JSON producers (through a
producer in a child process).

The source never commits by itself: the service commits positions only after a checkpoint holds what was learned
from the records before them, and on assignment seeks each partition to the position its shard's checkpoint holds.
Partitions are assigned by range, so the partitions with the same number of co-partitioned topics (events and labels)
go to the same replica; topics with different partition counts are refused at start. Client options (SASL, SSL, ...)
are passed through unchanged.
"""

from __future__ import annotations

import json
import logging
import typing

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

from connectors.producer_process import ProducerProcess
from stream_moe.events import DeadLetter, Position, Prediction, Record

log = logging.getLogger(__name__)

# Options that belong to the producer or the consumer only; everything else in `client` goes to both.
CONSUMER_ONLY = {"fetch_max_bytes", "max_partition_fetch_bytes", "fetch_min_bytes", "fetch_max_wait_ms",
                 "max_poll_interval_ms", "heartbeat_interval_ms", "isolation_level"}
PRODUCER_ONLY = {"acks", "linger_ms", "compression_type", "batch_size", "max_request_size", "retries"}


def client_options(client: dict, role: str) -> dict:
    excluded = PRODUCER_ONLY if role == "consumer" else CONSUMER_ONLY
    return {k: v for k, v in client.items() if k not in excluded}


class _Listener(AsyncConsumerRebalanceListener):
    """Runs on the consumer's IO thread while the caller waits in `poll`; being a coroutine, it can await the commit
    of the revoked partitions' positions (a blocking commit from this thread is refused by kafka-python)."""

    def __init__(self, source: "KafkaSource"):
        self.source = source

    async def on_partitions_revoked(self, revoked):
        if revoked and self.source.on_revoke is not None:
            try:
                positions = self.source.on_revoke(sorted({tp.partition for tp in revoked}))
            except Exception as err:  # e.g. the checkpoint could not be written: nothing is committed
                self.source.failure = err
                return
            if positions:
                await self.source.commit_async(positions)

    async def on_partitions_assigned(self, assigned):
        if assigned and self.source.on_assign is not None:
            try:
                self.source.on_assign(sorted({tp.partition for tp in assigned}))
            except Exception as err:  # e.g. a shard that cannot be restored: raised from `batches`
                self.source.failure = err


class KafkaSource:
    """Records of the subscribed topics, polled in micro-batches; an empty batch when nothing came within the wait,
    so the caller keeps its clock (checkpoints, health) running.

    `on_assign(partitions)` and `on_revoke(partitions)` are called (from inside a poll) with partition numbers;
    `on_revoke` returns the positions to commit before the partitions go to another member.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: typing.Sequence[str],
        group_id: str,
        session_timeout_ms: int = 10000,
        client: dict | None = None,
        on_assign: typing.Callable[[list[int]], None] | None = None,
        on_revoke: typing.Callable[[list[int]], dict[tuple[str, int], int]] | None = None,
        poll_records: int = 500,
    ):
        self.name = ",".join(topics)
        self.poll_records = poll_records
        self.topics = list(topics)
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.failure: Exception | None = None  # raised by a rebalance callback, re-raised by `batches`
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 6),
            partition_assignment_strategy=[RangePartitionAssignor],
            # a caught-up consumer's fetch returns within this; kafka-python's default of 500 ms would dominate the
            # event-to-prediction latency at half the service's rate (benchmarks/serve_kafka.py, docs/serving.md)
            **{"fetch_max_wait_ms": 50, **client_options(client or {}, "consumer")},
        )
        try:
            self._check_copartitioned()
        except ValueError:
            self.consumer.close()
            raise
        self.consumer.subscribe(self.topics, listener=_Listener(self))

    def _check_copartitioned(self) -> None:
        """The model state is one shard per partition number, and range assignment gives partition n of every topic
        to the same replica: so every subscribed topic (the events, the labels) must have as many partitions, or labels
        would reach a shard that never saw their events. Topics that do not exist yet are not checked."""
        counts = {topic: len(p) for topic in self.topics if (p := self.consumer.partitions_for_topic(topic))}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{topic} has {n}" for topic, n in counts.items())
            raise ValueError(f"the topics must have as many partitions each (co-partitioned): {listed}")

    def batches(self, max_records: int, max_wait_s: float) -> typing.Iterator[list[Record]]:
        """Each poll takes up to `poll_records` (a call to kafka-python costs far more than handing over a record),
        cut into micro-batches of `max_records`; rebalances happen only inside a poll, so between two batches of one
        poll the assignment cannot change."""
        while True:
            polled = self.consumer.poll(timeout_ms=int(max_wait_s * 1000), max_records=max(max_records,
                                                                                          self.poll_records))
            if self.failure is not None:
                raise self.failure
            records = [
                Record(m.value, Position(m.topic, m.offset, m.partition))
                for messages in polled.values()
                for m in messages
            ]
            if not records:
                yield []
            for start in range(0, len(records), max_records):
                yield records[start:start + max_records]

    def seek(self, positions: dict[tuple[str, int], int]) -> None:
        """Resume the given (topic, partition)s that are assigned to this member at these offsets."""
        assigned = self.consumer.assignment()
        for (topic, partition), offset in positions.items():
            if (tp := TopicPartition(topic, partition)) in assigned:
                self.consumer.seek(tp, offset)

    def _offsets(self, positions: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndMetadata]:
        assigned = self.consumer.assignment()
        return {
            tp: OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in positions.items()
            if (tp := TopicPartition(topic, partition)) in assigned
        }

    def commit(self, positions: dict[tuple[str, int], int]) -> None:
        """Commit these offsets of the partitions still assigned to this member."""
        if offsets := self._offsets(positions):
            self.consumer.commit(offsets)

    async def commit_async(self, positions: dict[tuple[str, int], int]) -> None:
        """`commit`, awaited on the consumer's IO thread (from a rebalance listener); a failure is logged, as the
        checkpoint alone decides where the next owner resumes."""
        if offsets := self._offsets(positions):
            try:
                await self.consumer._coordinator._commit_offsets_sync_async(offsets)
                log.info("committed on revoke", extra={"offsets": {f"{tp.topic}:{tp.partition}": o.offset
                                                                   for tp, o in offsets.items()}})
            except Exception as err:
                log.warning("offset commit on revoke failed", extra={"error": repr(err)})

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet consumed per assigned partition, from the high-water marks of the last fetches."""
        lags = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                lags[(tp.topic, tp.partition)] = max(0, high - self.consumer.position(tp))
        return lags

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def make_producer(bootstrap_servers: str, client: dict | None = None) -> ProducerProcess:
    """The service's producer, in a child process (see `connectors.producer_process`)."""
    return ProducerProcess(bootstrap_servers, {"linger_ms": 5, **client_options(client or {}, "producer")})


class PredictionsUndelivered(RuntimeError):
    """Predictions the broker did not take: the service must not checkpoint past their records."""


class KafkaPredictionSink:
    """Predictions as JSON to a topic, keyed by the event's key (else its id). `flush` waits for delivery and raises
    `PredictionsUndelivered` if any failed, so that the service stops before a checkpoint skips their records: a
    restart predicts them again from the last checkpoint."""

    def __init__(self, producer: ProducerProcess, topic: str, model_name: str, model_version: str):
        self.producer = producer
        self.topic = topic
        self.model_name = model_name
        self.model_version = model_version
        self._failed = 0

    def write(self, predictions: list[Prediction]) -> None:
        name, version = self.model_name, self.model_version
        self.producer.send(self.topic, [((p.key or p.id).encode(), p.to_bytes(name, version)) for p in predictions])

    def flush(self) -> None:
        self.producer.flush()
        failed = self.producer.failed.get(self.topic, 0)
        if failed > self._failed:
            lost, self._failed = failed - self._failed, failed
            raise PredictionsUndelivered(f"{lost} predictions were not delivered to {self.topic!r}; stopping before "
                                         "a checkpoint, so that a restart predicts their records again")

    def close(self) -> None:
        self.producer.close()


class KafkaDeadLetterSink:
    """Dead letters (raw input, reason, kind, source position) as JSON to a topic, each cut to `max_bytes` (see
    `DeadLetter.to_json`). A letter the producer refuses or fails to deliver is logged and counted in `lost`, never
    raised: a dead letter must not stop the service."""

    def __init__(self, producer: ProducerProcess, topic: str, max_bytes: int = 262_144):
        self.producer = producer
        self.topic = topic
        self.max_bytes = max_bytes

    @property
    def lost(self) -> int:
        """Letters not delivered, as of the producer's last flush."""
        return self.producer.failed.get(self.topic, 0)

    def write(self, letters: list[DeadLetter]) -> None:
        self.producer.send(self.topic, [(None, json.dumps(letter.to_json(self.max_bytes)).encode())
                                        for letter in letters])

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


def check_reachable(bootstrap_servers: str, timeout_s: float = 5.0) -> None:
    """Raise `ConnectionError`, naming every address and why it failed, unless a TCP connection to one of the
    bootstrap servers opens within `timeout_s`: the client itself would retry and log for long before failing.

    >>> check_reachable("127.0.0.1:1", timeout_s=1.0)
    Traceback (most recent call last):
    ...
    ConnectionError: no Kafka broker reachable at 127.0.0.1:1 (127.0.0.1:1: Connection refused)
    """
    import socket

    failures = []
    for address in (a.strip() for a in bootstrap_servers.split(",") if a.strip()):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            host, port = address, "9092"
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return
        except OSError as err:
            failures.append(f"{address}: {err.strerror or err}")
    raise ConnectionError(f"no Kafka broker reachable at {bootstrap_servers} ({'; '.join(failures) or 'no address'})")
