"""Replay through the command line: the same event loop, reports, dead letters, predictions, settings."""

from __future__ import annotations

import json

import pytest

from stream_moe.cli import main
from stream_moe.config import load_settings
from connectors.benchmarks import open_stream
from stream_moe.models.driftmoe_data import DriftMoEData
from stream_moe.models.registry import MODELS, build_model
from stream_moe.predictor import Predictor
from stream_moe.replay import ReplayOptions, replay


def test_replay_a_benchmark_writes_report_history_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["replay", "--stream", "sea_a", "--n", "8000", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    report = json.loads((out / "results.json").read_text(), parse_constant=pytest.fail)  # no NaN: valid JSON
    assert report["n"] == report["records"] == report["learned"] == report["requested_n"] == 8000
    assert report["complete"] is True and report["stopped"] is None
    assert report["accuracy"] > 0.75
    assert report["true_drifts"] == [2000, 4000, 6000]
    detected = report["detected_drifts"]
    assert len(detected) == report["adaptation"]["drifts"] + report["adaptation"]["kept"] > 0
    assert all(0 < d["at"] <= 8000 and 0 <= d["expert"] < 16 for d in detected)
    assert report["params"]["hidden"] == [256, 128] and report["params"]["top_k"] is None  # JSON values, not reprs
    assert report["command"] == "stream-moe " + " ".join(argv)
    assert report["version"] and report["started"].endswith("+00:00")
    assert len(report["expert_usage"]["learned"]) == DriftMoEData().n_experts
    assert (out / "accuracy.png").stat().st_size > 10_000
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 8  # a row per 1,000 instances
    printed = capsys.readouterr().out
    assert "kappa-M" in printed and "instances/s" in printed
    assert f"results: {out / 'results.json'}" in printed


def test_replay_a_file_with_bad_rows(tmp_path, capsys):
    data = tmp_path / "s.csv"
    rows = [f"{i % 7}.5,{'ab'[i % 2]},{int(i % 7 > 3)}" for i in range(200)]
    rows[50] = "oops,a,1"
    rows[120] = "1.0,a"
    data.write_text("f1,f2,label\n" + "\n".join(rows) + "\n")
    out, preds = tmp_path / "out", tmp_path / "preds.jsonl"
    argv = ["replay", "--file", str(data), "--model", "hoeffding-tree", "--out", str(out), "--predictions", str(preds)]
    assert main([*argv, "--no-progress"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["records"] == 200 and report["dead_letters"] == 2 and report["n"] == 198
    letters = [json.loads(line) for line in (out / "dead_letters.jsonl").read_text().splitlines()]
    assert [(d["offset"], d["reason"]) for d in letters] == [
        (52, "line 52: column 'f1': not a number: 'oops'"),
        (122, "line 122: expected 3 values, found 2"),
    ]
    assert letters[0]["raw"] == "oops,a,1"
    predictions = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(predictions) == 198
    assert predictions[-1]["model"]["name"] == "hoeffding-tree"
    assert set(predictions[-1]) == {"id", "key", "y_pred", "proba", "experts", "model", "ts"}
    assert "line 52" in capsys.readouterr().out


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    assert main(["replay", "--stream", "airlines", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("stream-moe replay: error: argument --stream: stream 'airlines' needs")
    assert "STREAM_MOE_DATA" in error


def test_settings_file_then_environment(tmp_path, monkeypatch):
    config = tmp_path / "s.yaml"
    config.write_text("loop:\n  batch_size: 64\nmodel:\n  name: arf\n  size: 5\n")
    settings = load_settings(config)
    assert (settings.loop.batch_size, settings.model.name, settings.model.size) == (64, "arf", 5)
    monkeypatch.setenv("STREAM_MOE_LOOP__BATCH_SIZE", "8")
    assert load_settings(config).loop.batch_size == 8
    toml = tmp_path / "s.toml"
    toml.write_text("[evaluation]\nwindow = 50\n")
    assert load_settings(toml).evaluation.window == 50


def test_unknown_setting_is_refused(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text("lop:\n  batch_size: 64\n")
    with pytest.raises(ValueError, match="lop"):
        load_settings(config)


@pytest.mark.parametrize("argv", [["--help"], ["replay", "--help"], ["streams"]])
def test_help_and_listing(argv, capsys):
    try:
        assert main(argv) == 0
    except SystemExit as exit:
        assert exit.code == 0
    assert "stream" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["replay", "forecast", "serve", "streams"])
def test_every_subcommand_help_shows_its_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    options = {"replay": ["--stream", "--seed", "--batch-size", "--out"], "forecast": ["--scenario", "--seed", "--steps", "--horizon"],
               "serve": ["--http-port", "--checkpoint-dir"], "streams": []}[command]
    for option in options:
        described = text.split(f" {option} ", 1)[1].split(" --", 1)[0]
        assert "default" in described, f"{option}: {described}"


def test_replay_and_forecast_agree_on_the_seed_and_the_run_length():
    from stream_moe.cli import build_parser

    replay_args = build_parser(["replay"]).parse_args(["replay", "--n", "5"])
    forecast_args = build_parser(["forecast"]).parse_args(["forecast", "--n", "5"])
    assert replay_args.n == forecast_args.n == 5
    assert forecast_args.seed == load_settings().model.seed  # replay's default seed, from the same setting
    assert build_parser(["forecast"]).parse_args(["forecast", "--steps", "7"]).n == 7


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("stream-moe 0.")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_runs_through_the_loop(name):
    report = replay(open_stream("sea_a", n=300, seed=1), Predictor(build_model(name, seed=1), name),
                    ReplayOptions(progress=False))
    assert report["n"] == 300 and report["accuracy"] > 0.5
