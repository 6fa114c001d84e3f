"""One model per key, end to end: the embedded service on a stream whose keys drift each their own way, three ways.

    python benchmarks/keyed_serving.py                            # 1,000 keys x 20 events, 2 rounds
    python benchmarks/keyed_serving.py --keys 1000 --per-key 100 --rounds 3 --size 4

Each run is `stream-moe serve` in embedded mode: the service that `build_service` assembles from the settings (shards,
per-key models, router bank, JSONL sinks, metrics, prequential evaluator, checkpoints in a fresh directory), run by
`Service.run`. Its embedded source is given the records of `sea_keyed` (`connectors.generators.keyed_sea`: SEA for
`--keys` keys, each with its own two concepts and drift point), generated once beforehand so that every run sees the
same events and generation is not timed. The three configurations:

- shared: one model for every key (`serve.model_per: partition`);
- own routers: one model per key, each mixture with its own router (`model_per: key`, `router_bank: off`);
- bank: one model per key, their routers in one router bank (`model_per: key`, `router_bank: on`).

Rounds alternate the order of the configurations; events/s is records over the loop's wall time, which holds the
shard's snapshots (every 20,000 records: `Shard.journal_limit`) but not the final checkpoint, taken after the loop
and timed apart (periodic checkpoints fall due every `--checkpoint-every-s`, by default longer than a run); the bank's
speed-up over own routers is taken within each round and its median reported. Accuracy is prequential
(test-then-train) over all events. Then, unless `--no-profile`, own routers and bank run once more under cProfile on
the first tenth of the events: their costliest functions (own time) and the routers' share (`ROUTER_FUNCTIONS`,
cumulative) are printed and kept. Prints a table and writes `benchmarks/results/keyed_serving.json` (command, date,
machine, load average before and after, settings, rounds, medians, profiles).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pathlib
import pstats
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
from connectors.source import IterableSource  # noqa: E402
from stream_moe.commands.serve import build_service  # noqa: E402
from stream_moe.config import Settings  # noqa: E402
from stream_moe.events import Position, Record  # noqa: E402

CONFIGS = {
    "shared": {"model_per": "partition", "router_bank": "off"},
    "own routers": {"model_per": "key", "router_bank": "off"},
    "bank": {"model_per": "key", "router_bank": "on"},
}
STREAM = "sea_keyed"
# where the routers' time goes: the batch's routing call, training rows handed over (own routers train in it), a new
# model's router made, and a router pickled with its model (snapshots and checkpoints)
ROUTER_FUNCTIONS = {("router_bank.py", "route"), ("router.py", "observe"), ("router_bank.py", "observe"),
                    ("mixture.py", "_new_router"), ("router.py", "__getstate__"), ("router_bank.py", "__reduce__")}


def records_of(args) -> list[Record]:
    triples = keyed_sea(n=args.keys * args.per_key, seed=args.seed, keys=args.keys, drifts=args.drifts)
    return [Record(triple, Position(STREAM, i)) for i, triple in enumerate(triples)]


def serve(config: str, records: list[Record], args) -> dict:
    """One run of the embedded service in `config` on `records`: its speed, accuracy and final checkpoint."""
    with tempfile.TemporaryDirectory() as work:
        settings = Settings(
            model={"name": args.model, "size": args.size, "seed": args.seed, "device": args.device},
            serve={"embedded_stream": STREAM, "embedded_n": len(records), "out": f"{work}/out",
                   "checkpoint_dir": f"{work}/checkpoints", "checkpoint_every_s": args.checkpoint_every_s,
                   "max_models": args.keys, **CONFIGS[config]},
            loop={"batch_size": args.batch_size},
        )
        service = build_service(settings)
        service.loop.source = IterableSource(STREAM, iter(records))
        started = time.perf_counter()
        stats = service.run()
        total = time.perf_counter() - started
        predictor = service.shards.get(0).predictor
    models = len(predictor.model) if config != "shared" else 1
    return {"events_per_s": stats.records / stats.wall_seconds, "accuracy": service.loop.evaluator.cumulative()[
        "accuracy"], "records": stats.records, "loop_s": stats.wall_seconds, "total_s": total, "models": models,
        "final_checkpoint_s": service.shards.save_seconds, "checkpoint_mb": service.shards.saved_bytes / 1e6}


def profile(config: str, records: list[Record], args, top: int) -> dict:
    """`serve` under cProfile: the functions with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    run = serve(config, records, args)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]  # (file, line, name) -> (cc, nc, tt, ct)
    routers = {}  # the routers' share of the time (`ROUTER_FUNCTIONS`)
    for (file, _, name), (_, _, _, ct, _) in stats.stats.items():
        if (pathlib.Path(file).name, name) in ROUTER_FUNCTIONS:
            key = f"{pathlib.Path(file).name}:{name}"
            routers[key] = round(max(routers.get(key, 0.0), ct), 3)
    return {"events": len(records), "seconds": stats.total_tt, "events_per_s_profiled": run["events_per_s"],
            "router_cumulative_s": routers,
            "top": [{"function": f"{pathlib.Path(file).name}:{line}({name})", "calls": nc, "own_s": round(tt, 3),
                     "cumulative_s": round(ct, 3)} for (file, line, name), (_, nc, tt, ct, _) in rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--per-key", type=int, default=20, help="events per key on average (n = keys x per-key)")
    parser.add_argument("--drifts", type=int, default=1, help="drift points per key (0-3)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (medians reported)")
    parser.add_argument("--model", default="driftmoe-data")
    parser.add_argument("--size", type=int, default=None, help="the model's size (DriftMoE: experts; default its own)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="events per micro-batch (loop.batch_size)")
    parser.add_argument("--checkpoint-every-s", type=float, default=3600.0,
                        help="serve.checkpoint_every_s (default: longer than a run, so only the final checkpoint)")
    parser.add_argument("--device", default="cpu", help="model.device")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine may be shared)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument("--top", type=int, default=15, help="functions kept per profile")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "keyed_serving.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "benchmarks/keyed_serving.py", *(sys.argv[1:] if argv is None else argv)])
    report = {**suite.provenance(command), "load_before": suite.load(),
              "settings": {k: v for k, v in vars(args).items() if k not in ("out", "no_profile", "top")},
              "stream": STREAM, "configs": CONFIGS, "rounds": []}
    records = records_of(args)
    print(f"{len(records):,} events over {args.keys:,} keys; load {report['load_before']}", flush=True)
    for r in range(args.rounds):
        names = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
        runs = {}
        for name in names:
            runs[name] = {**serve(name, records, args), "load": suite.load()}
            run = runs[name]
            print(f"round {r + 1} {name:>12}: {run['events_per_s']:8.1f} events/s  accuracy {run['accuracy']:.4f}  "
                  f"final checkpoint {run['final_checkpoint_s']:.1f} s, {run['checkpoint_mb']:.0f} MB  "
                  f"load {run['load'][0]:.1f}", flush=True)
        report["rounds"].append({"order": names, "runs": runs,
                                 "bank_over_own": runs["bank"]["events_per_s"] / runs["own routers"]["events_per_s"]})
    report["median"] = {name: {k: statistics.median(r["runs"][name][k] for r in report["rounds"])
                               for k in ("events_per_s", "accuracy", "final_checkpoint_s", "checkpoint_mb")}
                        for name in CONFIGS}
    report["median"]["bank_over_own"] = statistics.median(r["bank_over_own"] for r in report["rounds"])
    if not args.no_profile:
        part = records[: len(records) // 10]
        report["profile"] = {name: profile(name, part, args, args.top) for name in ("own routers", "bank")}
    report["load_after"] = suite.load()
    m = report["median"]
    print(f"\nmedians over {args.rounds} rounds ({len(records):,} events, {args.keys:,} keys):")
    for name in CONFIGS:
        print(f"  {name:>12}: {m[name]['events_per_s']:8.1f} events/s  accuracy {m[name]['accuracy']:.4f}")
    print(f"  bank / own routers: {m['bank_over_own']:.2f}x (within rounds); load after {report['load_after']}")
    for name, p in report.get("profile", {}).items():
        print(f"\nprofile of {name}, {p['events']:,} events, {p['seconds']:.1f} s; routers (cumulative s): "
              f"{p['router_cumulative_s']}; costliest own times, s:")
        for f in p["top"]:
            print(f"  {f['own_s']:8.3f} {f['cumulative_s']:8.3f} {f['calls']:>9} {f['function']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
