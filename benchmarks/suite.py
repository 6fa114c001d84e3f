"""Benchmark suite: models x streams x seeds through the replay loop; a markdown table and a results file.

    python benchmarks/suite.py --streams elec,sea_a --models driftmoe-data,arf:10 --n 200000 --seeds 1,2

A model is `name[:size][:param=value,...]`, e.g. `arf:10` or `driftmoe-data::prediction='mixture',router_batch=32`.
Each finished run is appended to `<out>/runs.jsonl` at once (a long suite that is interrupted keeps what it did, and a
rerun skips the runs already there); the table is printed and written to `<out>/table.md` at the end, with a plot of
the pool size over time for every run whose pool was expanded or pruned. Streams whose data file is absent are
skipped with the reason.
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import statistics
import sys

import torch

from connectors import generators
from connectors.benchmarks import StreamUnavailable, open_stream
from stream_moe.config import load_settings
from stream_moe.models.registry import build_model
from stream_moe.plots import plot_pool_size
from stream_moe.predictor import Predictor
from stream_moe.replay import ReplayOptions, replay

DEFAULT_STREAMS = "elec,sea_a,sea_g,led_a,led_g,rbf_m,rbf_f,airlines,covtype"
DEFAULT_MODELS = "driftmoe-data,driftmoe-task,hoeffding-tree,arf:10"


def parse_model(spec: str) -> tuple[str, int | None, dict]:
    """'name[:size][:p=v,...]' -> (name, size, params); values are Python literals (tuples and lists included).

    >>> parse_model("driftmoe-data::top_k=16,leaf_predictions=('nb', 'nba')")
    ('driftmoe-data', None, {'top_k': 16, 'leaf_predictions': ('nb', 'nba')})
    """
    name, _, rest = spec.partition(":")
    size_text, _, params_text = rest.partition(":")
    call = ast.parse(f"f({params_text})", mode="eval").body  # keyword arguments; each value a literal
    if call.args or any(kw.arg is None for kw in call.keywords):
        raise ValueError(f"model parameters must be name=value pairs, not {params_text!r}")
    params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    return name, int(size_text) if size_text else None, params


def run_one(stream_name: str, spec: str, n: int | None, seed: int, data_dirs, batch_size: int) -> dict:
    name, size, params = parse_model(spec)
    stream = open_stream(stream_name, n=n, seed=seed, data_dirs=data_dirs)
    model = build_model(name, size=size, seed=seed, params=params)
    report = replay(stream, Predictor(model, name), ReplayOptions(batch_size=batch_size, progress=sys.stderr.isatty()))
    return {**report, "stream": stream_name, "model": spec, "seed": seed, "n_requested": n}


def table(runs: list[dict], models: list[str], streams: list[str]) -> str:
    """Accuracy, kappa-M and instances/s per stream and model, averaged over seeds (with the spread when several);
    the pool size at the end and at most, drifts detected and expansions, of the first seed's run."""

    def cell(values: list[float], digits: int) -> str:
        if not values:
            return "-"
        mean = statistics.fmean(values)
        spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
        return f"{mean:.{digits}f}{spread}"

    def experts(run: dict) -> str:
        adaptation = run.get("adaptation")
        if not adaptation:
            return "-"
        return (
            f"{adaptation['final_experts']}/{adaptation['max_experts']} "
            f"({adaptation['drifts']} drifts, {adaptation['expansions']} expansions)"
        )

    lines = [
        "| stream | model | n | accuracy (%) | kappa-M (%) | instances/s | experts final/max |",
        "|---|---|---|---|---|---|---|",
    ]
    for stream in streams:
        for model in models:
            mine = [r for r in runs if r["stream"] == stream and r["model"] == model]
            if not mine:
                continue
            lines.append(
                f"| {stream} | {model} | {mine[0]['n']:,} | {cell([100 * r['accuracy'] for r in mine], 2)} | "
                f"{cell([100 * r['kappa_m'] for r in mine], 2)} | {cell([r['instances_per_s'] for r in mine], 0)} | {experts(mine[0])} |"
            )
    return "\n".join(lines)


def plot_pool_sizes(runs: list[dict], out: pathlib.Path) -> list[pathlib.Path]:
    """For every run whose pool was expanded or pruned, its pool size over time with the stream's drift centres
    marked: `<out>/pool_size_<stream>_<model>_<seed>.png` (the model spec made file-safe). (MoE-Task's pool grows
    with the classes as they appear: that is not adaptation, and gets no plot.)"""
    paths = []
    for run in runs:
        adaptation = run.get("adaptation") or {}
        if not (adaptation.get("expansions") or adaptation.get("prunes")):
            continue
        sizes = adaptation["pool_sizes"]
        name = run["stream"]
        drifts = generators.drifts(name, run["n"]) if name in generators.GENERATORS else []
        slug = "".join(c if c.isalnum() else "_" for c in run["model"]).strip("_")
        path = out / f"pool_size_{name}_{slug}_{run['seed']}.png"
        plot_pool_size([tuple(pair) for pair in sizes], run["n"], drifts, path,
                       f"{name} ({run['n']:,}): {run['model']}, seed {run['seed']}")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default=DEFAULT_STREAMS)
    parser.add_argument("--models", default=DEFAULT_MODELS, help="';'-separated when a spec holds commas")
    parser.add_argument("--n", type=int, default=200_000, help="instances per synthetic stream (files: whole)")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/suite"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    streams = args.streams.split(",")
    models = [m for m in (args.models.split(";") if ";" in args.models else args.models.split(",")) if m]
    seeds = [int(s) for s in args.seeds.split(",")]
    data_dirs = load_settings().data_dirs
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["stream"], r["model"], r["seed"], r["n_requested"]) for r in runs}

    for stream in streams:
        for seed in seeds:
            for model in models:
                if (stream, model, seed, args.n) in done:
                    continue
                try:
                    run = run_one(stream, model, args.n, seed, data_dirs, args.batch_size)
                except StreamUnavailable as err:
                    print(f"skipped {stream}: {err}", file=sys.stderr)
                    break
                runs.append(run)
                with open(log, "a") as f:
                    f.write(json.dumps(run, default=str) + "\n")
                print(
                    f"{stream} {model} seed {seed}: {100 * run['accuracy']:.2f}% kappa-M {100 * run['kappa_m']:.2f} "
                    f"{run['instances_per_s']:.0f}/s",
                    flush=True,
                )
    mine = [r for r in runs if r["n_requested"] == args.n and r["stream"] in streams and r["model"] in models]
    text = table(mine, models, streams)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    for path in plot_pool_sizes(mine, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
