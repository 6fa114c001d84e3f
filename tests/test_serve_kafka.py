"""`stream-moe serve` end to end against a real broker: delivery, crash safety, delayed labels, bad input, SIGTERM;
and a forecaster of link loads."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time

import pytest
import yaml

from connectors.network.events import scenario_events
from connectors.network.scenario import load_scenario
from connectors.network.simulator import simulate
from kafka_broker import Tombstone, consume, fresh_topics, produce, shard_states, start_serve, terminate, write_config
from stream_moe.commands.serve import served_forecaster
from stream_moe.config import Settings
from stream_moe.events import Event


def events(start: int, n: int, labelled: bool = True, seed: int = 0) -> list[dict]:
    """SEA-like events with ids start..start+n-1 and timestamps equal to their index."""
    rng = random.Random(seed + start)
    out = []
    for i in range(start, start + n):
        x = {"f1": rng.uniform(0, 10), "f2": rng.uniform(0, 10), "f3": rng.uniform(0, 10)}
        event = {"id": str(i), "ts": float(i), "x": x}
        if labelled:
            event["y"] = int(x["f1"] + x["f2"] <= 8)
        out.append(event)
    return out


def predicted_ids(broker, topic, partitions, expected: set[str], timeout_s: float = 90.0) -> set[str]:
    values = consume(broker, topic, partitions, lambda v: {p["id"] for p in v} >= expected, timeout_s)
    return {p["id"] for p in values}


def checkpointed(checkpoint_dir, count) -> int:
    """The sum of `count(state)` over the shards' newest checkpoints, read while the service writes them (0 on a
    race)."""
    try:
        return sum(count(s) for s in shard_states(checkpoint_dir).values())
    except Exception:
        return 0


def check_learned_once(checkpoint_dir, expected: set[str]) -> None:
    states = shard_states(checkpoint_dir)
    learned = [i for s in states.values() for i in s["learned_ids"]]
    assert sum(s["learned"] for s in states.values()) == len(expected)
    assert len(learned) == len(set(learned)), "an event was learned twice"
    assert set(learned) == expected, "an event was never learned"


def test_serve_predicts_learns_and_resumes_after_sigterm(broker, tmp_path):
    topics = fresh_topics(broker, 2, "events", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, model="driftmoe-data",
                          features=["f1", "f2", "f3"], classes=[0, 1])
    produce(broker, topics["events"], events(0, 300), partitions=2)
    service = start_serve(config, tmp_path / "serve.log")
    first = {str(i) for i in range(300)}
    assert predicted_ids(broker, topics["predictions"], 2, first) >= first
    assert terminate(service) == 0
    check_learned_once(tmp_path / "checkpoints", first)

    produce(broker, topics["events"], events(300, 200), partitions=2)
    service = start_serve(config, tmp_path / "serve.log")
    both = {str(i) for i in range(500)}
    assert predicted_ids(broker, topics["predictions"], 2, both) >= both
    assert terminate(service) == 0
    check_learned_once(tmp_path / "checkpoints", both)
    positions = {k: v for s in shard_states(tmp_path / "checkpoints").values() for k, v in s["positions"].items()}
    assert positions == {(topics["events"], 0): 250, (topics["events"], 1): 250}


def saved_checkpoints(checkpoint_dir) -> set[str]:
    return {str(p) for p in checkpoint_dir.glob("shard-*/checkpoint-*.pkl")}


def wait_for_new_checkpoint(checkpoint_dir, since: set[str], timeout_s: float = 60.0) -> None:
    """Block until a checkpoint not in `since` exists, so that a kill lands after this run has saved progress."""
    deadline = time.monotonic() + timeout_s
    while not saved_checkpoints(checkpoint_dir) - since:
        assert time.monotonic() < deadline, "the service wrote no checkpoint"
        time.sleep(0.05)


def wait_until_serving(log, starts: int, timeout_s: float = 120.0) -> None:
    """Block until the service's log shows its `starts`-th start serving (its stop-signal handlers installed)."""
    deadline = time.monotonic() + timeout_s
    while log.read_text().count('"message": "serving"') < starts:
        assert time.monotonic() < deadline, "the service did not start serving"
        time.sleep(0.05)


def kill_mid_stream(broker, config, topics, tmp_path, n: int, shares: list[float]) -> subprocess.Popen:
    """Start the service and SIGKILL it once each share of the `n` events has been predicted and a checkpoint saved
    since its start; then start it once more and wait until it has predicted every event. Returns that last run."""
    for share in shares:
        before = saved_checkpoints(tmp_path / "checkpoints")
        service = start_serve(config, tmp_path / "serve.log")
        target = {str(i) for i in range(int(n * share))}
        consume(broker, topics["predictions"], 2, lambda v: len({p["id"] for p in v} & target) >= len(target), 120)
        wait_for_new_checkpoint(tmp_path / "checkpoints", since=before)
        service.kill()
        service.wait()
    service = start_serve(config, tmp_path / "serve.log")
    expected = {str(i) for i in range(n)}
    assert predicted_ids(broker, topics["predictions"], 2, expected, timeout_s=180) >= expected
    wait_until_serving(tmp_path / "serve.log", starts=len(shares) + 1)  # the killed runs may have predicted it all
    return service


def test_serve_survives_sigkill_without_losing_or_relearning(broker, tmp_path):
    topics = fresh_topics(broker, 2, "events", "predictions", "dead")
    # river's trees: slow enough that each kill lands in the middle of the stream
    config = write_config(tmp_path / "service.yaml", broker, topics, model="driftmoe-river", checkpoint_every_s=0.3)
    n = 2400
    produce(broker, topics["events"], events(0, n), partitions=2)
    rng = random.Random(7)
    shares = [share + rng.uniform(-0.05, 0.05) for share in (0.15, 0.4, 0.65)]
    service = kill_mid_stream(broker, config, topics, tmp_path, n, shares)
    assert terminate(service) == 0
    check_learned_once(tmp_path / "checkpoints", {str(i) for i in range(n)})
    resumed = [line for line in (tmp_path / "serve.log").read_text().splitlines() if '"resume_at": {"' in line]
    assert len(resumed) >= 3, "the kills should have hit a service in the middle of the stream"


def test_delayed_labels_join_and_unmatched_ones_expire(broker, tmp_path):
    topics = fresh_topics(broker, 2, "events", "labels", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, pending_max_age_s=50.0)
    unlabelled = events(0, 200, labelled=False)
    produce(broker, topics["events"], unlabelled, partitions=2)
    service = start_serve(config, tmp_path / "serve.log")
    ids = {str(i) for i in range(200)}
    assert predicted_ids(broker, topics["predictions"], 2, ids) >= ids
    truth = {e["id"]: int(e["x"]["f1"] + e["x"]["f2"] <= 8) for e in unlabelled}
    # Each shard's clock is its newest event time (198 and 199) and the age limit 50: ids 148..199 are still
    # waiting, the 148 older ones have expired. Labels go to the partition of their event (index parity = id parity).
    late = [{"id": str(i), "y": truth[str(i)]} for i in range(150, 200)]
    expired = [{"id": str(i), "y": truth[str(i)]} for i in range(0, 10)]
    produce(broker, topics["labels"], late + expired, partitions=2)
    letters = consume(broker, topics["dead"], 2, lambda v: len(v) >= 10, timeout_s=60)
    assert terminate(service) == 0
    assert len(letters) == 10 and {d["kind"] for d in letters} == {"unknown_id"}
    assert {d["source"] for d in letters} == {topics["labels"]}
    assert all("labelled already or waited longer" in d["reason"] for d in letters)
    states = shard_states(tmp_path / "checkpoints")
    assert sum(s["learned"] for s in states.values()) == 50
    assert sum(s["joins"].pending.joined for s in states.values()) == 50
    assert sum(s["joins"].pending.expired for s in states.values()) == 148


BAD_INPUT = {
    "invalid_json": b'{"id": "b1", "x": {"f1": 1.0,',
    "wrong_type": {"id": "b2", "x": {"f1": "1.0", "f2": [1], "f3": 2.0}, "y": 0},
    "missing_feature": {"id": "b3", "x": {"f1": 1.0, "f2": 2.0}, "y": 0},
    "extra_feature": {"id": "b4", "x": {"f1": 1.0, "f2": 2.0, "f3": 3.0, "f4": 4.0}, "y": 0},
    "unknown_class": {"id": "b6", "x": {"f1": 1.0, "f2": 2.0, "f3": 3.0}, "y": 7},
    "oversized": {"id": "b7", "x": {"f1": 1.0, "f2": 2.0, "f3": 3.0}, "y": 0, "key": "k" * 5000},
    "unknown_id": {"id": "0", "y": 1},  # event 0 came with its label: a second one joins nothing
}


def test_bad_input_goes_to_dead_letters_and_serving_goes_on(broker, tmp_path):
    topics = fresh_topics(broker, 1, "events", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, features=["f1", "f2", "f3"], classes=[0, 1],
                          max_message_bytes=4096)
    good = events(0, 100)
    stream = good[:50] + list(BAD_INPUT.values()) + good[50:]
    produce(broker, topics["events"], stream)
    service = start_serve(config, tmp_path / "serve.log")
    ids = {str(i) for i in range(100)}
    assert predicted_ids(broker, topics["predictions"], 1, ids) >= ids
    letters = consume(broker, topics["dead"], 1, lambda v: len(v) >= len(BAD_INPUT))
    assert terminate(service) == 0
    assert sorted(d["kind"] for d in letters) == sorted(BAD_INPUT)
    for letter in letters:
        assert letter["reason"] and letter["source"] == topics["events"] and letter["partition"] == 0
        assert 50 <= letter["offset"] < 50 + len(BAD_INPUT)
    check_learned_once(tmp_path / "checkpoints", ids)


POISON = [  # each crashed the service once, at the same offset after every restart
    ("invalid_json", b'{"id": "p1", "x": {"f1": ' + b"[" * 100_000 + b"]" * 100_000 + b', "f2": 1, "f3": 1}}'),
    ("tombstone", Tombstone),
    ("wrong_type", {"id": "p3", "x": {"f1": "abc", "f2": 1.0, "f3": 2.0}, "y": 0}),  # no declared kinds
    ("invalid_json", b'{"id": "p4", "x": {"f1": 1' + b"0" * 400 + b', "f2": 1.0, "f3": 2.0}, "y": 0}'),
    ("bad_ts", {"id": "p5", "ts": 1e300, "x": {"f1": 1.0, "f2": 1.0, "f3": 2.0}}),
    ("invalid_json", b"\xff" * 500_000),  # its letter, escaped, would be 2 MB: cut to fit
    ("duplicate_id", {"id": "3", "x": {"f1": 1.0, "f2": 1.0, "f3": 2.0}, "y": 1}),
]


def test_poison_messages_become_dead_letters_and_never_stop_the_service(broker, tmp_path):
    topics = fresh_topics(broker, 1, "events", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, model="driftmoe-data", max_message_bytes=600_000,
                          client={"max_request_size": 300_000})
    good = events(0, 200)
    produce(broker, topics["events"], good[:100] + [raw for _, raw in POISON] + good[100:])
    service = start_serve(config, tmp_path / "serve.log")
    ids = {str(i) for i in range(200)}
    assert predicted_ids(broker, topics["predictions"], 1, ids) >= ids
    letters = consume(broker, topics["dead"], 1, lambda v: len(v) >= len(POISON))
    assert terminate(service) == 0
    assert sorted(d["kind"] for d in letters) == sorted(kind for kind, _ in POISON)
    assert sorted(d["offset"] for d in letters) == list(range(100, 100 + len(POISON)))
    cut = next(d for d in letters if d.get("truncated"))
    assert cut["raw_bytes"] == 500_000 and cut["raw_sha256"] == hashlib.sha256(b"\xff" * 500_000).hexdigest()
    assert len(json.dumps(cut)) <= 300_000 and cut["raw"].startswith("\\xff")
    assert next(d for d in letters if d["kind"] == "wrong_type")["reason"] == "feature 'f1' is numeric, got 'abc'"
    check_learned_once(tmp_path / "checkpoints", ids)

    produce(broker, topics["events"], events(200, 50))  # a restart resumes after the poison, and serves on
    service = start_serve(config, tmp_path / "serve.log")
    more = {str(i) for i in range(250)}
    assert predicted_ids(broker, topics["predictions"], 1, more) >= more
    assert terminate(service) == 0
    check_learned_once(tmp_path / "checkpoints", more)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_labels_ahead_of_their_events_are_learned_exactly_once_across_sigkills(broker, tmp_path):
    """Every label arrives before its event: the service reads the label topic, checkpoints the labels as early ones
    and is SIGKILLed before the events are produced; after that and every later SIGKILL the events catch up from
    their checkpointed positions and each joins its restored label once."""
    topics = fresh_topics(broker, 2, "events", "labels", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, model="driftmoe-river", checkpoint_every_s=0.3)
    n = 1500
    unlabelled = events(0, n, labelled=False)
    labels = [{"id": e["id"], "y": int(e["x"]["f1"] + e["x"]["f2"] <= 8)} for e in unlabelled]
    produce(broker, topics["labels"], labels, partitions=2)  # label i goes to the partition of event i
    service = start_serve(config, tmp_path / "labels-only.log")
    deadline = time.monotonic() + 120
    while checkpointed(tmp_path / "checkpoints", lambda s: len(s["joins"].early)) < n:
        assert time.monotonic() < deadline, "the labels were not checkpointed as early ones"
        time.sleep(0.2)
    service.kill()
    service.wait()
    produce(broker, topics["events"], unlabelled, partitions=2)
    service = kill_mid_stream(broker, config, topics, tmp_path, n, [0.2, 0.45, 0.7])
    deadline = time.monotonic() + 120
    while checkpointed(tmp_path / "checkpoints", lambda s: s["learned"]) < n:
        assert time.monotonic() < deadline, "not every label was learned"
        time.sleep(0.5)
    assert terminate(service) == 0
    check_learned_once(tmp_path / "checkpoints", {str(i) for i in range(n)})
    states = shard_states(tmp_path / "checkpoints")
    assert sum(s["joins"].early.joined for s in states.values()) == n, "every label arrived before its event"
    assert sum(len(s["joins"].early) + len(s["joins"].pending) for s in states.values()) == 0
    letters = consume(broker, topics["dead"], 2, lambda v: False, timeout_s=3)
    assert letters == []


def test_predictions_the_broker_refuses_stop_the_service_before_a_checkpoint(broker, tmp_path):
    """Predictions are at-least-once: if the producer cannot deliver them, the service exits without checkpointing
    past their records, and a restart predicts them again."""
    topics = fresh_topics(broker, 1, "events", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, client={"max_request_size": 120})
    produce(broker, topics["events"], events(0, 50))
    service = start_serve(config, tmp_path / "serve.log")
    assert service.wait(120) == 1
    log = (tmp_path / "serve.log").read_text()
    assert "predictions were not delivered" in log and "Traceback" not in log
    # a checkpoint may be taken before the first records arrive; none holds a position past them
    assert all(not state["positions"] for state in shard_states(tmp_path / "checkpoints").values())


def test_models_per_key_learn_exactly_once_across_a_sigkill(broker, tmp_path):
    """`model_per: key` with more keys than live models: spilled and live models are checkpointed with their shard,
    so a SIGKILL neither loses nor repeats any key's learning; their routers share a router bank."""
    topics = fresh_topics(broker, 2, "events", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, model="driftmoe-data", model_per="key",
                          max_models=2, router_bank="on", checkpoint_every_s=0.3)
    n = 1600
    stream = [{**e, "key": f"k{i % 5}"} for i, e in enumerate(events(0, n))]
    produce(broker, topics["events"], stream, partitions=2)
    service = start_serve(config, tmp_path / "serve.log")
    half = {str(i) for i in range(n // 2)}
    consume(broker, topics["predictions"], 2, lambda v: {p["id"] for p in v} >= half, 120)
    wait_for_new_checkpoint(tmp_path / "checkpoints", since=set())
    service.kill()
    service.wait()
    service = start_serve(config, tmp_path / "serve.log")
    every = {str(i) for i in range(n)}
    predictions = consume(broker, topics["predictions"], 2, lambda v: {p["id"] for p in v} >= every, 180)
    wait_until_serving(tmp_path / "serve.log", starts=2)
    assert terminate(service) == 0
    assert {p["key"] for p in predictions} == {f"k{k}" for k in range(5)}
    check_learned_once(tmp_path / "checkpoints", every)
    states = shard_states(tmp_path / "checkpoints")
    assert all(len(s["model"].live) <= 2 and len(s["model"]) >= 2 for s in states.values())
    assert sum(s["model"].spills for s in states.values()) > 0


def test_topics_with_different_partition_counts_are_refused_at_start(broker):
    """Labels must reach the shard (partition number) that holds their events: a label topic partitioned otherwise
    than the events is refused with a clear error instead of dead-lettering its labels as unknown ids."""
    from connectors.kafka import KafkaSource

    two, one = fresh_topics(broker, 2, "events", "labels"), fresh_topics(broker, 1, "labels")
    with pytest.raises(ValueError, match=rf"{two['events']} has 2, {one['labels']} has 1"):
        KafkaSource(broker.bootstrap, [two["events"], one["labels"]], "refused", session_timeout_ms=6000)
    KafkaSource(broker.bootstrap, [two["events"], two["labels"]], "accepted", session_timeout_ms=6000).close()


def assignments(log) -> list[list[int]]:
    return [
        json.loads(line)["partitions"] for line in log.read_text().splitlines()
        if '"message": "partitions assigned"' in line
    ]


def committed(broker, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


def test_two_replicas_hand_over_partitions_with_committed_positions_and_no_repredictions(broker, tmp_path):
    topics = fresh_topics(broker, 2, "events", "predictions", "dead")
    config = write_config(tmp_path / "service.yaml", broker, topics, model="driftmoe-data")
    group = yaml.safe_load(config.read_text())["serve"]["kafka"]["group_id"]
    produce(broker, topics["events"], events(0, 400), partitions=2)
    a = start_serve(config, tmp_path / "a.log")
    first = {str(i) for i in range(400)}
    assert predicted_ids(broker, topics["predictions"], 2, first) >= first
    b = start_serve(config, tmp_path / "b.log")  # joins the group: a's partitions are revoked, then split
    deadline = time.monotonic() + 60
    while not assignments(tmp_path / "b.log") and time.monotonic() < deadline:
        time.sleep(0.5)
    # the revoked partitions' positions were committed in the rebalance, not left to the next periodic commit
    revoke_commits = [json.loads(line)["offsets"] for line in (tmp_path / "a.log").read_text().splitlines()
                      if '"message": "committed on revoke"' in line]
    assert revoke_commits and revoke_commits[0] == {f"{topics['events']}:0": 200, f"{topics['events']}:1": 200}
    assert committed(broker, group, topics["events"], 2) == {0: 200, 1: 200}
    produce(broker, topics["events"], events(400, 400), partitions=2)
    second = {str(i) for i in range(800)}
    assert predicted_ids(broker, topics["predictions"], 2, second) >= second
    assert terminate(b) == 0  # leaves: its partition and its model go back to a
    produce(broker, topics["events"], events(800, 400), partitions=2)
    every = {str(i) for i in range(1200)}
    predictions = consume(broker, topics["predictions"], 2, lambda v: {p["id"] for p in v} >= every)
    assert terminate(a) == 0
    assert len(assignments(tmp_path / "b.log")[-1]) == 1, "the second replica should own one partition"
    assert assignments(tmp_path / "a.log")[-1] == [0, 1]
    ids = [p["id"] for p in predictions]
    assert len(ids) == len(set(ids)) == 1200, "a hand-over predicted a record twice"
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert "commit failed" not in logs and "Traceback" not in logs
    check_learned_once(tmp_path / "checkpoints", every)
    assert committed(broker, group, topics["events"], 2) == {0: 600, 1: 600}


def test_forecaster_serves_link_loads_resumes_after_sigterm_and_refuses_bad_events(broker, tmp_path):
    topics = fresh_topics(broker, 1, "events", "predictions", "dead")
    forecast = {"topology": "abilene", "horizon": 2}
    config = write_config(tmp_path / "service.yaml", broker, topics, model="cfc", forecast=forecast)
    loads = scenario_events(simulate(load_scenario("abilene-drastic"), seed=1))[: 40 * 15]
    bad = [{"key": "Paris-Berlin", "ts": 0.0, "value": 1.0}, b'{"key": "Denver-Seattle", "ts": 0, "value": NaN}',
           {"key": "Denver-Seattle", "value": 1.0}]
    produce(broker, topics["events"], loads[:301] + bad)  # stops in the middle of a step
    service = start_serve(config, tmp_path / "serve.log")
    ids = [f"{e['key']}@{e['ts']}" for e in loads]
    assert predicted_ids(broker, topics["predictions"], 1, set(ids[:301])) >= set(ids[:301])
    assert terminate(service) == 0
    produce(broker, topics["events"], loads[301:])
    service = start_serve(config, tmp_path / "serve.log")
    predictions = consume(broker, topics["predictions"], 1, lambda v: {p["id"] for p in v} >= set(ids))
    letters = consume(broker, topics["dead"], 1, lambda v: len(v) >= len(bad))
    assert terminate(service) == 0

    assert sorted(d["kind"] for d in letters) == ["invalid_json", "missing_field", "unknown_key"]
    settings = Settings(model={"name": "cfc", "seed": 1}, forecast=forecast)
    reference = served_forecaster(settings).make_predictor().process(
        [Event(i, {}, e["value"], e["key"], e["ts"]) for i, e in zip(ids, loads)])
    expected = {p.id: p.forecast for p in reference}
    assert {p["id"] for p in predictions} == set(ids)
    for p in predictions:  # at least once: a record after the checkpoint is forecast again, alike
        assert p["forecast"] == pytest.approx(expected[p["id"]], rel=1e-5)
    assert sum(s["learned"] for s in shard_states(tmp_path / "checkpoints").values()) == 39 * 15
