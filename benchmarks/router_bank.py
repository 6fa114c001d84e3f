"""Routing and training throughput of a router bank against as many separate routers, side by side in one run.

    python benchmarks/router_bank.py                      # M = 1, 16, 256, 1024; 32, 256, 1024 rows a micro-batch
    python benchmarks/router_bank.py --members 16 256 --rows 256 --rounds 3
    python benchmarks/router_bank.py --device cpu         # the CPU only, even where CUDA is present

Each micro-batch spreads its rows uniformly over the M members: both sides route them (the bank in one call, the
separate routers one call per touched member, as models with their own routers do), then learn them as training
rows (random masks). Every member starts with a random part of a training batch buffered, so that training falls due
at its steady-state rate (about rows / batch_size steps a micro-batch) from the first measured micro-batch. Shapes
are DriftMoE-Data's defaults: 16 inputs, hidden (256, 128), 16 outputs, router batches of 32, dropout 0.2, balance
0.01.

Then routing alone, on the CPU, batched four ways over the same bank: the bank's buckets (members of similar counts
of rows padded together, one batched product per layer and bucket), exact groups (one per distinct count), one
bucket (every member padded to the largest count) and segment-wise (a `linear` per layer and member).

Rounds alternate the order of the sides and report medians; the speed-up is taken within each round (so that load
from other processes hits both sides alike) and the load average is recorded before and after. Both sides see the
same rows: at the end their parameters are compared. Where CUDA is present the bank and the separate routers also
run there, in the same rounds, and the bank's speed-up over the CPU bank is reported. Prints a table and writes
`benchmarks/results/router_bank-<device>.json` (machine, load, date, command, figures).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream_moe.models.router import Layers, Router, forward  # noqa: E402
from stream_moe.models.router_bank import ROUTE_PADDING, RouterBank  # noqa: E402

SETTINGS = dict(hidden=(256, 128), dropout=0.2, lr=2e-3, batch_size=32, epochs=1, balance_weight=0.01)


class Separate:
    """M standalone routers, each called for its own rows: what models with their own routers cost."""

    def __init__(self, n_members: int, n_inputs: int, n_outputs: int, device: str):
        self.routers = [Router(n_inputs, n_outputs, seed=m, device=device, **SETTINGS) for m in range(n_members)]

    def step(self, members: np.ndarray, z: np.ndarray, masks: np.ndarray) -> None:
        order = np.argsort(members, kind="stable")
        touched, first = np.unique(members[order], return_index=True)
        parts = np.split(order, first[1:])
        for m, rows in zip(touched.tolist(), parts):
            self.routers[m].scores(z[rows])
        for m, rows in zip(touched.tolist(), parts):
            self.routers[m].observe(z[rows], masks[rows])

    def finish(self) -> None:
        if self.routers[0].device.type == "cuda":
            torch.cuda.synchronize()


class Bank:
    """The same M routers as members of one bank: one call to route, one pass to train."""

    def __init__(self, n_members: int, n_inputs: int, n_outputs: int, device: str):
        self.bank = RouterBank(device=device, **SETTINGS)
        for m in range(n_members):
            self.bank.add(n_inputs, n_outputs, seed=m)

    def step(self, members: np.ndarray, z: np.ndarray, masks: np.ndarray) -> None:
        self.bank.scores(members, z)
        self.bank.observe(members, z, masks)

    def finish(self) -> None:
        self.bank.train()  # the last micro-batch's training, which would otherwise run in the next call
        if self.bank.device.type == "cuda":
            torch.cuda.synchronize()


def micro_batches(rng: np.random.Generator, n: int, rows: int, n_members: int, n_inputs: int, n_outputs: int):
    return [(rng.integers(0, n_members, rows), rng.normal(size=(rows, n_inputs)).astype(np.float32),
             (rng.random((rows, n_outputs)) < 0.3).astype(np.float32)) for _ in range(n)]


def prime(sides: dict, rng: np.random.Generator, n_members: int, n_inputs: int, n_outputs: int) -> None:
    """Buffer a random part of a batch for every member, on every side alike (no training yet)."""
    fill = rng.integers(0, SETTINGS["batch_size"], n_members)
    members = np.repeat(np.arange(n_members), fill)
    z = rng.normal(size=(len(members), n_inputs)).astype(np.float32)
    masks = (rng.random((len(members), n_outputs)) < 0.3).astype(np.float32)
    for side in sides.values():
        if isinstance(side, Bank):
            side.bank.observe(members, z, masks)
        else:
            for m in range(n_members):
                side.routers[m].observe(z[members == m], masks[members == m])


def agreement(bank: Bank, separate: Separate) -> float:
    """The largest parameter difference between a bank member and its separate twin (a few members)."""
    worst = 0.0
    for m in range(0, len(separate.routers), max(1, len(separate.routers) // 8)):
        ours, theirs = bank.bank.export(m).params.flat, separate.routers[m].params.flat.cpu()
        worst = max(worst, float((ours - theirs).abs().max()))
    return worst


def measure(n_members: int, rows: int, args, devices: list[str]) -> dict:
    rng = np.random.default_rng(n_members * 7919 + rows)
    sides = {}
    for device in devices:
        suffix = "" if device == "cpu" else f"-{device}"
        sides[f"bank{suffix}"] = Bank(n_members, args.inputs, args.outputs, device)
        sides[f"separate{suffix}"] = Separate(n_members, args.inputs, args.outputs, device)
    prime(sides, rng, n_members, args.inputs, args.outputs)
    per_round = max(2, args.rows_per_round // rows)
    warm = micro_batches(rng, 2, rows, n_members, args.inputs, args.outputs)
    for side in sides.values():  # first calls: allocations, workspaces, CUDA kernels' first launch
        for batch in warm:
            side.step(*batch)
        side.finish()
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        batches = micro_batches(rng, per_round, rows, n_members, args.inputs, args.outputs)
        names = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in names:
            side = sides[name]
            start = time.perf_counter()
            for batch in batches:
                side.step(*batch)
            side.finish()
            times[name].append((time.perf_counter() - start) / per_round)
    result = {"members": n_members, "rows": rows, "micro_batches_per_round": per_round,
              "ms_per_micro_batch": {k: 1e3 * statistics.median(v) for k, v in times.items()},
              "rounds_ms": {k: [1e3 * t for t in v] for k, v in times.items()},
              "max_param_difference": agreement(sides["bank"], sides["separate"])}
    result["rows_per_s"] = {k: rows / (ms / 1e3) for k, ms in result["ms_per_micro_batch"].items()}
    speedups = {"bank_over_separate": ("separate", "bank")}
    for device in devices[1:]:
        speedups[f"bank_{device}_over_separate_{device}"] = (f"separate-{device}", f"bank-{device}")
        speedups[f"bank_{device}_over_bank_cpu"] = ("bank", f"bank-{device}")
    result["speedup"] = {k: statistics.median(a / b for a, b in zip(times[slow], times[fast]))
                         for k, (slow, fast) in speedups.items()}
    return result


def padding(share: float):
    """The bank's routing, its buckets padded up to `share` of their real rows (0: one bucket per distinct count
    of rows per member; inf: one bucket for all)."""

    def route(bank: RouterBank, members: np.ndarray, z: np.ndarray) -> np.ndarray:
        bank._padding = share
        return bank.scores(members, z)

    return route


def segment_wise(bank: RouterBank, members: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A `linear` per layer and touched member, on the member's own row of the stacked parameters."""
    order = np.argsort(members, kind="stable")
    touched, first = np.unique(members[order], return_index=True)
    zt = torch.from_numpy(z)
    out = torch.empty(len(members), bank._out_width)
    for m, rows in zip(touched.tolist(), np.split(order, first[1:])):
        index = torch.from_numpy(rows)
        h = torch.nn.functional.pad(zt[index], (0, bank._in_width - z.shape[1]))
        out[index] = forward(Layers(bank._sizes, bank._params[m]), h)
    return out.numpy()


def routing_variants(n_members: int, rows: int, args) -> dict:
    """Routing alone (no training) by the three ways of batching it, on one CPU bank, alternating rounds."""
    rng = np.random.default_rng(n_members + rows)
    bank = Bank(n_members, args.inputs, args.outputs, "cpu").bank
    variants = {"bucketed": padding(ROUTE_PADDING), "exact": padding(0.0), "one_bucket": padding(float("inf")),
                "segment": segment_wise}
    per_round = max(2, args.rows_per_round // rows)
    times = {name: [] for name in variants}
    for r in range(args.rounds + 1):
        batches = micro_batches(rng, per_round, rows, n_members, args.inputs, args.outputs)
        reference = [padding(ROUTE_PADDING)(bank, m, z) for m, z, _ in batches[:1]]
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            start = time.perf_counter()
            with torch.no_grad():
                answers = [variants[name](bank, m, z) for m, z, _ in batches]
            if r:  # the first round warms up
                times[name].append((time.perf_counter() - start) / per_round)
            assert np.allclose(answers[0], reference[0], atol=1e-4)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return {"members": n_members, "rows": rows, "ms_per_micro_batch": ms,
            "speedup_of_bucketed": {k: statistics.median(a / b for a, b in zip(times[k], times["bucketed"]))
                                    for k in ("exact", "one_bucket", "segment")}}


def machine(devices: list[str]) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "niceness": os.nice(0)}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if "cuda" in devices:
        info["card"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--rows", type=int, nargs="+", default=[32, 256, 1024], help="rows per micro-batch")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians reported)")
    parser.add_argument("--rows-per-round", type=int, default=4096, help="rows each side learns per round")
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--outputs", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine may be shared)")
    parser.add_argument("--device", choices=["auto", "cpu"], default="auto", help="auto: CUDA too where present")
    parser.add_argument("--no-variants", action="store_true", help="skip the comparison of ways to batch routing")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if args.device == "auto" and torch.cuda.is_available() else [])
    out = args.out or ROOT / "benchmarks" / "results" / f"router_bank-{devices[-1]}.json"
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([os.path.basename(sys.executable), *sys.argv]), "machine": machine(devices),
              "load_before": os.getloadavg(), "settings": {**SETTINGS, "inputs": args.inputs, "outputs": args.outputs},
              "results": []}
    names = None
    for n_members in args.members:
        for rows in args.rows:
            result = measure(n_members, rows, args, devices)
            report["results"].append(result)
            if names is None:
                names = list(result["ms_per_micro_batch"])
                print(f"{'M':>5} {'rows':>5}  " + "  ".join(f"{n + ' ms':>17}" for n in names) + "  "
                      + "  ".join(f"{k:>22}" for k in result["speedup"]) + "  load", flush=True)
            print(f"{n_members:>5} {rows:>5}  " + "  ".join(f"{result['ms_per_micro_batch'][n]:>17.3f}" for n in names)
                  + "  " + "  ".join(f"{v:>21.2f}x" for v in result["speedup"].values())
                  + f"  {os.getloadavg()[0]:.1f}", flush=True)
    if not args.no_variants:
        report["routing_variants"] = []
        print("\nrouting alone on the CPU, ms a micro-batch (speed-up of the bank's buckets over each)")
        for n_members in args.members:
            for rows in args.rows:
                result = routing_variants(n_members, rows, args)
                report["routing_variants"].append(result)
                ms, up = result["ms_per_micro_batch"], result["speedup_of_bucketed"]
                print(f"{n_members:>5} {rows:>5}  bucketed {ms['bucketed']:8.3f}"
                      + "".join(f"  {k} {ms[k]:8.3f} ({up[k]:.2f}x)" for k in up)
                      + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    report["load_after"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
