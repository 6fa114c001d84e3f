"""DriftMoE with fast (array-based, batched) experts: every pool feature works, and accuracy matches river experts."""

from __future__ import annotations

import numpy as np
import pytest
from river.datasets import synth

from stream_moe.models.driftmoe_data import DriftMoEData
from stream_moe.models.driftmoe_task import DriftMoETask
from stream_moe.models.experts import ExpertPool, default_expert
from stream_moe.models.fast_tree import FastHoeffdingTreeClassifier


def chunks(data, batch):
    for i in range(0, len(data), batch):
        chunk = data[i : i + batch]
        yield [x for x, _ in chunk], [y for _, y in chunk]


def prequential(model, data, batch=32):
    right = 0
    for xs, ys in chunks(data, batch):
        details = model.predict_learn_many(xs, ys)
        right += sum(bool(p) and max(p, key=p.get) == y for (p, _), y in zip(details, ys))
    return right / len(data)


def drifting(n, seed=1):
    return list(synth.ConceptDriftStream(synth.SEA(variant=0, seed=seed, noise=0.1), synth.SEA(variant=3, seed=seed + 1,
                noise=0.1), position=n // 2, width=n // 20, seed=seed).take(n))


def test_fast_experts_match_river_experts_on_a_drifting_stream():
    data = drifting(6000)
    accuracy = {kind: prequential(DriftMoEData(n_experts=6, experts=kind, device="cpu", seed=1), data)
                for kind in ("river", "fast")}
    assert abs(accuracy["river"] - accuracy["fast"]) < 0.01, accuracy


def test_fast_experts_learn_the_rows_the_router_ranks_top_k():
    model = DriftMoEData(n_experts=5, top_k=2, explore=0.0, router_batch=16, experts="fast", drift_detector=None,
                         warning_detector=None, device="cpu", seed=0)
    batches = list(chunks(drifting(800), 20))
    for xs, ys in batches[:10]:
        model.learn_many(xs, ys)
    for xs, ys in batches[10:]:
        top_k = np.argsort(-model.router_.scores(model.encoder_.transform_many(xs)), axis=1, kind="stable")[:, :2]
        before = model.usage_.copy()
        model.learn_many(xs, ys)
        assert (model.usage_ - before == np.bincount(top_k.ravel(), minlength=5)).all()


def test_batch_of_one_is_learn_one_with_fast_experts():
    data = drifting(600)
    a = DriftMoEData(n_experts=4, top_k=2, router_batch=16, experts="fast", device="cpu", seed=3)
    b = DriftMoEData(n_experts=4, top_k=2, router_batch=16, experts="fast", device="cpu", seed=3)
    for x, y in data:
        a.learn_one(x, y)
        b.predict_learn_many([x], [y])
    xs = [x for x, _ in data[:100]]
    assert a.predict_proba_many(xs) == b.predict_proba_many(xs)


def test_each_row_of_a_batch_is_answered_by_experts_that_learned_the_rows_before_it():
    # One expert that never splits (so batching changes nothing in its structure): a batch must give exactly the
    # answers of the same rows one by one, i.e. test-then-train inside the batch.
    kw = dict(n_experts=1, top_k=1, expert=FastHoeffdingTreeClassifier(grace_period=100_000), experts="fast",
              drift_detector=None, bagging_lambda=0.0, explore=0.0, device="cpu", seed=0)
    batched, one_by_one = DriftMoEData(**kw), DriftMoEData(**kw)
    data = drifting(300)
    for xs, ys in chunks(data[:100], 25):
        batched.learn_many(xs, ys)
    for x, y in data[:100]:
        one_by_one.learn_one(x, y)
    xs, ys = [x for x, _ in data[100:300]], [y for _, y in data[100:300]]
    answers = [p for p, _ in batched.predict_learn_many(xs, ys)]
    expected = []
    for x, y in zip(xs, ys):
        expected.append(one_by_one.predict_proba_one(x))
        one_by_one.learn_one(x, y)
    assert answers == expected
    assert answers != batched.predict_proba_many(xs[:1]) * len(xs), "the answers change along the batch"
    assert not any(batched.pool_.staged)


def test_bagging_and_subspaces_with_fast_experts():
    data = [({f"f{i}": float(v) for i, v in enumerate(row)}, int(row[0] > 0))
            for row in np.random.default_rng(0).normal(size=(5, 6))]  # too few to split: the root keeps its observers
    pool = ExpertPool(default_expert("fast"), n_experts=2, bagging_lambda=6.0, subspace=0.5, seed=1)
    pool.learn(0, [x for x, _ in data], [y for _, y in data])
    pool.flush()
    seen = pool.experts[0].obs_[0].sum(axis=(0, 2)) > 0
    assert seen.sum() == 3, "an expert learns only the features of its subspace"
    assert pool.experts[0].stats_[0].sum() > 3 * len(data), "Poisson(6) weights"
    assert pool.usage_.tolist() == [5, 0]


def test_replace_and_remove_with_fast_experts():
    pool = ExpertPool(default_expert("fast"), n_experts=3, drift_detector="ddm")
    xs, ys = [{"a": float(i % 7)} for i in range(100)], [True] * 100  # one class: no split, the root counts all
    pool.learn(1, xs, ys)
    pool.replace(1)  # the staged rows went to the old expert, which is gone: the slot is fresh
    assert not any(pool.staged) and pool.usage_[1] == 0
    assert pool.experts[1].predict_proba_many(np.zeros((1, 1))).size == 0
    pool.learn(2, xs, ys)
    pool.remove(0)
    pool.flush()
    assert len(pool) == 2 and pool.experts[1].stats_[0].sum() == 100


@pytest.mark.parametrize("experts", ["river", "fast"])
def test_task_variant_with_fast_experts(experts):
    data = drifting(3000)
    accuracy = prequential(DriftMoETask(experts=experts, device="cpu", seed=1), data)
    assert accuracy > 0.8
