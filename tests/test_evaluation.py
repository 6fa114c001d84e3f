"""The prequential evaluator agrees with river's metrics and with the definitions of kappa-M and kappa-T."""

from __future__ import annotations

import collections
import json
import random

import pytest
from river import metrics, utils

from stream_moe.evaluation import PrequentialEvaluator, write_json


def random_run(n=3000, seed=0, classes=("a", "b", "c")):
    rng = random.Random(seed)
    ys, preds = [], []
    y = "a"
    for _ in range(n):
        if rng.random() < 0.1:
            y = rng.choice(classes)  # labels persist, so the no-change baseline is strong
        ys.append(y)
        preds.append(y if rng.random() < 0.7 else rng.choice([*classes, None]))
    return ys, preds


def test_accuracy_and_kappa_agree_with_river():
    ys, preds = random_run()
    ev = PrequentialEvaluator(window=500)
    acc, kappa = metrics.Accuracy(), metrics.CohenKappa()
    for y, p in zip(ys, preds):
        ev.update(y, p)
        acc.update(y, p)
        kappa.update(y, p)
    assert ev.cumulative()["accuracy"] == pytest.approx(acc.get())
    assert ev.cumulative()["kappa"] == pytest.approx(kappa.get())


def test_windowed_metrics_agree_with_river_rolling():
    ys, preds = random_run(seed=1)
    ev = PrequentialEvaluator(window=250)
    acc = utils.Rolling(metrics.Accuracy, window_size=250)
    kappa = utils.Rolling(metrics.CohenKappa, window_size=250)
    for y, p in zip(ys, preds):
        ev.update(y, p)
        acc.update(y, p)
        kappa.update(y, p)
        assert ev.windowed()["window_accuracy"] == pytest.approx(acc.get())
    assert ev.windowed()["window_kappa"] == pytest.approx(kappa.get())


def test_kappa_m_and_kappa_t_follow_their_definitions():
    """kappa-M against the prequential majority-class classifier, kappa-T against the no-change classifier."""
    ys, preds = random_run(seed=2)
    ev = PrequentialEvaluator()
    ev.update_many(ys, preds)
    counts, last = collections.Counter(), None
    majority_ok = no_change_ok = 0
    for y in ys:
        if counts:
            top = max(counts.values())
            majority = next(c for c in counts if counts[c] == top)  # first seen among the most frequent
            majority_ok += majority == y
        no_change_ok += last == y
        counts[y] += 1
        last = y
    p0 = sum(y == p for y, p in zip(ys, preds)) / len(ys)
    pm, pt = majority_ok / len(ys), no_change_ok / len(ys)
    assert ev.cumulative()["kappa_m"] == pytest.approx((p0 - pm) / (1 - pm))
    assert ev.cumulative()["kappa_t"] == pytest.approx((p0 - pt) / (1 - pt))
    assert ev.cumulative()["kappa_t"] < ev.cumulative()["kappa_m"]  # persistent labels: no-change is the harder bar


def test_history_is_recorded_every_n():
    ev = PrequentialEvaluator(window=10, record_every=100)
    ev.update_many(*random_run(n=1000, seed=3))
    assert [h["n"] for h in ev.history] == list(range(100, 1001, 100))
    assert {"accuracy", "kappa_m", "window_accuracy", "window_kappa_t"} <= set(ev.history[-1])


def test_undefined_kappa_is_zero():
    """A single class predicted perfectly: chance agreement is 1, kappa undefined and reported as 0 (as river)."""
    ev = PrequentialEvaluator()
    ev.update_many(["a"] * 10, ["a"] * 10)
    assert ev.cumulative()["kappa"] == 0.0
    assert ev.cumulative()["kappa_m"] == 1.0  # the majority baseline missed the first instance


def test_results_are_valid_json_without_nan(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"kappa": float("nan"), "speed": float("inf"), "sizes": (1, 2), "deep": {"x": [float("-inf")]}})
    assert json.loads(path.read_text(), parse_constant=pytest.fail) == {
        "kappa": None, "speed": None, "sizes": [1, 2], "deep": {"x": [None]}}
