"""Forecast speed: milliseconds per step (forecast the next step of every link + the online update) and steps per
second, for all links in one batch, at 41 links (Euro28) and at 1,000 links (random walks with a daily cycle). The
network forecasters (cfc-failure-aware, od-cfc) run on a simulated scenario's loads (and its OD demands: Euro28 has
756 pairs) instead, whatever --links says.

Both wall-clock and CPU time of the process are given: with one thread, CPU time per step is what a step costs on a
core of its own, while wall-clock time on a shared machine also counts the waits for a core. The C allocator keeps
freed memory, as the `stream-moe` command has it (`stream_moe/allocator.py`); `--default-malloc` measures without.

    python benchmarks/forecast_speed.py --models cfc,ltc --links 41,1000 --steps 200 --device cpu
    python benchmarks/forecast_speed.py --models cfc-failure-aware,od-cfc --scenario euro28-drastic

Prints a table and writes the figures, with the command, date, machine and load average, to `--out` (default
`benchmarks/results/forecast_speed.json`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time

import numpy as np
import torch

from connectors.network.scenario import load_scenario
from connectors.network.simulator import simulate
from stream_moe.allocator import keep_freed_memory
from stream_moe.forecast.inputs import simulated
from stream_moe.forecast.registry import NETWORK_FORECASTERS, build_forecaster

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEASON = 48


def loads(links: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    daily = 1 + 0.4 * np.sin(2 * np.pi * t / SEASON + rng.uniform(0, 2 * np.pi, links))
    return rng.lognormal(2, 1, links) * daily * (1 + 0.05 * rng.standard_normal((steps, links)))


def ms_per_step(model: str, links: int, steps: int, device: str, scenario: str) -> tuple[float, float, int]:
    """Wall-clock and CPU milliseconds per step, and the links forecast."""
    if model in NETWORK_FORECASTERS:
        data = simulated(simulate(load_scenario(scenario), seed=0))
        f = build_forecaster(model, SEASON, device=device, network=data.network)
        values, demands = data.loads[: steps + SEASON + 20], data.demands
    else:
        f = build_forecaster(model, SEASON, device=device)
        values, demands = loads(links, steps + SEASON + 20), None

    def step(t: int) -> None:
        if demands is not None and f.uses_demands:
            f.observe(values[t], demands=demands[t])
        else:
            f.observe(values[t])
        f.forecast(1)

    for t in range(SEASON + 20):  # warm up: buffers full, online updates running
        step(t)
    start, cpu = time.perf_counter(), time.process_time()
    for t in range(SEASON + 20, len(values)):
        step(t)
    if device == "cuda":
        torch.cuda.synchronize()
    done = len(values) - SEASON - 20
    return 1000 * (time.perf_counter() - start) / done, 1000 * (time.process_time() - cpu) / done, values.shape[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cfc,ltc")
    parser.add_argument("--links", default="41,1000")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scenario", default="euro28-drastic", help="the network forecasters' loads and demands")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--default-malloc", action="store_true", help="leave the C allocator's settings alone")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "forecast_speed.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import suite  # noqa: PLC0415 (provenance helpers)

    report = {**suite.provenance(shlex.join(["python", "benchmarks/forecast_speed.py", *argv])),
              "threads": args.threads, "default_malloc": args.default_malloc, "load_before": suite.load(), "runs": []}
    torch.set_num_threads(args.threads)
    if not args.default_malloc:
        keep_freed_memory()
    print("| model | links | device | ms/step (wall) | steps/s (wall) | ms/step (CPU) | steps/s (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for links in map(int, args.links.split(",")) if model not in NETWORK_FORECASTERS else [None]:
            wall, cpu, n = ms_per_step(model, links, args.steps, args.device, args.scenario)
            report["runs"].append({"model": model, "links": n, "device": args.device, "steps": args.steps,
                                   "wall_ms": wall, "cpu_ms": cpu})
            row = [model, n, args.device, f"{wall:.2f}", f"{1000 / wall:.0f}", f"{cpu:.2f}", f"{1000 / cpu:.0f}"]
            print("| " + " | ".join(map(str, row)) + " |", flush=True)
    report["load_after"] = suite.load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
