"""`stream-moe forecast` on what real data brings: gzipped CSV files, gaps in the timestamps, failures early in the
data, the topology and OD demands of the network forecasters; and the values it refuses."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from connectors.network.routing import pair_key
from connectors.network.scenario import load_scenario
from connectors.network.simulator import simulate
from stream_moe.cli import main
from stream_moe.forecast.liquid import LiquidForecaster


def sinusoid_csv(steps: int, gap_at: int | None = None) -> str:
    t = np.arange(steps)
    times = 60.0 * (t + (4 * (t >= gap_at) if gap_at is not None else 0))  # four samples missing at gap_at
    loads = np.stack([10 + 3 * np.sin(2 * np.pi * t / 24), 5 + np.cos(2 * np.pi * t / 24)], axis=1)
    return "time,A-B,B-C\n" + "".join(f"{s},{a},{b}\n" for s, (a, b) in zip(times, loads))


def test_reads_gzipped_csv(tmp_path, capsys):
    (tmp_path / "loads.csv.gz").write_bytes(gzip.compress(sinusoid_csv(120).encode()))
    args = ["forecast", "--csv", str(tmp_path / "loads.csv.gz"), "--season", "24", "--model", "persistence",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "forecast.json").read_text())["steps"] == 120


@pytest.mark.parametrize("option", ["--steps", "--horizon"])
def test_zero_steps_or_horizon_are_refused(tmp_path, option, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["forecast", "--scenario", "abilene-mild", "--model", "persistence", option, "0",
              "--out", str(tmp_path)])
    assert exit.value.code == 2 and "must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "forecast.json").exists()


def test_gaps_in_the_timestamps_reach_a_liquid_network_as_time_spans(tmp_path, monkeypatch):
    spans = []
    observe = LiquidForecaster.observe
    monkeypatch.setattr(LiquidForecaster, "observe", lambda self, v, dt=None: (spans.append(dt), observe(self, v, dt)))
    (tmp_path / "loads.csv").write_text(sinusoid_csv(120, gap_at=100))
    assert main(["forecast", "--csv", str(tmp_path / "loads.csv"), "--season", "24", "--model", "cfc",
                 "--out", str(tmp_path / "out")]) == 0
    assert spans[100] == 5.0 and {s for i, s in enumerate(spans) if i != 100} <= {None, 1.0}


def test_warmup_and_windows_are_options_in_days_and_an_empty_window_is_refused(tmp_path, capsys):
    (tmp_path / "loads.csv").write_text(sinusoid_csv(120))
    base = ["forecast", "--csv", str(tmp_path / "loads.csv"), "--season", "24", "--model", "persistence",
            "--failure", "30", "--out", str(tmp_path / "out")]
    assert main(base) == 1  # the default warm-up, two days (48 steps), swallows the failure at step 30
    err = capsys.readouterr().err
    assert "the change at step 30 leaves no scored step before it" in err and "--warmup" in err
    assert not (tmp_path / "out").exists()
    assert main([*base, "--warmup", "12h", "--window", "0.5"]) == 0  # 12 steps of warm-up, 12-step windows
    summary = json.loads((tmp_path / "out" / "forecast.json").read_text())
    assert "NaN" not in (tmp_path / "out" / "forecast.json").read_text()
    # persistence's error on a sinusoid: the 12 steps before the failure, and over the run after the 12-step warm-up
    loads = np.loadtxt(tmp_path / "loads.csv", delimiter=",", skiprows=1)[:, 1:]
    errors = loads[1:] - loads[:-1]  # row k: the error at step k + 1
    assert summary["changes"][0]["rmse_before"] == pytest.approx(np.sqrt(np.mean(errors[17:29] ** 2)))
    assert summary["rmse"] == pytest.approx(np.sqrt(np.mean(errors[12:] ** 2)))


SQUARE = "# a square with a diagonal\nA B 10\nB C 10\nC D 10\nD A 10\nA C 10 2\n"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A failure simulated on a small network, written as the CSV files an operator would have."""
    d = tmp_path_factory.mktemp("measured")
    (d / "square.edges").write_text(SQUARE)
    (d / "s.yaml").write_text("topology: square.edges\nsteps: 200\nstep_minutes: 60\nfailures:\n"
                              "  - {link: A-C, at: 150}\n")
    sim = simulate(load_scenario(d / "s.yaml"), seed=0)
    times = np.arange(sim.scenario.steps) * 3600.0
    header = ",".join(["time", *sim.link_names])
    (d / "loads.csv").write_text(header + "\n" + "".join(
        ",".join(map(str, [t, *row])) + "\n" for t, row in zip(times, sim.loads)))
    header = ",".join(["time", *(pair_key(a, b) for a, b in sim.pairs)])
    (d / "od.csv").write_text(header + "\n" + "".join(
        ",".join(map(str, [t, *row])) + "\n" for t, row in zip(times, sim.demands)))
    return d


@pytest.mark.parametrize("model", ["od-cfc", "cfc-failure-aware"])
def test_network_forecasters_read_the_topology_and_od_demands_of_real_data(measured, model, capsys):
    out = measured / model
    args = ["forecast", "--csv", str(measured / "loads.csv"), "--season", "24", "--topology",
            str(measured / "square.edges"), "--routing", "hops", "--failure", "150:C-A", "--model", model,
            "--out", str(out)]
    if model == "od-cfc":
        args += ["--od", str(measured / "od.csv")]
    assert main(args) == 0
    change = json.loads((out / "forecast.json").read_text())["changes"][0]
    assert change["step"] == 150 and change["rmse_after"] < 2 * change["rmse_before"]


@pytest.mark.parametrize("model, missing, option", [
    ("od-cfc", "--topology", "--od"), ("od-cfc", "--od", "--od"), ("cfc-failure-aware", "--topology", "--topology"),
    ("cfc-failure-aware", "150:A-C", "--failure"),
])
def test_network_forecasters_say_what_they_lack(measured, model, missing, option, capsys):
    args = ["forecast", "--csv", str(measured / "loads.csv"), "--season", "24", "--topology",
            str(measured / "square.edges"), "--failure", "150:A-C", "--model", model, "--out", str(measured / "no")]
    if model == "od-cfc":
        args += ["--od", str(measured / "od.csv")]
    at = args.index(missing)
    args = args[:at] + ["150"] + args[at + 1 :] if missing == "150:A-C" else args[:at] + args[at + 2 :]
    assert main(args) == 2 and f"argument {option}:" in capsys.readouterr().err
