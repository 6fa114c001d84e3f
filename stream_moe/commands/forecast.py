"""`stream-moe forecast`: forecast every link's load through a failure scenario (or a CSV of real loads) and report."""

from __future__ import annotations

import argparse
import importlib
import logging
import pathlib

from connectors.network.scenario import BUILTIN, load_scenario
from stream_moe.commands.arguments import LazyChoices, device, existing_file, non_negative_int, positive_int
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

Built-in scenarios: {", ".join(BUILTIN)}. A scenario file is YAML (see connectors/network/scenario.py): a topology
(euro28, abilene or an edge-list file), steps, step minutes, and failures at given steps, by link name or by impact
rank (1: the link whose failure moves the most load). Results (forecast.json, forecast.png) go to --out.
"""
WARMUP_DAYS = 2  # steps of warm-up left out of the scores: two seasons (days)
DEFAULT_SEASON = 48  # warm-up steps per day where the loads have no known season


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
    p.add_argument("--failure", type=non_negative_int, action="append", default=[],
                   help="step of a known failure in --csv loads, repeatable")
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


def load_input(args) -> tuple:
    """Name, loads (steps x links), link names, change steps and steps per day of what the arguments ask for."""
    from connectors.network.simulator import simulate

    if args.csv is not None:
        series = read_csv_loads(args.csv)
        return args.csv.name, series.values, series.names, sorted(args.failure), args.season
    if args.failure or args.season is not None:
        raise UsageError("--failure" if args.failure else "--season", "only with --csv (a scenario knows its own)")
    try:
        sim = simulate(load_scenario(args.scenario), seed=args.seed)
    except KeyError as err:  # a scenario file that lacks a key
        raise ValueError(f"{args.scenario}: not a valid scenario: no {err.args[0]!r} given") from err
    except Exception as err:  # a scenario file that does not describe a scenario
        raise ValueError(f"{args.scenario}: not a valid scenario: {one_line(err)}") from err
    return sim.scenario.name, sim.loads, sim.link_names, [c.step for c in sim.changes], sim.scenario.steps_per_day


def make_forecaster(args, season: int | None):
    """The forecaster the arguments ask for, its --param values checked against its constructor first."""
    from stream_moe.forecast.registry import build_forecaster

    params = dict(args.param)
    for name, flag in (("seed", "--seed"), ("device", "--device"), ("season", "--season")):
        if name in params:
            raise UsageError("--param", f"{name} is set with {flag}")
    cls = type(build_forecaster(args.model, season, seed=args.seed, device="cpu"))
    try:
        params = check_params(cls, params, args.model)
        return build_forecaster(args.model, season, seed=args.seed, device=args.device, **params)
    except (ParamError, TypeError) as err:
        raise UsageError("--param", one_line(err)) from None


def run(args) -> int:
    from stream_moe.forecast.backtest import backtest
    from stream_moe.forecast.plots import plot_forecast

    name, loads, names, changes, season = load_input(args)
    if args.n is not None:
        loads = loads[: args.n]
        changes = [c for c in changes if c < args.n]
    warmup = WARMUP_DAYS * (season or DEFAULT_SEASON)
    if len(loads) <= warmup + args.horizon:
        raise ValueError(f"{name}: {len(loads)} steps, but the first {warmup} warm the forecaster up: at least "
                         f"{warmup + args.horizon + 1} are needed to score a {args.horizon}-step forecast")
    if late := [c for c in changes if c >= len(loads)]:
        raise UsageError("--failure", f"step {late[0]} is past the end of {name} ({len(loads)} steps)")
    model = make_forecaster(args, season)
    result = backtest(model, loads, changes, horizon=args.horizon, warmup=warmup)
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
