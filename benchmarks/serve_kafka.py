"""Service benchmark through a real broker: throughput against offline replay, latency at half the maximum rate, and
the time from a restart to the first prediction.

    PYTHONPATH=. python benchmarks/serve_kafka.py --stream sea_a --model driftmoe-data --n 20000 --repeats 3

1. Offline replay of the stream (the model alone, through the same loop): instances/s.
2. The same stream as JSON events in a one-partition topic of a local Tansu broker, then `stream-moe serve` (a
   subprocess, as deployed): predictions/s from the broker's timestamps of the first and last prediction.
3. Events produced at half that rate, each stamped with its send time: latency p50/p99 from the event's `ts` to the
   broker's timestamp of its prediction.
4. SIGTERM, more events, a fresh start: seconds from the start of the process to its first prediction.

Repeats alternate the two (replay, serve, replay, serve, ...), so a change of the machine's load reaches both; the
medians are reported, with the load average seen at each run. The figures are printed as JSON and written to
benchmarks/results/serve_kafka-<stream>-<model>.json (the working files of each run under results/serve_kafka/).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors import generators
from connectors.benchmarks import open_stream
from connectors.local_broker import LocalBroker, free_port
from stream_moe.models.registry import build_model
from stream_moe.predictor import Predictor
from stream_moe.replay import ReplayOptions, replay

REPO = pathlib.Path(__file__).resolve().parent.parent


def offline(stream: str, model: str, n: int, seed: int) -> float:
    report = replay(open_stream(stream, n=n, seed=seed), Predictor(build_model(model, seed=seed), model),
                    ReplayOptions(progress=False))
    return report["instances_per_s"]


def event_json(i: int, x: dict, y, ts: float | None = None) -> bytes:
    return json.dumps({"id": str(i), "ts": ts, "x": x, "y": y}).encode()


class Predictions:
    """Reads the prediction topic from the beginning; each item is (broker timestamp in s, prediction)."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.consumer.assign([TopicPartition(topic, 0)])
        self.consumer.seek_to_beginning()
        self.seen: list[tuple[float, dict]] = []

    def until(self, count: int, timeout_s: float) -> list[tuple[float, dict]]:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count and time.monotonic() < deadline:
            for messages in self.consumer.poll(1000).values():
                self.seen += [(m.timestamp / 1000, json.loads(m.value)) for m in messages]
        if len(self.seen) < count:
            raise TimeoutError(f"{len(self.seen)} of {count} predictions after {timeout_s} s")
        return self.seen


class Serve:
    """`stream-moe serve` as a subprocess on the given topics."""

    def __init__(self, workdir: pathlib.Path, bootstrap: str, topics: dict, model: str, seed: int):
        self.port = free_port()
        self.config = workdir / "service.yaml"
        self.config.write_text(yaml.safe_dump({
            "model": {"name": model, "seed": seed},
            "serve": {
                "kafka": {"bootstrap_servers": bootstrap, "topics": [topics["events"]],
                          "prediction_topic": topics["predictions"], "dead_letter_topic": topics["dead"],
                          "group_id": f"bench-{uuid.uuid4().hex[:8]}", "session_timeout_ms": 6000},
                "checkpoint_dir": str(workdir / "checkpoints"),
                "http_port": self.port,
            },
        }))
        self.log = workdir / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        started = time.time()
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "stream_moe.cli", "serve", "--config", str(self.config)],
                                        cwd=REPO, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        return started

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the service did not become ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(60) != 0:
            raise RuntimeError(f"serve exited with {self.process.returncode}; see {self.log}")


def run(stream: str, model: str, n: int, seed: int, latency_s: float, workdir: pathlib.Path) -> dict:
    pairs = list(generators.generate(stream, n=n, seed=seed))
    replay_per_s = offline(stream, model, n, seed)
    with LocalBroker() as broker:
        suffix = uuid.uuid4().hex[:8]
        topics = {k: f"{k}-{suffix}" for k in ("events", "predictions", "dead")}
        broker.create_topics({t: 1 for t in topics.values()})
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        for i, (x, y) in enumerate(pairs):
            producer.send(topics["events"], event_json(i, x, y))
        producer.flush()

        predictions = Predictions(broker.bootstrap, topics["predictions"])
        serve = Serve(workdir, broker.bootstrap, topics, model, seed)
        serve.start()
        seen = predictions.until(n, timeout_s=30 + 10 * n / max(replay_per_s, 1))
        serve_per_s = (n - 1) / (seen[n - 1][0] - seen[0][0])

        # latency at half the service's maximum rate, the model carrying on from where it is
        rate = serve_per_s / 2
        count = int(rate * latency_s)
        t0 = time.time()
        for j in range(count):
            time.sleep(max(0.0, t0 + j / rate - time.time()))
            x, y = pairs[j % n]
            producer.send(topics["events"], event_json(n + j, x, y, ts=time.time()))
        producer.flush()
        seen = predictions.until(n + count, timeout_s=60)
        latencies = sorted(t - p["ts"] for t, p in seen[n:n + count])
        serve.stop()

        # restart: events waiting, a fresh process, time to its first prediction
        for j in range(100):
            x, y = pairs[j]
            producer.send(topics["events"], event_json(n + count + j, x, y))
        producer.flush()
        started = serve.start()
        seen = predictions.until(n + count + 1, timeout_s=120)
        restart_s = seen[n + count][0] - started
        predictions.until(n + count + 100, timeout_s=60)
        serve.stop()
        producer.close()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "stream": stream, "model": model, "n": n, "seed": seed, "loadavg_1m": round(os.getloadavg()[0], 2),
        "replay_per_s": round(replay_per_s, 1),
        "serve_per_s": round(serve_per_s, 1),
        "serve_vs_replay": round(serve_per_s / replay_per_s, 3),
        "latency_rate_per_s": round(rate, 1),
        "latency_events": count,
        "latency_p50_ms": round(1000 * quantile(0.5), 1),
        "latency_p99_ms": round(1000 * quantile(0.99), 1),
        "restart_to_first_prediction_s": round(restart_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", default="sea_a", choices=list(generators.GENERATORS))
    parser.add_argument("--model", default="driftmoe-data")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="length of the fixed-rate phase")
    parser.add_argument("--repeats", type=int, default=1, help="runs; the medians are reported too")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "results" / "serve_kafka", help="working files")
    parser.add_argument("--results", type=pathlib.Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    started = time.time()

    import torch

    torch.set_num_threads(1)
    runs = []
    for r in range(args.repeats):
        workdir = args.out / f"run-{uuid.uuid4().hex[:8]}"
        workdir.mkdir(parents=True)
        runs.append(run(args.stream, args.model, args.n, args.seed, args.latency_seconds, workdir))
        print(json.dumps(runs[-1]), file=sys.stderr)
    numeric = [k for k, v in runs[0].items() if isinstance(v, float)]
    summary = {
        "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": runs, "median": {k: statistics.median(run[k] for run in runs) for k in numeric},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"serve_kafka-{args.stream}-{args.model}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["median"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
