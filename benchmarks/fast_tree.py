"""Fast (array-based, batched) Hoeffding trees against river's, side by side in one run.

    python benchmarks/fast_tree.py --n 20000
    python benchmarks/fast_tree.py --n 20000 --router-batch 256   # the router updated as in the paper
    python benchmarks/fast_tree.py --n 20000 --top-k 0   # the model's default: three quarters of the pool learning
    python benchmarks/fast_tree.py --n 10000 --batch 128 --repeat 3   # medians of three alternating rounds
    python benchmarks/fast_tree.py --rss 1000000      # peak RSS of a long SEA_a replay with fast experts, alone

For each stream: a single tree (river's, one instance at a time, vs the fast tree, test-then-train by batch) and
DriftMoE-Data with 12 experts (top-3 unless `--top-k` says otherwise, the rest its defaults)
with river vs fast experts, all prequential with batches of `--batch`; accuracy and instances/s, router included,
and the speed-up of fast over river within each round (`--repeat` rounds, medians reported).
Then a cProfile of DriftMoE-Data with fast experts on SEA_a (top functions by own time). Prints the figures and
writes them to `results/fast_tree.json`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pathlib
import pstats
import resource
import statistics
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.benchmarks import open_stream  # noqa: E402
from connectors.generators import GENERATORS, generate  # noqa: E402
from stream_moe.models.driftmoe_data import DriftMoEData  # noqa: E402
from stream_moe.models.experts import default_expert  # noqa: E402
from stream_moe.models.rows import RowCoder  # noqa: E402

STREAMS = ("sea_a", "sea_g", "led_a", "rbf_m", "elec")
DATA_DIRS = (ROOT / "data", ROOT.parent / "shared" / "data", pathlib.Path("/work/shared/data"))


def load(name: str, n: int) -> list[tuple[dict, object]]:
    if name in GENERATORS:
        return list(generate(name, n=n, seed=1))
    opened = open_stream(name, n=n, data_dirs=[d for d in DATA_DIRS if d.is_dir()])
    events = (opened.decoder.decode(r) for batch in opened.source.batches(1000) for r in batch)
    return [(e.x, e.y) for e in events][:n]


def single_tree(kind: str, data, batch: int) -> dict:
    """River's tree one instance at a time (its own semantics); the fast tree test-then-train by batch
    (`predict_learn_many`, its intended use)."""
    model = default_expert(kind)
    right, start = 0, time.perf_counter()
    if kind == "river":
        for x, y in data:
            right += model.predict_one(x) == y
            model.learn_one(x, y)
    else:
        coder = RowCoder()
        for i in range(0, len(data), batch):
            xs, ys = [x for x, _ in data[i : i + batch]], [y for _, y in data[i : i + batch]]
            coder.learn_many(xs)
            proba = model.predict_learn_many(coder.transform_many(xs), ys, nominal=coder.nominal)
            right += sum(model.classes_[j] == y for j, y in zip(proba.argmax(axis=1).tolist(), ys))
    seconds = time.perf_counter() - start
    return {"accuracy": right / len(data), "inst_per_s": len(data) / seconds}


def mixture(kind: str, data, batch: int, **params) -> dict:
    model = DriftMoEData(**{"n_experts": 12, "experts": kind, "device": "cpu", "seed": 1, **params})
    right, start = 0, time.perf_counter()
    for i in range(0, len(data), batch):
        xs, ys = [x for x, _ in data[i : i + batch]], [y for _, y in data[i : i + batch]]
        details = model.predict_learn_many(xs, ys)
        right += sum(bool(p) and max(p, key=p.get) == y for (p, _), y in zip(details, ys))
    seconds = time.perf_counter() - start
    return {"accuracy": right / len(data), "inst_per_s": len(data) / seconds}


def side_by_side(run, repeat: int) -> dict:
    """`run(kind)` for river and fast, `repeat` rounds, alternating which goes first: on a shared machine the load
    drifts between runs, so each speed is the median of its runs and the speed-up is the median of the ratios taken
    within each round (min and max beside it)."""
    runs: dict[str, list[dict]] = {"river": [], "fast": []}
    for r in range(repeat):
        for kind in ("river", "fast") if r % 2 == 0 else ("fast", "river"):
            runs[kind].append(run(kind))
    row = {kind: {"accuracy": results[0]["accuracy"],
                  "inst_per_s": statistics.median(one["inst_per_s"] for one in results),
                  "inst_per_s_runs": [round(one["inst_per_s"]) for one in results]}
           for kind, results in runs.items()}
    ratios = [fast["inst_per_s"] / river["inst_per_s"] for fast, river in zip(runs["fast"], runs["river"])]
    row["speedup"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return row


def profile(data, batch: int, top: int = 15, **params) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    mixture("fast", data, batch, **params)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def peak_rss(n: int, batch: int) -> dict:
    model = DriftMoEData(n_experts=12, top_k=3, experts="fast", device="cpu", seed=1)
    start = time.perf_counter()
    chunk = []
    for x, y in generate("sea_a", n=n, seed=1):
        chunk.append((x, y))
        if len(chunk) == batch:
            model.predict_learn_many([x for x, _ in chunk], [y for _, y in chunk])
            chunk = []
    return {"instances": n, "seconds": time.perf_counter() - start,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tree_bytes": [int(e.nbytes) for e in model.pool_.experts]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="instances per stream")
    parser.add_argument("--batch", type=int, default=32, help="micro-batch size")
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--skip-mixture-river", action="store_true", help="DriftMoE with river experts is slow")
    parser.add_argument("--router-batch", type=int, help="instances per router update (default: the model's, 32)")
    parser.add_argument("--top-k", type=int, default=3,
                        help="experts learning each instance (default 3; 0: the model's default, "
                             "three quarters of the pool)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of each river/fast pair, alternating which runs first; medians reported")
    parser.add_argument("--rss", type=int, default=0, help="only measure the peak RSS of an N-instance SEA_a replay")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "results" / "fast_tree.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    params = {} if args.router_batch is None else {"router_batch": args.router_batch}
    if args.top_k:
        params["top_k"] = args.top_k
    warm = load("sea_a", 500)  # compiles the fast tree's loops (cached on disk afterwards) before anything is timed
    single_tree("fast", warm, args.batch)
    mixture("fast", warm, args.batch)
    if args.rss:
        report = {"peak_rss": peak_rss(args.rss, args.batch)}
        print(json.dumps(report, indent=1))
        args.out = args.out.with_name("fast_tree_rss.json")
    else:
        report = {"n": args.n, "batch": args.batch, "repeat": args.repeat, "params": params, "streams": {}}
        for name in args.streams.split(","):
            data = load(name, args.n)
            row = report["streams"][name] = {"tree": side_by_side(lambda kind: single_tree(kind, data, args.batch),
                                                                  args.repeat)}
            if args.skip_mixture_river:
                row["driftmoe"] = {"fast": mixture("fast", data, args.batch, **params)}
            else:
                row["driftmoe"] = side_by_side(lambda kind: mixture(kind, data, args.batch, **params), args.repeat)
            print(name, json.dumps(row), flush=True)
        report["profile_sea_a"] = profile(load("sea_a", args.n), args.batch, **params)
        print(report["profile_sea_a"])
    if args.router_batch is not None and not args.rss:
        args.out = args.out.with_name(f"{args.out.stem}_rb{args.router_batch}.json")
    if args.top_k != 3 and not args.rss:
        args.out = args.out.with_name(f"{args.out.stem}_top{args.top_k or 'default'}.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
