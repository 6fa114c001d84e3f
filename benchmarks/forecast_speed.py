"""Forecast speed: milliseconds per step (forecast the next step of every link + the online update) and steps per
second, for all links in one batch, at 41 links (Euro28) and at 1,000 links (random walks with a daily cycle).

Both wall-clock and CPU time of the process are given: with one thread, CPU time per step is what a step costs on a
core of its own, while wall-clock time on a shared machine also counts the waits for a core. The C allocator keeps
freed memory, as the `stream-moe` command has it (`stream_moe/allocator.py`); `--default-malloc` measures without.

    python benchmarks/forecast_speed.py --models cfc,ltc --links 41,1000 --steps 200 --device cpu
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stream_moe.allocator import keep_freed_memory
from stream_moe.forecast.registry import build_forecaster

SEASON = 48


def loads(links: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    daily = 1 + 0.4 * np.sin(2 * np.pi * t / SEASON + rng.uniform(0, 2 * np.pi, links))
    return rng.lognormal(2, 1, links) * daily * (1 + 0.05 * rng.standard_normal((steps, links)))


def ms_per_step(model: str, links: int, steps: int, device: str) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds per step."""
    f = build_forecaster(model, SEASON, device=device)
    data = loads(links, steps + SEASON + 20)
    for v in data[: SEASON + 20]:  # warm up: buffers full, online updates running
        f.observe(v)
        f.forecast(1)
    start, cpu = time.perf_counter(), time.process_time()
    for v in data[SEASON + 20 :]:
        f.observe(v)
        f.forecast(1)
    if device == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps, 1000 * (time.process_time() - cpu) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cfc,ltc")
    parser.add_argument("--links", default="41,1000")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--default-malloc", action="store_true", help="leave the C allocator's settings alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.default_malloc:
        keep_freed_memory()
    print("| model | links | device | ms/step (wall) | steps/s (wall) | ms/step (CPU) | steps/s (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for links in map(int, args.links.split(",")):
            wall, cpu = ms_per_step(model, links, args.steps, args.device)
            row = [model, links, args.device, f"{wall:.2f}", f"{1000 / wall:.0f}", f"{cpu:.2f}", f"{1000 / cpu:.0f}"]
            print("| " + " | ".join(map(str, row)) + " |", flush=True)


if __name__ == "__main__":
    main()
