"""The benchmark suite script: runs and their provenance in a results file, side-by-side rounds, the pool-size plots,
a rerun that skips what is done, and the ARFF copy of a stream that MOA's learners read."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_suite():
    spec = importlib.util.spec_from_file_location("suite", ROOT / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs_of(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_suite_writes_runs_with_provenance_and_the_plot_of_a_growing_pool(tmp_path):
    suite = load_suite()
    growing = "driftmoe-data::n_experts=1,top_k=1,expansion=True,drift_detector=None,expansion_cooldown=500"
    task = "driftmoe-task::experts='fast'"
    out = tmp_path / "runs.jsonl"
    args = ["--streams", "recur4", "--n", "12000", "--models", f"{growing};hoeffding-tree;{task}", "--out", str(out),
            "--plots", str(tmp_path / "plots")]
    assert suite.main(args) == 0
    runs = runs_of(out)
    assert [r["model"] for r in runs] == [growing, "hoeffding-tree", task] and all(r["n"] == 12000 for r in runs)
    assert runs[0]["adaptation"]["expansions"] >= 1
    for run in runs:
        assert run["command"].startswith("python benchmarks/suite.py --streams recur4")
        assert run["machine"]["cores"] >= 1 and len(run["load_before"]) == 3 and run["date"]
    plots = list((tmp_path / "plots").glob("pool_size_recur4_*.png"))
    # the tree has no pool, MoE-Task's grew only with the classes: one plot
    assert len(plots) == 1 and plots[0].name.startswith("pool_size_recur4_driftmoe_data") and plots[0].stat().st_size
    assert suite.main(args) == 0  # everything done: nothing runs again
    assert len(runs_of(out)) == 3


def test_rounds_alternate_and_keep_every_rounds_speed(tmp_path, monkeypatch):
    suite = load_suite()
    order = []

    def fake_run(stream, spec, n, seed, data_dirs, batch_size, moa_python=None, arff=None):
        order.append((spec, n))
        return {"stream": stream, "model": spec, "seed": seed, "n_requested": n, "n": n, "accuracy": 0.5,
                "kappa_m": 0.1, "seconds": 1.0, "instances_per_s": {"a": 100.0, "b": 10.0}[spec] * (1 + len(order))}

    monkeypatch.setattr(suite, "run_one", fake_run)
    out = tmp_path / "speed.jsonl"
    assert suite.main(["--streams", "sea_a", "--n", "5000", "--models", "a;b", "--rounds", "3", "--out", str(out)]) == 0
    assert order == [("a", 1000), ("b", 1000), ("a", 5000), ("b", 5000), ("b", 5000), ("a", 5000), ("a", 5000),
                     ("b", 5000)]  # warm-ups, then the order reversed every other round
    a, b = runs_of(out)
    assert [r["instances_per_s"] for r in a["rounds"]] == [400.0, 700.0, 800.0]
    assert a["instances_per_s"] == 700.0 and b["rounds_requested"] == 3 and len(b["rounds"]) == 3


def test_a_stream_becomes_an_arff_file_of_the_same_instances(tmp_path):
    suite = load_suite()
    path = tmp_path / "sea.arff"
    assert suite.write_arff("sea_a", 50, 1, [], path) == 50
    lines = path.read_text().splitlines()
    assert lines[:5] == ["@relation sea_a", "@attribute f0 numeric", "@attribute f1 numeric", "@attribute f2 numeric",
                         "@attribute class {'False','True'}"]
    assert len(lines) == 6 + 50 and lines[6].count(",") == 3
    suite.write_arff("mixed_a", 20, 1, [], path)  # booleans are nominal, on both sides
    assert path.read_text().splitlines()[1:4] == ["@attribute f0 {'False','True'}", "@attribute f1 {'False','True'}",
                                                  "@attribute f2 numeric"]


def test_with_a_moa_learner_every_model_reads_the_same_arff_file(tmp_path, monkeypatch):
    """Our model replays the ARFF copy that MOA's learner gets: the same instances, parsed in both timed loops."""
    suite = load_suite()
    seen = []

    def fake_moa(spec, arff, seed, moa_python):
        seen.append(arff.read_text())
        return {"n": 300, "accuracy": 0.5, "kappa": 0.0, "kappa_m": 0.0, "kappa_t": 0.0, "seconds": 1.0,
                "instances_per_s": 300.0}

    monkeypatch.setattr(suite, "run_moa", fake_moa)
    out = tmp_path / "runs.jsonl"
    assert suite.main(["--streams", "sea_a", "--n", "300", "--models", "hoeffding-tree,moa-srp:10",
                       "--out", str(out)]) == 0
    ours, moa = runs_of(out)
    assert ours["read_from"] == moa["read_from"] == "arff" and ours["n"] == 300
    assert seen[0].count("\n") == 300 + 6  # relation, 3 attributes, class, @data
    direct = suite.run_one("sea_a", "hoeffding-tree", 300, 1, [], 32)  # from the generator: the same numbers
    assert "read_from" not in direct and direct["accuracy"] == ours["accuracy"]


@pytest.mark.skipif(not os.environ.get("MOA_PYTHON") or not shutil.which("java"),
                    reason="MOA's learners need MOA_PYTHON (an interpreter with capymoa) and a Java runtime")
def test_moa_learners_run_on_the_arff_copy(tmp_path):
    suite = load_suite()
    path = tmp_path / "stagger.arff"
    suite.write_arff("stagger_a", 400, 1, [], path)
    try:
        report = suite.run_moa("moa-srp:3", path, 1, os.environ["MOA_PYTHON"])
    except subprocess.CalledProcessError as err:
        pytest.fail(err.stderr[-2000:])
    assert report["n"] == 400 and 0.5 < report["accuracy"] <= 1 and report["seconds"] > 0


def test_moa_streams_are_the_driftmoe_streams_in_moa_terms_on_our_drift_schedule():
    suite = load_suite()
    assert suite.moa_stream_cli("sea_a", 1_000_000, 1) == (
        "ConceptDriftStream -s (generators.SEAGenerator -f 1 -p 10 -i 1) -d (ConceptDriftStream -s "
        "(generators.SEAGenerator -f 2 -p 10 -i 1) -d (ConceptDriftStream -s (generators.SEAGenerator -f 4 -p 10 -i 1) "
        "-d (generators.SEAGenerator -f 1 -p 10 -i 1) -p 250000 -w 50 -r 1) -p 250000 -w 50 -r 1) -p 250000 -w 50 -r 1")
    led = suite.moa_stream_cli("led_g", 20_000, 3)
    assert all(f"-d {d} " in led for d in (1, 3, 5, 7)) and led.count("-p 5000 -w 1000 -r 3") == 3
    assert suite.moa_stream_cli("rbf_m", 20_000, 1).startswith("generators.RandomRBFGeneratorDrift -s 0.0001 ")
    with pytest.raises(ValueError, match="moa:sea_a"):
        suite.moa_stream_cli("elec", 100, 1)


def test_a_moa_stream_needs_the_moa_interpreter_and_a_known_name(tmp_path, monkeypatch):
    suite = load_suite()
    monkeypatch.delenv("MOA_PYTHON", raising=False)
    out = tmp_path / "runs.jsonl"
    with pytest.raises(SystemExit, match="moa:sea_a needs --moa-python"):
        suite.main(["--streams", "sea_a,moa:sea_a", "--models", "hoeffding-tree", "--out", str(out)])
    with pytest.raises(SystemExit, match="no MOA definition of 'agrawal_a'"):
        suite.main(["--streams", "moa:agrawal_a", "--moa-python", "python", "--out", str(out)])
    assert not out.exists()  # nothing ran


@pytest.mark.skipif(not os.environ.get("MOA_PYTHON") or not shutil.which("java"),
                    reason="MOA's streams need MOA_PYTHON (an interpreter with capymoa) and a Java runtime")
def test_every_model_replays_the_stream_that_moa_wrote(tmp_path, monkeypatch):
    suite = load_suite()
    monkeypatch.setattr(suite, "MOA_STREAM_CACHE", tmp_path / "cache")
    out = tmp_path / "runs.jsonl"
    try:
        assert suite.main(["--streams", "moa:sea_g", "--n", "600", "--models", "hoeffding-tree;moa-ht",
                           "--out", str(out)]) == 0
    except subprocess.CalledProcessError as err:
        pytest.fail(err.stderr[-2000:])
    ours, moa = runs_of(out)
    assert ours["n"] == moa["n"] == 600 and ours["read_from"] == moa["read_from"] == "arff"
    assert ours["moa_stream"] == moa["moa_stream"] == suite.moa_stream_cli("sea_g", 600, 1)
    (arff,) = (tmp_path / "cache").glob("sea_g-600-1-*.arff")
    rows = arff.read_text().split("@data")[1].split()
    assert len(rows) == 600 and rows[0].endswith(("groupA", "groupB"))  # MOA's class names, no trailing comma
    assert 0.6 < ours["accuracy"] < 1 and 0.6 < moa["accuracy"] < 1


def test_model_specs_take_literal_parameters_with_commas_inside():
    suite = load_suite()
    spec = "driftmoe-data::top_k=16,leaf_predictions=('nb', 'nba'),drift_detector='adwin(delta=0.01)'"
    assert suite.parse_model(spec) == (
        "driftmoe-data", None, {"top_k": 16, "leaf_predictions": ("nb", "nba"), "drift_detector": "adwin(delta=0.01)"})
    assert suite.parse_model("arf:10") == ("arf", 10, {})
    with pytest.raises(ValueError, match="name=value pairs"):
        suite.parse_model("driftmoe-data::16")
