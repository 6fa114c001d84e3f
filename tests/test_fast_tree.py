"""The array-based Hoeffding tree against river's, one by one and in batches."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from river import tree
from river.datasets import synth

from stream_moe.models.fast_tree import FastHoeffdingTreeClassifier, predict_learn_trees
from stream_moe.models.rows import RowCoder

PARAMS = dict(grace_period=30, delta=1e-3)


def random_stream(seed: int, n: int, nominal: bool = False, missing: float = 0.0):
    """Small random concept: a few numeric (and nominal) features, a label from a random rule plus noise."""
    rng = random.Random(seed)
    cut = [0.3 + 0.4 * rng.random() for _ in range(3)]
    out = []
    for _ in range(n):
        x = {f"n{i}": rng.random() for i in range(3)}
        if nominal:
            x["colour"] = rng.choice("rgbk")
        if nominal:
            label = 2 * "rgbk".index(x["colour"]) // 2 + int(x["n0"] > cut[0])
        else:
            label = int(x["n0"] > cut[0]) * (1 + int(x["n1"] > cut[1]))
        if rng.random() < 0.1:
            label = rng.randrange(3)
        for key in list(x):
            if rng.random() < missing:
                del x[key]
        out.append((x, label))
    return out


def structure(model) -> list:
    """The splits of a tree as (depth, feature, threshold or None) in depth-first order, for either implementation."""
    out = []
    if isinstance(model, FastHoeffdingTreeClassifier):
        names = {col: name for name, col in model.coder_.columns.items()}

        def walk(node):
            if model.kind_[node] == 0:
                return
            threshold = float(model.threshold_[node]) if model.kind_[node] == 1 else None
            out.append((int(model.depth_[node]), names[int(model.feature_[node])], threshold))
            if model.kind_[node] == 3:  # children in category order, as river sorts them
                category = {code: name for name, code in model.coder_.codes[int(model.feature_[node])].items()}
                children = [child for _, child in sorted((category[c], n) for c, n in model.branches_[node].items())]
            else:
                children = (model.left_[node], model.right_[node])
            for child in children:
                walk(int(child))

        walk(0)
        return out

    def walk_river(node, depth):
        if not hasattr(node, "children"):
            return
        threshold = float(node.threshold) if hasattr(node, "threshold") else None
        out.append((depth, node.feature, threshold))
        mapping = getattr(node, "_mapping", None)
        children = [node.children[i] for _, i in sorted(mapping.items())] if mapping else node.children
        for child in children:
            walk_river(child, depth + 1)

    walk_river(model._root, 0)
    return out


def same_splits(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (d1, f1) == (d2, f2) and (t1 == t2 or (t1 is not None and t2 is not None and abs(t1 - t2) < 1e-9))
        for (d1, f1, t1), (d2, f2, t2) in zip(a, b)
    )


def run_both(data, **params):
    river_tree, fast = tree.HoeffdingTreeClassifier(**params), FastHoeffdingTreeClassifier(**params)
    agree = 0
    for x, y in data:
        agree += river_tree.predict_one(x) == fast.predict_one(x)
        river_tree.learn_one(x, y)
        fast.learn_one(x, y)
    return river_tree, fast, agree / len(data)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("leaf_prediction", ["mc", "nb", "nba"])
def test_same_splits_as_river_on_random_streams(seed, leaf_prediction):
    river_tree, fast, agree = run_both(random_stream(seed, 1500), leaf_prediction=leaf_prediction, **PARAMS)
    assert same_splits(structure(fast), structure(river_tree))
    assert structure(fast), "the stream should be long enough to split"
    assert agree > 0.99


@pytest.mark.parametrize("criterion", ["gini", "info_gain"])
def test_same_splits_with_nominal_and_missing_features(criterion):
    data = random_stream(7, 2000, nominal=True, missing=0.05)
    river_tree, fast, agree = run_both(data, split_criterion=criterion, **PARAMS)
    assert same_splits(structure(fast), structure(river_tree))
    assert any(threshold is None for _, _, threshold in structure(fast)), "a nominal split was expected"
    assert agree > 0.98


def test_a_category_new_to_a_multiway_node_gets_a_branch_of_its_own():
    data = random_stream(7, 3000, nominal=True, missing=0.05)
    rng = random.Random(1)
    for x, _ in data[1500:]:  # categories that appear after the first splits
        if "colour" in x and rng.random() < 0.3:
            x["colour"] = rng.choice("py")
    river_tree, fast, agree = run_both(data, **PARAMS)
    assert same_splits(structure(fast), structure(river_tree))
    assert agree > 0.98
    colour = fast.coder_.columns["colour"]
    late = {fast.coder_.codes[colour][c] for c in "py"}
    assert any(late & set(children) for children in fast.branches_.values()), "a branch for a new category expected"
    coder, X, y = coded(data)
    trees = []
    for size in (1, 37):
        model = FastHoeffdingTreeClassifier(**PARAMS)
        for i in range(0, len(data), size):
            model.predict_learn_many(X[i : i + size], y[i : i + size], nominal=coder.nominal)
        trees.append(model)
    assert trees[0].branches_ == trees[1].branches_ and trees[0].n_nodes_ == trees[1].n_nodes_


def test_binary_nominal_splits():
    data = random_stream(8, 2000, nominal=True)
    river_tree, fast, agree = run_both(data, binary_split=True, **PARAMS)
    assert len(structure(fast)) == len(structure(river_tree))
    assert agree > 0.98


def test_accuracy_parity_on_a_drifting_stream():
    data = list(synth.ConceptDriftStream(synth.SEA(variant=0, seed=1), synth.SEA(variant=2, seed=2), position=1500,
                                         width=200, seed=3).take(3000))
    right = {"river": 0, "fast": 0}
    models = {"river": tree.HoeffdingTreeClassifier(grace_period=50), "fast": FastHoeffdingTreeClassifier(grace_period=50)}
    for x, y in data:
        for name, model in models.items():
            right[name] += model.predict_one(x) == y
            model.learn_one(x, y)
    assert abs(right["river"] - right["fast"]) / len(data) < 0.005


def coded(data):
    coder = RowCoder()
    coder.learn_many([x for x, _ in data])
    return coder, coder.transform_many([x for x, _ in data]), [y for _, y in data]


def test_batches_of_one_are_learn_one():
    data = random_stream(3, 800, nominal=True, missing=0.05)
    coder, X, y = coded(data)
    one, many = FastHoeffdingTreeClassifier(**PARAMS), FastHoeffdingTreeClassifier(**PARAMS)
    for x, label in data:
        one.learn_one(x, label)
    for i in range(len(data)):
        many.learn_many(X[i : i + 1], y[i : i + 1], nominal=coder.nominal)
    np.testing.assert_array_equal(one.predict_proba_many(X), many.predict_proba_many(X))


def test_predict_proba_many_is_predict_proba_one():
    data = random_stream(4, 1000, nominal=True, missing=0.05)
    model = FastHoeffdingTreeClassifier(**PARAMS)
    for x, y in data:
        model.learn_one(x, y)
    proba = model.predict_proba_many(model.coder_.transform_many([x for x, _ in data]))
    order = sorted(range(len(model.classes_)), key=lambda i: model.classes_[i])
    assert proba[:, order].tolist() == [list(model.predict_proba_one(x).values()) for x, _ in data]


@pytest.mark.parametrize("nominal, missing", [(False, 0.0), (False, 0.1), (True, 0.0), (True, 0.1)])
def test_a_batch_is_row_by_row_test_then_train_whatever_its_size(nominal, missing):
    data = random_stream(5, 3000, nominal=nominal, missing=missing)
    coder, X, y = coded(data)
    runs = []
    for size in (1, 37):
        model = FastHoeffdingTreeClassifier(**PARAMS)
        answers = [model.predict_learn_many(X[i : i + size], y[i : i + size], nominal=coder.nominal)
                   for i in range(0, 3000, size)]
        runs.append((model, np.concatenate([np.pad(a, ((0, 0), (0, 5 - a.shape[1]))) for a in answers])))
    (one, answers_one), (batched, answers_batched) = runs
    assert one.n_leaves >= 3, "the tree grew: splits happened inside batches"
    n = one.n_nodes_
    assert batched.n_nodes_ == n and batched.branches_ == one.branches_
    for name in ("kind_", "feature_", "threshold_", "left_", "right_", "stats_"):
        np.testing.assert_array_equal(getattr(batched, name)[:n], getattr(one, name)[:n])
    np.testing.assert_array_equal(answers_batched, answers_one)


def test_trees_learned_together_are_the_trees_learned_alone():
    """More trees than one compiled call takes, of every leaf prediction and split kind, each with its own weights
    and hidden columns, half with labels of their own, some rows unlabelled: one pass for all gives each tree's own
    answers and splits."""
    data = random_stream(9, 1500, nominal=True, missing=0.05)
    coder, X, y = coded(data)
    y = [None if i % 11 == 0 else label for i, label in enumerate(y)]
    settings = [dict(grace_period=20 + 5 * (t % 4), leaf_prediction=("mc", "nb", "nba")[t % 3],
                     binary_split=t % 2 == 0, max_depth=None if t % 5 else 3, delta=1e-3) for t in range(21)]
    rng = np.random.default_rng(0)
    hidden = rng.random((len(settings), X.shape[1])) < 0.2
    together = [FastHoeffdingTreeClassifier(**p) for p in settings]
    alone = [FastHoeffdingTreeClassifier(**p) for p in settings]
    relabelled = [y[1] if label is not None and i % 23 == 0 else label for i, label in enumerate(y)]  # same classes
    for i in range(0, len(X), 32):
        rows = np.repeat(X[None, i : i + 32], len(settings), axis=0)
        rows[np.broadcast_to(hidden[:, None], rows.shape)] = np.nan
        weights = rng.poisson(1.0, (len(settings), len(rows[0])))
        batch = [y[i : i + 32], relabelled[i : i + 32]]  # labels of their own for every other tree
        labels = [batch[t % 2] for t in range(len(together))]
        answers = predict_learn_trees(together, rows, labels, weights, nominal=coder.nominal)
        for t, tree in enumerate(alone):
            expected = tree.predict_learn_many(rows[t], labels[t], weights[t], nominal=coder.nominal)
            np.testing.assert_array_equal(answers[t], expected)
    assert sum(tree.branches_ != {} for tree in together) >= 3, "multiway nominal splits were expected"
    assert min(tree.n_leaves for tree in together) >= 2
    for mine, theirs in zip(together, alone):
        n = theirs.n_nodes_
        assert mine.n_nodes_ == n and mine.branches_ == theirs.branches_
        for name in ("kind_", "feature_", "threshold_", "stats_", "mc_correct_", "nb_correct_", "obs_"):
            np.testing.assert_array_equal(getattr(mine, name)[:n] if name != "obs_" else mine.obs_,
                                          getattr(theirs, name)[:n] if name != "obs_" else theirs.obs_)


def test_memory_limit_keeps_observers_of_the_most_promising_leaves():
    data = list(synth.RandomRBF(seed_model=1, seed_sample=1, n_features=20, n_classes=5).take(6000))
    small = FastHoeffdingTreeClassifier(grace_period=20, delta=0.01, max_size=0.01)
    for x, y in data:
        small.learn_one(x, y)
    observers = small.obs_[:, :1].nbytes + small.cat_[:1].nbytes
    assert small.n_leaves > small.n_active_leaves >= 1
    assert small.n_active_leaves * observers <= small.max_size * 2**20
    assert sum(small.predict_one(x) == y for x, y in data[-500:]) > 100


def test_pickle_round_trip_and_clone():
    data = random_stream(6, 1000, nominal=True, missing=0.05)
    model = FastHoeffdingTreeClassifier(**PARAMS)
    for x, y in data[:700]:
        model.learn_one(x, y)
    restored = pickle.loads(pickle.dumps(model))
    for x, y in data[700:]:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert [model.predict_proba_one(x) for x, _ in data] == [restored.predict_proba_one(x) for x, _ in data]
    assert model.clone().predict_proba_one(data[0][0]) == {}
