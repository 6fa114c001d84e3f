"""Checkpoints of per-key models: the models as blobs of the store, put when they changed, against a snapshot that
holds every model.

    python benchmarks/keyed_checkpoints.py                       # 1,000 keys x 20 events, 100 live
    python benchmarks/keyed_checkpoints.py --keys 2000 --touched 0.05

The per-key models the service makes from the settings (`served_classifier`: DriftMoE-Data by default, on the CPU)
learn `sea_keyed` (`connectors.generators.keyed_sea`) in one shard with `--max-live` models live, the rest spilled;
the shard has a directory store in a fresh temporary directory. Then, each checkpoint timed by `Shards.save` (blobs,
then the snapshot, fsynced) and measured in bytes written:

- inline: the shard's state pickled with every model in it, live and spilled, and saved as one snapshot (in a
  directory of its own): what a checkpoint costs when it holds its models;
- first: the first checkpoint, which puts every model as a blob;
- changed: `--rounds` times, `--per-key` events for each of a `--touched` share of the keys (their models reloaded
  from the store as needed), then a checkpoint: the models used since the last one are put;
- unchanged: a checkpoint with nothing learned since.

Also the bytes of spilled models held in memory before the first checkpoint and after the last. Prints a table and
writes `benchmarks/results/keyed_checkpoints.json` (command, date, machine, load average before and after, settings,
measurements; changed: each round and the median).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle
import shlex
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import suite  # noqa: E402 (provenance helpers; puts the repository on the path)
import torch  # noqa: E402

from connectors.generators import keyed_sea  # noqa: E402
from stream_moe.checkpoint_store import DirectoryStore  # noqa: E402
from stream_moe.commands.serve import served_classifier  # noqa: E402
from stream_moe.config import Settings  # noqa: E402
from stream_moe.events import Event, Position, Record  # noqa: E402
from stream_moe.shards import Shards  # noqa: E402


def items(triples, start: int) -> list:
    return [(Event(str(start + i), x, y, key=key), Record(b"", Position("sea_keyed", start + i)))
            for i, (x, y, key) in enumerate(triples)]


def in_memory(shards: Shards) -> int:
    """Bytes of spilled models held in memory (those not yet put in the store)."""
    return sum(len(s) for s in shards.get(0).predictor.model.spilled.values() if isinstance(s, bytes))


def checkpoint(shards: Shards) -> dict:
    models = shards.get(0).predictor.model
    before = (models.spills, models.reloads)
    shards.save()
    return {"seconds": shards.save_seconds, "mb": shards.saved_bytes / 1e6, "live": len(models.live),
            "spills": models.spills - before[0], "reloads": models.reloads - before[1]}


def inline(shards: Shards, directory: str) -> dict:
    """The shard's state with every model in it, pickled and saved as one snapshot."""
    started = time.perf_counter()
    payload = pickle.dumps(shards.get(0).state(), protocol=pickle.HIGHEST_PROTOCOL)
    size = DirectoryStore(directory).save(0, payload)
    return {"seconds": time.perf_counter() - started, "mb": size / 1e6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--per-key", type=int, default=20, help="events per key to begin with, and per touched key")
    parser.add_argument("--max-live", type=int, default=100, help="serve.max_models")
    parser.add_argument("--touched", type=float, default=0.1, help="share of the keys that learn between checkpoints")
    parser.add_argument("--rounds", type=int, default=3, help="checkpoints after some keys learned (median reported)")
    parser.add_argument("--model", default="driftmoe-data")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine may be shared)")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "keyed_checkpoints.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/keyed_checkpoints.py", *(sys.argv[1:] if argv is None else argv)])
    report = {**suite.provenance(command), "load_before": suite.load(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    settings = Settings(model={"name": args.model, "seed": args.seed, "device": "cpu"},
                        serve={"model_per": "key", "max_models": args.max_live, "router_bank": "off"})
    n = args.keys * args.per_key
    triples = keyed_sea(n=n, seed=args.seed, keys=args.keys)
    with tempfile.TemporaryDirectory() as work:
        shards = Shards(served_classifier(settings).make_predictor, store=DirectoryStore(f"{work}/store"))
        shards.get(0).process(items(triples, 0), wall=1e9)
        report["spilled_in_memory_mb"] = {"before": in_memory(shards) / 1e6}
        report["inline"] = inline(shards, f"{work}/inline")
        report["first"] = checkpoint(shards)
        more = keyed_sea(n=n, seed=args.seed + 1, keys=args.keys)  # the same keys, later events
        chosen = {f"k{k}" for k in range(0, args.keys, max(1, round(1 / args.touched)))}
        later = [t for t in more if t[2] in chosen]
        per_round = len(later) // args.rounds
        report["changed"] = []
        for r in range(args.rounds):
            part = later[r * per_round:(r + 1) * per_round]
            shards.get(0).process(items(part, n + r * per_round), wall=1e9)
            report["changed"].append({**checkpoint(shards), "events": len(part),
                                      "keys": len({key for _, _, key in part})})
        report["unchanged"] = checkpoint(shards)
        report["spilled_in_memory_mb"]["after"] = in_memory(shards) / 1e6
        report["models"] = len(shards.get(0).predictor.model)
    report["changed_median"] = {k: statistics.median(c[k] for c in report["changed"]) for k in ("seconds", "mb")}
    report["load_after"] = suite.load()

    print(f"{args.model}, {args.keys:,} keys ({args.max_live} live), {n:,} events; load {report['load_before']}")
    print(f"  inline (every model in the snapshot): {report['inline']['seconds']:6.2f} s {report['inline']['mb']:8.1f} MB")
    print(f"  first checkpoint (every model put):   {report['first']['seconds']:6.2f} s {report['first']['mb']:8.1f} MB")
    for c in report["changed"]:
        print(f"  after {c['keys']} keys learned {c['events']} events: {c['seconds']:6.2f} s {c['mb']:8.1f} MB")
    print(f"  nothing learned since:              {report['unchanged']['seconds']:6.2f} s "
          f"{report['unchanged']['mb']:8.1f} MB")
    print(f"  spilled models in memory: {report['spilled_in_memory_mb']['before']:.1f} MB before the first checkpoint, "
          f"{report['spilled_in_memory_mb']['after']:.1f} MB after the last; load after {report['load_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
