"""Ablation of the failure-aware link-level CfC: how the routing-derived expected shift and the up/down mask should
enter it. Three variants of the same CfC (16 lags, two seasons, a spread of one), told the same link states:

- `rewrite` (`cfc-failure-aware`): on a link event the remembered loads are rewritten into the new routing;
- `shift-at-failure`: nothing rewritten; the expected shift is added to the forecasts made before the first step of
  the new routing, and a link down is forecast to carry nothing;
- `cell-inputs`: nothing rewritten; the mask and the expected shift (in typical changes) are two more inputs of the
  cell at every step (one and zero between failures), the newest step's inputs set when a link event arrives.

    python benchmarks/forecast_ablation.py --scenarios euro28-drastic,abilene-drastic --seeds 3,4,5

Runs go to `--out` (default `benchmarks/results/forecast_ablation.jsonl`) with the command, date, machine and load;
the table compares them with persistence of the same scenario and seed, from `benchmarks/results/
forecast_network.jsonl` when it has it.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shlex
import sys

import numpy as np
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from connectors.network.scenario import load_scenario  # noqa: E402
from connectors.network.simulator import simulate  # noqa: E402
from stream_moe.forecast.backtest import backtest  # noqa: E402
from stream_moe.forecast.cells import CELLS  # noqa: E402
from stream_moe.forecast.failure_aware import FailureAwareForecaster  # noqa: E402
from stream_moe.forecast.inputs import simulated  # noqa: E402
from stream_moe.forecast.liquid import LiquidForecaster  # noqa: E402
from stream_moe.forecast.network import carried  # noqa: E402

TOLERANCE = 1.2


class ShiftAtFailure(FailureAwareForecaster):
    """The expected shift added to the forecasts of the step after a link event, nothing rewritten."""

    def set_links_down(self, down) -> None:
        down = frozenset(int(i) for i in down)
        if down != self.down and hasattr(self, "model_"):
            last = self.model_.values_[-1]
            self.shift_ = self.network.remapping(self.down, down) @ last - last
        self.down_ = down

    def observe(self, values, dt: float | None = None) -> None:
        super().observe(values, dt)
        self.shift_ = 0.0

    def forecast(self, h: int = 1) -> np.ndarray:
        return carried(self.model_.forecast(h) + getattr(self, "shift_", 0.0), self.down)


class MaskAndShiftInputs(LiquidForecaster):
    """A liquid network with two more inputs per series: the link's up/down mask and the expected shift of its load
    at the next step, in typical changes."""

    def _build(self, values: np.ndarray) -> None:
        super()._build(values)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.cell_ = CELLS[self.cell](self.lags + self.seasons * (2 * self.spread + 1) + 2, self.hidden)
            self.head_ = nn.Linear(self.hidden, 1)
        self.optimizer_ = torch.optim.Adam([*self.cell_.parameters(), *self.head_.parameters()], lr=self.lr)
        self.mask_ = np.ones(len(values))
        self.extra_ = collections.deque([self._extra(np.zeros(len(values)))], maxlen=self.values_.maxlen)

    def _extra(self, shift: np.ndarray) -> np.ndarray:
        return np.stack([self.mask_, np.clip(shift / self.scale_, -self.clip, self.clip)], axis=1)

    def observe(self, values, dt: float | None = None) -> None:
        if hasattr(self, "extra_"):
            self.extra_.append(self._extra(np.zeros(len(values))))
        super().observe(values, dt)

    def _inputs(self, v: np.ndarray, d: np.ndarray, steps: int) -> np.ndarray:
        extra = list(self.extra_)
        extra += [self._extra(np.zeros(len(self.mask_)))] * (len(v) - len(extra))  # steps forecast: no shift
        i = np.arange(len(d) - steps, len(d))
        return np.concatenate([super()._inputs(v, d, steps), np.stack(extra)[i + 1].transpose(1, 0, 2)], axis=2)

    @torch.no_grad()
    def announce(self, mask: np.ndarray, shift: np.ndarray) -> None:
        """The next step's mask and expected shift: the newest step's inputs change, and its state is run again."""
        self.mask_ = mask
        self.extra_[-1] = self._extra(shift)
        v = np.stack(self.values_)
        self.states_[-1] = self.cell_(self._tensor(self._inputs(v, self._changes(v), 1)[:, 0]), self.states_[-2], 1.0)


class CellInputs(FailureAwareForecaster):
    """The mask and the expected shift as inputs of the cell, nothing rewritten."""

    def observe(self, values, dt: float | None = None) -> None:
        if not hasattr(self, "model_"):
            self.model_ = MaskAndShiftInputs(self.cell, self.hidden, self.window, self.lr, self.season, self.lags,
                                             self.seasons, self.spread, device=self.device, seed=self.seed)
        self.model_.observe(values, dt)

    def set_links_down(self, down) -> None:
        down = frozenset(int(i) for i in down)
        if down != self.down and hasattr(self, "model_"):
            last = self.model_.values_[-1]
            mask = np.ones(len(last))
            mask[sorted(down)] = 0.0
            self.model_.announce(mask, self.network.remapping(self.down, down) @ last - last)
        self.down_ = down


VARIANTS = {"rewrite": FailureAwareForecaster, "shift-at-failure": ShiftAtFailure, "cell-inputs": CellInputs}


def run_one(scenario: str, variant: str, seed: int) -> dict:
    data = simulated(simulate(load_scenario(scenario), seed=seed))
    forecaster = VARIANTS[variant](data.network, season=data.season, seed=seed, device="cpu")
    result = backtest(forecaster, data.loads, data.changes, warmup=2 * data.season, window=data.season,
                      tolerance=TOLERANCE, down=data.down)
    return {"scenario": scenario, "model": variant, "seed": seed, "tolerance": TOLERANCE, **result.summary()}


def table(runs: list[dict], baselines: list[dict]) -> str:
    persistence = {(r["scenario"], r["seed"]): r for r in baselines if r["model"] == "persistence"}
    lines = ["| scenario | seed | variant | RMSE | vs persistence | RMSE, day after each failure | recovery (steps) |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        base = persistence.get((r["scenario"], r["seed"]))
        gain = f"{100 * (r['rmse'] / base['rmse'] - 1):+.0f}%" if base else "—"
        after = ", ".join(f"{c['rmse_after']:.3f}" for c in r["changes"])
        recovery = ", ".join(str(c["recovery_steps"]) for c in r["changes"])
        lines.append(f"| {r['scenario']} | {r['seed']} | {r['model']} | {r['rmse']:.3f} | {gain} | {after} | "
                     f"{recovery} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="euro28-drastic,abilene-drastic")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="3,4,5")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "forecast_ablation.jsonl")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    import suite  # noqa: PLC0415 (provenance helpers)

    torch.set_num_threads(1)
    done = {(r["scenario"], r["model"], r["seed"]) for r in suite.read_runs(args.out)}
    meta = suite.provenance(shlex.join(["python", "benchmarks/forecast_ablation.py", *argv]))
    for scenario in args.scenarios.split(","):
        for seed in map(int, args.seeds.split(",")):
            for variant in args.variants.split(","):
                if (scenario, variant, seed) in done:
                    continue
                before = suite.load()
                run = run_one(scenario, variant, seed)
                run.update(meta, load_before=before, load_after=suite.load())
                suite.append(args.out, run)
                print(f"{scenario} {variant} seed {seed}: RMSE {run['rmse']:.3f}", flush=True)
    baselines = suite.read_runs(ROOT / "benchmarks" / "results" / "forecast_network.jsonl")
    print(table(suite.read_runs(args.out), baselines))


if __name__ == "__main__":
    main()
