"""What a checkpoint costs in each store: seconds to save and to restore a shard's state of a given size, in a
directory and in a Kafka topic of a local Tansu broker (chunked, acks=all), and the size of real models' states.

    PYTHONPATH=. python benchmarks/checkpoint_store.py --mb 5 50 --chunk-kib 256 512 960 --repeats 3

1. A synthetic state (a pickled dict of incompressible bytes: model weights compress little) of each size in --mb.
   Per store and repeat, on a fresh directory or topic: two saves (as a service's first two checkpoints; the second
   is reported, the first also pays for reading what the store held), then a restore by a new, connected store (as
   the next owner of the partition: reading, checking and unpickling).
2. Kafka only: a restore after --backlog saves, none compacted away yet (what a reader pays before the broker's
   cleaner has run; Tansu does not compact): it reads every snapshot in the partition.
3. The pickled state of each model in --models after --events events of SEA (model[:size]: that many experts).

Each measurement has its wall-clock seconds and its CPU seconds (this process's threads, plus the broker's process
for the Kafka store; Linux only): on a shared machine the wall clock is mostly waiting for a core, the CPU seconds
are what the work costs. Medians over the repeats are reported with the load average before each measurement. The
figures are printed and written to benchmarks/results/checkpoint_store.json with the command, machine and date.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid

from connectors import generators
from connectors.local_broker import LocalBroker
from stream_moe.checkpoint_store import DirectoryStore
from stream_moe.events import Event
from stream_moe.kafka_store import KafkaStore
from stream_moe.models.registry import build_model
from stream_moe.predictor import Predictor
from stream_moe.provenance import package_version

REPO = pathlib.Path(__file__).resolve().parent.parent


def synthetic(mb: float) -> bytes:
    return pickle.dumps({"weights": os.urandom(int(mb * 1e6))}, protocol=pickle.HIGHEST_PROTOCOL)


def cpu_seconds(broker: LocalBroker | None) -> float:
    """CPU seconds used so far by this process (all its threads) and by the broker's process, if any."""
    own = os.times()
    used = own.user + own.system
    if broker is not None:
        fields = pathlib.Path(f"/proc/{broker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def timed(f, broker: LocalBroker | None) -> tuple[float, float, object]:
    """Wall-clock and CPU seconds of `f()`, and its value."""
    started, cpu = time.perf_counter(), cpu_seconds(broker)
    value = f()
    return time.perf_counter() - started, cpu_seconds(broker) - cpu, value


def load() -> float:
    return round(os.getloadavg()[0], 2)


def measure(open_store, payload: bytes, broker: LocalBroker | None) -> dict:
    """Two saves by one store, then a restore by another; seconds, and the bytes the second save wrote."""
    writer = open_store()
    try:
        first, _, _ = timed(lambda: writer.save(0, payload), broker)
        before = load()
        save, save_cpu, written = timed(lambda: writer.save(0, payload), broker)
    finally:
        writer.close()
    reader = open_store()
    try:
        getattr(reader, "check", lambda: None)()  # a service's store is connected before a partition comes
        restore, restore_cpu, state = timed(lambda: reader.restore(0), broker)
    finally:
        reader.close()
    assert pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL) == payload
    return {"first_save_s": first, "save_s": save, "save_cpu_s": save_cpu, "restore_s": restore,
            "restore_cpu_s": restore_cpu, "bytes": written, "load_1m": before}


def kafka_store(broker: LocalBroker, chunk_kib: int):
    topic = f"state-{uuid.uuid4().hex[:8]}"
    broker.create_topics({topic: 1})
    return lambda: KafkaStore(broker.bootstrap, topic, chunk_bytes=chunk_kib * 1024)


def backlog_restore(broker: LocalBroker, chunk_kib: int, payload: bytes, saves: int) -> dict:
    open_store = kafka_store(broker, chunk_kib)
    writer = open_store()
    for _ in range(saves):
        writer.save(0, payload)
    writer.close()
    reader = open_store()
    reader.check()
    before = load()
    seconds, cpu, _ = timed(lambda: reader.restore(0), broker)
    reader.close()
    return {"saves": saves, "restore_s": seconds, "restore_cpu_s": cpu, "load_1m": before}


def model_state(spec: str, events: int) -> dict:
    """The pickled size of a model after `events` events of SEA, and the seconds to pickle it."""
    name, _, size = spec.partition(":")
    predictor = Predictor(build_model(name, size=int(size) if size else None, seed=1), name)
    batch = []
    for i, (x, y) in enumerate(generators.generate("sea_a", n=events, seed=1)):
        batch.append(Event(str(i), x, y))
        if len(batch) == 32:
            predictor.process(batch)
            batch = []
    if batch:
        predictor.process(batch)
    seconds, cpu, payload = timed(lambda: pickle.dumps(predictor.model, protocol=pickle.HIGHEST_PROTOCOL), None)
    return {"model": spec, "events": events, "state_bytes": len(payload), "pickle_s": seconds, "pickle_cpu_s": cpu,
            "experts": len(getattr(predictor.model, "pool_", ()))}


def median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "load_1m"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, nargs="+", default=[5.0, 50.0], help="synthetic state sizes, in MB")
    parser.add_argument("--chunk-kib", type=int, nargs="+", default=[256, 512, 960], help="Kafka record sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=8, help="uncompacted snapshots before the backlog restore")
    parser.add_argument("--models", nargs="*", default=["driftmoe-data", "driftmoe-data:64"])
    parser.add_argument("--events", type=int, default=20_000, help="events each model learns before its pickle")
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where the directory store writes "
                        "(default: a temporary directory)")
    parser.add_argument("--results", type=pathlib.Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    report = {
        "command": shlex.join(["python", "benchmarks/checkpoint_store.py", *sys.argv[1:]]),
        "version": package_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "niceness": os.nice(0),
        "load_before": list(os.getloadavg()),
        "stores": [], "backlog": [], "models": [],
    }
    with LocalBroker() as broker, tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for mb in args.mb:
            payload = synthetic(mb)
            kinds = [("directory", None)] + [("kafka", kib) for kib in args.chunk_kib]
            for kind, kib in kinds:
                runs = []
                for r in range(args.repeats):
                    if kind == "directory":
                        directory = pathlib.Path(tmp) / uuid.uuid4().hex
                        runs.append(measure(lambda: DirectoryStore(directory, keep=2), payload, None))
                    else:
                        runs.append(measure(kafka_store(broker, kib), payload, broker))
                entry = {"store": kind, "chunk_kib": kib, "state_mb": mb, "runs": runs, "median": median(runs)}
                report["stores"].append(entry)
                print(json.dumps({k: v for k, v in entry.items() if k != "runs"}), file=sys.stderr)
            if args.backlog:
                entry = {"state_mb": mb, "chunk_kib": args.chunk_kib[-1],
                         **backlog_restore(broker, args.chunk_kib[-1], payload, args.backlog)}
                report["backlog"].append(entry)
                print(json.dumps(entry), file=sys.stderr)
    for spec in args.models:
        report["models"].append(model_state(spec, args.events))
        print(json.dumps(report["models"][-1]), file=sys.stderr)
    report["load_after"] = list(os.getloadavg())
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "checkpoint_store.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
