"""`stream-moe forecast`: forecast every link's load through a failure scenario (or a CSV of real loads) and report."""

from __future__ import annotations

import argparse
import json
import logging
import pathlib

import numpy as np

from connectors.network.csv_loads import read_loads
from connectors.network.scenario import BUILTIN, load_scenario
from connectors.network.simulator import simulate
from stream_moe.commands.replay import parse_param
from stream_moe.forecast.backtest import backtest
from stream_moe.forecast.plots import plot_forecast
from stream_moe.forecast.registry import FORECASTERS, build_forecaster

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


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "forecast",
        help="forecast link loads through link failures and report RMSE, MAPE and recovery per failure",
        description="Walk forward through the link loads of a network: observe every link's load, forecast the next "
        "--horizon steps, learn online. Prints RMSE, MAPE and, for each failure or recovery, the RMSE before and after "
        "it and the steps until the forecast error is back within 10 percent of its level before.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--scenario", default="euro28-drastic",
                      help="built-in scenario or YAML file (default: euro28-drastic)")
    what.add_argument("--csv", type=pathlib.Path,
                      help="real loads instead: a CSV, wide (time, one column per link) or long (time, link, value)")
    p.add_argument("--season", type=int, help="steps per day of --csv loads (scenarios know theirs)")
    p.add_argument("--failure", type=int, action="append", default=[], help="step of a known failure in --csv loads")
    p.add_argument("--model", choices=list(FORECASTERS), default="cfc", help="forecaster (default: cfc)")
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=VALUE",
                   help="forecaster constructor parameter, repeatable (e.g. hidden=32, window=16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demands and the model (default: 0)")
    p.add_argument("--steps", type=int, help="cut the run to this many steps")
    p.add_argument("--horizon", type=int, default=1, help="steps ahead to forecast and score (default: 1)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (liquid networks)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/forecast"), help="results directory")
    p.set_defaults(func=run)


def load_input(args) -> tuple[str, np.ndarray, list[str], list[int], int | None]:
    """Name, loads (steps x links), link names, change steps and steps per day of what the arguments ask for."""
    if args.csv is not None:
        series = read_loads(args.csv)
        return args.csv.name, series.values, series.names, sorted(args.failure), args.season
    sim = simulate(load_scenario(args.scenario), seed=args.seed)
    return sim.scenario.name, sim.loads, sim.link_names, [c.step for c in sim.changes], sim.scenario.steps_per_day


def run(args) -> int:
    name, loads, names, changes, season = load_input(args)
    if args.steps is not None:
        loads = loads[: args.steps]
        changes = [c for c in changes if c < args.steps]
    model = build_forecaster(args.model, season, seed=args.seed, device=args.device, **dict(args.param))
    result = backtest(model, loads, changes, horizon=args.horizon, warmup=2 * (season or 48))
    summary = {"scenario": name, "model": args.model, "seed": args.seed, "horizon": args.horizon,
               "links": len(names), "steps": len(loads), **result.summary()}
    for change in summary["changes"]:
        change["affected"] = [names[i] for i in change["affected"]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "forecast.json").write_text(json.dumps(summary, indent=2))
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
