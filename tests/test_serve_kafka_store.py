"""Replicas that share nothing but the broker: their checkpoints in the Kafka store (a compacted topic), their working
directories apart. One is killed mid-stream; the other takes its partition from the store, and every event is
predicted, every label learned exactly once."""

from __future__ import annotations

import json
import time
import urllib.request

import yaml

from kafka_broker import consume, fresh_topics, produce, start_serve, terminate, write_config
from stream_moe.kafka_store import KafkaStore
from test_serve_kafka import assignments, events, predicted_ids
from test_serve_safety import error_line, serve

CHUNK = 16 * 1024


def store_states(broker, topic: str, shards: int) -> dict[int, dict | None]:
    """The newest snapshot of each shard, as a new owner would restore it."""
    store = KafkaStore(broker.bootstrap, topic)
    try:
        return {n: store.restore(n) for n in range(shards)}
    finally:
        store.close()


def resumed_at(log) -> list[dict[str, int]]:
    """The positions each assignment in a replica's log resumed at."""
    return [json.loads(line)["resume_at"] for line in log.read_text().splitlines()
            if '"message": "partitions assigned"' in line]


def metric(log, name: str) -> float:
    """A value of the replica's /metrics, at the address its log gives."""
    address = next(json.loads(line)["address"] for line in log.read_text().splitlines() if '"ops endpoints"' in line)
    text = urllib.request.urlopen(f"{address}/metrics", timeout=10).read().decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def test_a_replica_killed_mid_stream_hands_its_partition_over_through_the_kafka_store(broker, tmp_path):
    topics = fresh_topics(broker, 2, "events", "labels", "predictions", "dead", "state")
    for replica in "ab":
        (tmp_path / replica).mkdir()
    # river's trees: slow enough that the kill lands in the middle of the stream
    config = write_config(tmp_path / "a" / "service.yaml", broker, topics, model="driftmoe-river",
                          checkpoint_every_s=0.3, checkpoint_store="kafka", checkpoint_topic=topics["state"],
                          checkpoint_chunk_bytes=CHUNK)
    settings = yaml.safe_load(config.read_text())
    settings["serve"]["checkpoint_dir"] = str(tmp_path / "b" / "checkpoints")  # same group; nothing else shared
    (tmp_path / "b" / "service.yaml").write_text(yaml.safe_dump(settings))
    n = 3000
    stream = events(0, n)
    for e in stream[::3]:  # every third event's label comes later, on the label topic (ahead of its event)
        del e["y"]
    labels = [{"id": e["id"], "y": int(e["x"]["f1"] + e["x"]["f2"] <= 8)} for e in stream[::3]]
    produce(broker, topics["labels"], labels, partitions=2)  # label of event 3j to partition 3j % 2 = j % 2
    produce(broker, topics["events"], stream, partitions=2)

    a = start_serve(config, tmp_path / "a" / "serve.log")
    b = start_serve(tmp_path / "b" / "service.yaml", tmp_path / "b" / "serve.log")
    deadline = time.monotonic() + 120
    while not (any(len(p) == 1 for p in assignments(tmp_path / "b" / "serve.log"))
               and any(len(p) == 1 for p in assignments(tmp_path / "a" / "serve.log"))):
        assert time.monotonic() < deadline, "the two replicas did not split the partitions"
        time.sleep(0.2)
    [mine] = assignments(tmp_path / "b" / "serve.log")[-1]
    position = (topics["events"], mine)
    start = resumed_at(tmp_path / "b" / "serve.log")[-1].get(f"{topics['events']}:{mine}", 0)
    deadline = time.monotonic() + 180
    while (saved := (store_states(broker, topics["state"], 2)[mine] or {}).get("positions", {}).get(position, 0)) \
            < start + 150:  # b has checkpointed 150 events of its own to the store
        assert time.monotonic() < deadline, "the second replica saved no progress"
        time.sleep(0.2)
    b.kill()
    b.wait()

    expected = {str(i) for i in range(n)}
    assert predicted_ids(broker, topics["predictions"], 2, expected, timeout_s=300) >= expected
    deadline = time.monotonic() + 180
    while sum(s["learned"] for s in store_states(broker, topics["state"], 2).values() if s) < n:
        assert time.monotonic() < deadline, "not every label was learned"
        time.sleep(1.0)
    assert metric(tmp_path / "a" / "serve.log", "stream_moe_checkpoint_bytes") > 2 * CHUNK
    assert metric(tmp_path / "a" / "serve.log", "stream_moe_checkpoint_seconds") > 0
    assert terminate(a) == 0

    assert assignments(tmp_path / "a" / "serve.log")[-1] == [0, 1], "the survivor should own both partitions"
    taken = resumed_at(tmp_path / "a" / "serve.log")[-1][f"{topics['events']}:{mine}"]
    assert saved <= taken < n // 2, "the survivor should resume the killed one's partition from its snapshot"
    states = store_states(broker, topics["state"], 2)
    learned = [i for s in states.values() for i in s["learned_ids"]]
    assert sum(s["learned"] for s in states.values()) == n, "labelled events lost"
    assert len(learned) == len(set(learned)), "an event was learned twice"
    assert set(learned) == expected
    assert all(len(s["learned_ids"]) > 0 for s in states.values())
    assert consume(broker, topics["dead"], 2, lambda v: False, timeout_s=3) == []
    assert "Traceback" not in (tmp_path / "a" / "serve.log").read_text()
    assert not (tmp_path / "a" / "checkpoints").exists() and not (tmp_path / "b" / "checkpoints").exists()


def test_the_kafka_store_without_its_topic_or_without_kafka_is_refused_at_start(broker, tmp_path):
    kafka = {"bootstrap_servers": broker.bootstrap, "topics": ["events"], "group_id": "refused"}
    line = error_line(serve(tmp_path, kafka=kafka, checkpoint_store="kafka", checkpoint_topic="no-such-state"))
    assert "checkpoint_topic 'no-such-state' does not exist" in line and "cleanup.policy=compact" in line
    assert "serve.kafka, which is not set" in error_line(serve(tmp_path, checkpoint_store="kafka"))
