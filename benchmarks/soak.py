"""Soak test of the service through a real broker: mixed traffic and periodic SIGKILLs for N minutes, then counts.

    PYTHONPATH=. python benchmarks/soak.py --minutes 20 --rate 300

Traffic, on an event topic and a label topic of `--partitions` partitions (a label goes to its event's partition):
- labelled events;
- unlabelled events whose label follows 0-10 s later, and some whose label comes first (up to 3 s before);
- unlabelled events that never get a label;
- malformed records of every kind the service must refuse (invalid JSON, tombstones, nesting deeper than the parser's
  limit, a string in a numeric feature (no kinds declared), a number beyond float range, an event time far
  in the future, a repeated id, an oversized message).
`stream-moe serve` runs as a subprocess and is SIGKILLed every 60-120 s (then restarted at once). At the end the
producer stops, the service catches up and is stopped with SIGTERM, and the report counts: produced, predicted
(distinct ids; at least once), learned (from the checkpoints) against expected (every event whose label was
produced), dead letters by kind (distinct positions) against malformed records produced, lost (expected - learned),
and the service's resident memory over time. Written to benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import pathlib
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.local_broker import LocalBroker, free_port
from stream_moe.checkpoint import Checkpointer

REPO = pathlib.Path(__file__).resolve().parent.parent
FEATURES = ("f1", "f2", "f3")

MALFORMED = {  # kind the service gives -> a record of that kind (None: a tombstone)
    "invalid_json": lambda i: b'{"id": "m%d", "x": {"f1": 1.0,' % i,
    "tombstone": lambda i: None,
    "deep": lambda i: b'{"id": "m%d", "x": {"f1": ' % i + b"[" * 5000 + b"]" * 5000 + b', "f2": 1, "f3": 1}}',
    "wrong_type": lambda i: json.dumps({"id": f"m{i}", "x": {"f1": "abc", "f2": 1.0, "f3": 1.0}, "y": 1}).encode(),
    "beyond_float": lambda i: b'{"id": "m%d", "x": {"f1": 1' % i + b"0" * 400 + b', "f2": 1, "f3": 1}, "y": 0}',
    "bad_ts": lambda i: json.dumps({"id": f"m{i}", "ts": 1e300, "x": {"f1": 1.0, "f2": 1.0, "f3": 1.0}}).encode(),
    "oversized": lambda i: json.dumps({"id": f"m{i}", "x": {"f1": 1.0, "f2": 1.0, "f3": 1.0},
                                       "key": "k" * 70_000}).encode(),
}
# the dead-letter kinds each malformed record is expected to give
LETTER_KIND = {"deep": "invalid_json", "beyond_float": "invalid_json"}


def features(rng: random.Random) -> dict:
    return {f: rng.uniform(0, 10) for f in FEATURES}


def label(x: dict) -> int:
    return int(x["f1"] + x["f2"] <= 8)


class Traffic:
    """Produces the mixed traffic at `rate` events/s until stopped, and counts what it produced."""

    def __init__(self, bootstrap: str, topics: dict, partitions: int, rate: float, seed: int):
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=2_000_000)
        self.topics, self.partitions, self.rate = topics, partitions, rate
        self.rng = random.Random(seed)
        self.counts = {"events": 0, "labelled_inline": 0, "labels_later": 0, "labels_first": 0, "never_labelled": 0,
                       "duplicates": 0, "malformed": 0}
        self.malformed: dict[str, int] = {}
        self.valid_ids: list[str] = []
        self.expected_learned = 0
        self._later: list[tuple[float, int, str, bytes]] = []  # (due, partition, topic, value)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _send(self, topic: str, value: bytes | None, partition: int) -> None:
        self.producer.send(topic, value, key=b"k" if value is None else None, partition=partition)

    def _event(self, i: int) -> None:
        rng, partition = self.rng, i % self.partitions
        x, eid = features(rng), f"e{i}"
        event = {"id": eid, "ts": time.time(), "x": x}
        kind = rng.random()
        if kind < 0.10:  # malformed
            name = rng.choice([*MALFORMED, "duplicate"])
            if name == "duplicate" and self.valid_ids:
                dup = rng.choice(self.valid_ids[-2000:])
                value = json.dumps({"id": dup, "ts": time.time(), "x": x, "y": label(x)}).encode()
                partition = int(dup[1:]) % self.partitions  # its original's partition, where the id is known
                name = "duplicate_id"
            else:
                name = name if name != "duplicate" else "invalid_json"
                value = MALFORMED[name](i)
                name = LETTER_KIND.get(name, name)
            self.malformed[name] = self.malformed.get(name, 0) + 1
            self.counts["malformed"] += 1
            self._send(self.topics["events"], value, partition)
            return
        self.counts["events"] += 1
        self.valid_ids.append(eid)
        y = label(x)
        if kind < 0.60:
            event["y"] = y
            self.counts["labelled_inline"] += 1
            self.expected_learned += 1
        elif kind < 0.85:
            self._later.append((time.time() + rng.uniform(0, 10), partition, "labels",
                                json.dumps({"id": eid, "y": y}).encode()))
            self.counts["labels_later"] += 1
            self.expected_learned += 1
        elif kind < 0.95:  # the label first, the event up to 3 s later
            self._send(self.topics["labels"], json.dumps({"id": eid, "y": y}).encode(), partition)
            self._later.append((time.time() + rng.uniform(0, 3), partition, "events", json.dumps(event).encode()))
            self.counts["labels_first"] += 1
            self.expected_learned += 1
            return
        else:
            self.counts["never_labelled"] += 1
        self._send(self.topics["events"], json.dumps(event).encode(), partition)

    def _run(self) -> None:
        heap_order = 0
        self._later = []
        heap: list = []
        start, i = time.monotonic(), 0
        while not self._stop.is_set():
            while self._later:  # move new delayed sends into the heap
                due, partition, topic, value = self._later.pop()
                heapq.heappush(heap, (due, heap_order, partition, topic, value))
                heap_order += 1
            now = time.time()
            while heap and heap[0][0] <= now:
                _, _, partition, topic, value = heapq.heappop(heap)
                self._send(self.topics[topic], value, partition)
            target = int((time.monotonic() - start) * self.rate)
            while i < target:
                self._event(i)
                i += 1
            time.sleep(0.005)
        for _, _, partition, topic, value in sorted(heap):  # what is still due goes out now
            self._send(self.topics[topic], value, partition)
        self.producer.flush()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


class Service:
    """`stream-moe serve` as a subprocess, restartable; `rss` samples its resident memory."""

    def __init__(self, workdir: pathlib.Path, bootstrap: str, topics: dict, model: str):
        self.port = free_port()
        self.config = workdir / "service.yaml"
        self.checkpoints = workdir / "checkpoints"
        self.config.write_text(yaml.safe_dump({
            "model": {"name": model, "seed": 1},
            "serve": {
                "kafka": {"bootstrap_servers": bootstrap, "topics": [topics["events"]],
                          "label_topic": topics["labels"], "prediction_topic": topics["predictions"],
                          "dead_letter_topic": topics["dead"], "group_id": f"soak-{uuid.uuid4().hex[:8]}",
                          "session_timeout_ms": 6000},
                "checkpoint_dir": str(self.checkpoints),
                "http_port": self.port,
            },
        }))
        self.log = workdir / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "stream_moe.cli", "serve", "--config", str(self.config)],
                                        cwd=REPO, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

    def rss_mib(self) -> float | None:
        try:
            for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def metric(self, name: str) -> float | None:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()
        except OSError:
            return None
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
                  or line.startswith(name + "{")]
        return sum(values) if values else None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)


def learned(checkpoints: pathlib.Path) -> dict:
    states = [Checkpointer(d).restore() for d in sorted(checkpoints.glob("shard-*"))]
    return {
        "learned": sum(s["learned"] for s in states),
        "pending": sum(len(s["joins"].pending) for s in states),
        "early_waiting": sum(len(s["joins"].early) for s in states),
        "early_joined": sum(s["joins"].early.joined for s in states),
    }


def read_topic(bootstrap: str, topic: str, partitions: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4_000_000)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    values, idle = [], 0
    while idle < 3:
        batch = [json.loads(m.value) for ms in consumer.poll(1000).values() for m in ms]
        values += batch
        idle = 0 if batch else idle + 1
    consumer.close()
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=300.0, help="records per second produced")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--model", default="driftmoe-data")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(60.0, 120.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "benchmarks" / "results" / "soak.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = REPO / "results" / "soak" / uuid.uuid4().hex[:8]
    workdir.mkdir(parents=True)
    started = time.time()
    with LocalBroker() as broker:
        suffix = uuid.uuid4().hex[:8]
        topics = {k: f"{k}-{suffix}" for k in ("events", "labels", "predictions", "dead")}
        broker.create_topics({t: args.partitions for t in topics.values()})
        service = Service(workdir, broker.bootstrap, topics, args.model)
        traffic = Traffic(broker.bootstrap, topics, args.partitions, args.rate, args.seed)
        service.start()
        traffic.start()
        end = time.monotonic() + 60 * args.minutes
        next_kill = time.monotonic() + rng.uniform(*args.kill_every)
        samples, kills = [], 0
        while time.monotonic() < end:
            time.sleep(10)
            samples.append({"t_s": round(time.time() - started, 1), "rss_mib": service.rss_mib(),
                            "events_in": service.metric("stream_moe_events_in_total"),
                            "loadavg_1m": os.getloadavg()[0]})
            print(json.dumps(samples[-1]), file=sys.stderr)
            if time.monotonic() >= next_kill:
                service.kill()
                kills += 1
                service.start()
                next_kill = time.monotonic() + rng.uniform(*args.kill_every)
        traffic.stop()
        # catch up: until the checkpoints hold every expected label, or two minutes without progress
        last, stalled_since = -1, time.monotonic()
        while time.monotonic() - stalled_since < 120:
            time.sleep(5)
            try:
                now = learned(service.checkpoints)["learned"]
            except Exception:  # a checkpoint being replaced while read
                continue
            if now >= traffic.expected_learned:
                break
            if now != last:
                last, stalled_since = now, time.monotonic()
        time.sleep(8)  # a last checkpoint after the final records
        status = service.terminate()
        final = learned(service.checkpoints)
        predictions = read_topic(broker.bootstrap, topics["predictions"], args.partitions)
        letters = read_topic(broker.bootstrap, topics["dead"], args.partitions)

    predicted = {p["id"] for p in predictions}
    distinct_letters = {(d["source"], d["partition"], d["offset"]): d["kind"] for d in letters}
    by_kind: dict[str, int] = {}
    for kind in distinct_letters.values():
        by_kind[kind] = by_kind.get(kind, 0) + 1
    rss = [s["rss_mib"] for s in samples if s["rss_mib"]]
    report = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "minutes": args.minutes, "rate_per_s": args.rate, "partitions": args.partitions, "model": args.model,
        "kills": kills, "final_exit_status": status,
        "produced": traffic.counts,
        "predicted_distinct": len(predicted),
        "predicted_missing": len(set(traffic.valid_ids) - predicted),
        "predictions_total": len(predictions),
        "expected_learned": traffic.expected_learned,
        **final,
        "lost": traffic.expected_learned - final["learned"],
        "malformed_produced": dict(sorted(traffic.malformed.items())),
        "dead_letters_by_kind": dict(sorted(by_kind.items())),
        "rss_mib": {"first": rss[0] if rss else None, "max": max(rss, default=None), "last": rss[-1] if rss else None,
                    "after_first_5_min": [s["rss_mib"] for s in samples if s["t_s"] >= 300][:1]},
        "loadavg_1m_median": sorted(s["loadavg_1m"] for s in samples)[len(samples) // 2] if samples else None,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    return 0 if report["lost"] == 0 and report["predicted_missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
