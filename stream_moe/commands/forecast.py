"""`stream-moe forecast`: forecast every link's load through a failure scenario (or a CSV of real loads) and report."""

from __future__ import annotations

import argparse
import importlib
import logging
import pathlib

from connectors.network.scenario import BUILTIN, load_scenario
from stream_moe.commands.arguments import LazyChoices, device, existing_file, non_negative_int, positive_int
from stream_moe.forecast.options import duration, link_change
from stream_moe.config import ModelSettings
from stream_moe.errors import UsageError, one_line
from stream_moe.evaluation import write_json
from stream_moe.params import ParamError, check_params, parse_param
from stream_moe.provenance import run_info

# The forecasters import torch: only when the command runs, or when their names are looked at.
FORECASTER_NAMES = LazyChoices(lambda: importlib.import_module("stream_moe.forecast.registry").FORECASTERS)

log = logging.getLogger("stream_moe.forecast")

EPILOG = f"""\
examples:
  stream-moe forecast --scenario euro28-drastic --model cfc
  stream-moe forecast --scenario abilene-mild --model mlp-retrained --seed 3
  stream-moe forecast --scenario my_scenario.yaml --model ltc --horizon 4
  stream-moe forecast --csv link_loads.csv --season 288 --failure 5000 --model cfc
  stream-moe forecast --scenario abilene-drastic --model od-cfc          # OD demands routed over the topology
  stream-moe forecast --csv loads.csv.gz --season 96 --topology net.edges --failure 5000:A-B --model cfc-failure-aware
  stream-moe forecast --csv loads.csv --od demands.csv --topology net.edges --failure 5000:A-B --model od-cfc

Built-in scenarios: {", ".join(BUILTIN)}. A scenario file is YAML (see connectors/network/scenario.py): a topology
(euro28, abilene or an edge-list file), steps, step minutes, and failures at given steps, by link name or by impact
rank (1: the link whose failure moves the most load). Results (forecast.json, forecast.png) go to --out.
The network forecasters (cfc-failure-aware; od-cfc, which also needs the OD demands) learn which link fails when:
scenarios know it; with --csv, name the links (--failure STEP:LINK) and give the topology (an edge-list file
'node_a node_b capacity [weight]' whose links are the CSV's columns) and, for od-cfc, a CSV of OD demands at the
loads' timestamps, one column per pair 'origin>destination'. A gap in the CSV's timestamps reaches the liquid
networks as a longer time span.
"""


def scenario(text: str) -> str:
    """A built-in scenario's name, or a scenario file that exists."""
    if text in BUILTIN or pathlib.Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(f"unknown scenario {text!r}: neither built in ({', '.join(BUILTIN)}) nor a file")


def register(p: argparse.ArgumentParser) -> None:
    p.description = ("Walk forward through the link loads of a network: observe every link's load, forecast the next "
                     "--horizon steps, learn online. Prints RMSE, MAPE and, for each failure or recovery, the RMSE "
                     "before and after it and the steps until the forecast error is back within 10 percent of its "
                     "level before.")
    p.epilog = EPILOG
    what = p.add_mutually_exclusive_group()
    what.add_argument("--scenario", type=scenario, default="euro28-drastic", help="built-in scenario or YAML file")
    what.add_argument("--csv", type=existing_file,
                      help="real loads instead: a CSV, wide (time, one column per link) or long (time, link, value)")
    p.add_argument("--season", type=positive_int, help="steps per day of --csv loads (scenarios know theirs)")
    p.add_argument("--failure", type=link_change, action="append", default=[], metavar="STEP[:LINK,...]",
                   help="step of a known failure in --csv loads, and the links that failed, repeatable")
    p.add_argument("--recovery", type=link_change, action="append", default=[], metavar="STEP:LINK[,...]",
                   help="step where failed --csv links came back, repeatable")
    p.add_argument("--topology", help="with --csv: the network's topology (built-in name or edge-list file)")
    p.add_argument("--od", type=existing_file, help="with --csv and --topology: a CSV of the OD demands, one column "
                   "per pair 'origin>destination', at the loads' timestamps")
    p.add_argument("--routing", choices=("hops", "weight"),
                   help="with --topology: shortest paths by hop count or by link weight (default: weight)")
    p.add_argument("--warmup", type=duration, default=duration("2"),
                   help="left out of the scores at the start: days (2, 1.5d), hours (12h) or steps (96steps); "
                   "default: 2 days")
    p.add_argument("--window", type=duration, default=duration("1"),
                   help="span before and after each failure that its scores cover, as --warmup; default: 1 day")
    p.add_argument("--model", choices=FORECASTER_NAMES, default="cfc", metavar="MODEL", help="forecaster: %(choices)s")
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=VALUE",
                   help="forecaster constructor parameter, repeatable (e.g. hidden=32, window=16); checked against "
                   "the constructor before the run")
    p.add_argument("--seed", type=non_negative_int, default=ModelSettings().seed,
                   help="seed of the demands and the model")
    p.add_argument("--n", "--steps", dest="n", type=positive_int,
                   help="steps to run (default: the whole scenario or file)")
    p.add_argument("--horizon", type=positive_int, default=1, help="steps ahead to forecast and score")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:N (liquid networks)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/forecast"), help="results directory")
    p.set_defaults(func=run)


def read_csv_loads(path: pathlib.Path):
    """The loads of a CSV file, refused with one line naming the file when there are none or they cannot be read."""
    from connectors.network.csv_loads import read_loads

    if not path.read_text(errors="replace").strip():
        raise ValueError(f"{path}: empty file")
    try:
        series = read_loads(path)
    except Exception as err:  # the reader's own errors (a bad number, a missing column) name no file
        raise ValueError(f"{path}: cannot read link loads: {one_line(err)}") from err
    if len(series.values) == 0 or series.values.ndim != 2:
        raise ValueError(f"{path}: no rows of loads after the header")
    return series


def load_input(args):
    """What the arguments ask to forecast (a `ForecastInput`): the loads, the changes, the steps per day, and what
    is known besides (link states, demands, network)."""
    from connectors.network.simulator import simulate
    from stream_moe.forecast.inputs import measured, simulated

    if args.csv is not None:
        if args.od is not None and args.topology is None:
            raise UsageError("--od", "the demands are routed over the network: give --topology too")
        series = read_csv_loads(args.csv)
        od = read_csv_loads(args.od) if args.od is not None else None
        try:
            return measured(args.csv.name, series, args.season, args.failure, args.recovery, args.topology, od,
                            args.routing or "weight")
        except (ValueError, KeyError, OSError) as err:
            raise ValueError(f"{args.csv}: {one_line(err)}") from err
    for flag, given in (("--failure", args.failure), ("--recovery", args.recovery), ("--topology", args.topology),
                        ("--od", args.od), ("--routing", args.routing), ("--season", args.season is not None)):
        if given:
            raise UsageError(flag, "only with --csv (a scenario knows its own)")
    try:
        sim = simulate(load_scenario(args.scenario), seed=args.seed)
    except KeyError as err:  # a scenario file that lacks a key
        raise ValueError(f"{args.scenario}: not a valid scenario: no {err.args[0]!r} given") from err
    except Exception as err:  # a scenario file that does not describe a scenario
        raise ValueError(f"{args.scenario}: not a valid scenario: {one_line(err)}") from err
    return simulated(sim)


def make_forecaster(args, data):
    """The forecaster the arguments ask for, its --param values checked against its constructor first; a network
    forecaster gets the network of `data`, the `ForecastInput`."""
    from stream_moe.forecast.registry import NETWORK_FORECASTERS, build_forecaster

    params = dict(args.param)
    for name, flag in (("seed", "--seed"), ("device", "--device"), ("season", "--season"), ("network", "--topology")):
        if name in params:
            raise UsageError("--param", f"{name} is set with {flag}")
    if args.model in NETWORK_FORECASTERS:
        if data.network is None:
            raise UsageError("--topology", f"{args.model} forecasts from the network: give its topology")
        if NETWORK_FORECASTERS[args.model].uses_demands and data.demands is None:
            raise UsageError("--od", f"{args.model} forecasts the OD demands: give them")
        if data.changes and data.down is None:
            raise UsageError("--failure", f"{args.model} needs the links that failed: STEP:LINK")
    season, network = data.season, data.network
    cls = type(build_forecaster(args.model, season, seed=args.seed, device="cpu", network=network))
    try:
        params = check_params(cls, params, args.model)
        return build_forecaster(args.model, season, seed=args.seed, device=args.device, network=network, **params)
    except (ParamError, TypeError) as err:
        raise UsageError("--param", one_line(err)) from None


def run(args) -> int:
    from stream_moe.forecast.backtest import backtest, check_windows
    from stream_moe.forecast.plots import plot_forecast

    data = load_input(args)
    if late := [c for c in data.changes if c >= len(data.loads)]:
        raise UsageError("--failure", f"step {late[0]} is past the end of {data.name} ({len(data.loads)} steps)")
    if args.n is not None:
        data = data.head(args.n)
    name, loads, names, changes = data.name, data.loads, data.names, data.changes
    warmup, window = args.warmup.steps(data.steps_per_day), args.window.steps(data.steps_per_day)
    try:
        check_windows(len(loads), changes, args.horizon, warmup, window)
    except ValueError as err:
        raise ValueError(f"{name}: {err} (a warm-up of {warmup} steps and windows of {window}: see --warmup and "
                         "--window)") from None
    model = make_forecaster(args, data)
    result = backtest(model, loads, changes, horizon=args.horizon, warmup=warmup, window=window, down=data.down,
                      demands=data.demands, spans=data.spans)
    summary = {"scenario": name, "model": args.model, "params": dict(args.param), **run_info(args.argv),
               "seed": args.seed,
               "horizon": args.horizon, "links": len(names), "steps": len(loads), "requested_n": args.n,
               **result.summary()}
    for change in summary["changes"]:
        change["affected"] = [names[i] for i in change["affected"]]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "forecast.json", summary)
    plot_forecast(result, names, args.out / "forecast.png", f"{args.model} on {name} (seed {args.seed})")
    print(format_report(summary))
    print(f"  results: {args.out / 'forecast.json'}, plot: {args.out / 'forecast.png'}")
    return 0


def format_report(s: dict) -> str:
    lines = [
        f"{s['model']} on {s['scenario']}: {s['links']} links, {s['steps']} steps, {s['horizon']}-step-ahead forecasts",
        f"  RMSE {s['rmse']:.3f}   MAPE {s['mape']:.1f}%   {s['ms_per_step']:.2f} ms/step (forecast + update)",
    ]
    for c in s["changes"]:
        recovery = "not recovered" if c["recovery_steps"] is None else f"recovered in {c['recovery_steps']} steps"
        lines.append(
            f"  change at step {c['step']} ({', '.join(c['affected'])} most affected): RMSE {c['rmse_before']:.3f} "
            f"before, {c['rmse_after']:.3f} after ({c['rmse_after_affected']:.3f} on those links), {recovery}"
        )
    return "\n".join(lines)
