"""The benchmark suite script: runs, its results file, the table, the pool-size plots, and a rerun that skips."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_suite():
    spec = importlib.util.spec_from_file_location("suite", ROOT / "benchmarks" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_suite_writes_runs_table_and_the_plot_of_a_growing_pool(tmp_path):
    suite = load_suite()
    growing = "driftmoe-data::n_experts=1,top_k=1,expansion=True,drift_detector=None,expansion_cooldown=500"
    task = "driftmoe-task::experts='fast'"
    args = ["--streams", "recur4", "--n", "12000", "--models", f"{growing};hoeffding-tree;{task}", "--out", str(tmp_path)]
    assert suite.main(args) == 0
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["model"] for r in runs] == [growing, "hoeffding-tree", task] and all(r["n"] == 12000 for r in runs)
    assert runs[0]["adaptation"]["expansions"] >= 1
    table = (tmp_path / "table.md").read_text()
    assert table.count("| recur4 |") == 3
    plots = list(tmp_path.glob("pool_size_recur4_*.png"))
    # the tree has no pool, MoE-Task's grew only with the classes: one plot
    assert len(plots) == 1 and plots[0].name.startswith("pool_size_recur4_driftmoe_data") and plots[0].stat().st_size
    assert suite.main(args) == 0  # everything done: nothing runs again
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 3


def test_model_specs_take_literal_parameters_with_commas_inside():
    suite = load_suite()
    spec = "driftmoe-data::top_k=16,leaf_predictions=('nb', 'nba'),drift_detector='adwin(delta=0.01)'"
    assert suite.parse_model(spec) == (
        "driftmoe-data", None, {"top_k": 16, "leaf_predictions": ("nb", "nba"), "drift_detector": "adwin(delta=0.01)"})
    assert suite.parse_model("arf:10") == ("arf", 10, {})
    with pytest.raises(ValueError, match="name=value pairs"):
        suite.parse_model("driftmoe-data::16")
