"""The estimator contract, checked the same way on every model the command line offers."""

from __future__ import annotations

import copy
import pickle

import pytest
from river.datasets import synth

from stream_moe.models.registry import MODELS, build_model

SMALL = {
    "driftmoe-data": {"n_experts": 4, "top_k": 2, "router_batch": 32},
    "driftmoe-river": {"n_experts": 4, "top_k": 2, "router_batch": 32},
    "driftmoe-task": {"router_batch": 32},
}
SIZES = {"arf": 3, "srp": 3, "levbag": 3}


def make(name):
    return build_model(name, size=SIZES.get(name), seed=7, device="cpu", params=SMALL.get(name, {}))


def stream(n, seed=3):
    return list(synth.LEDDrift(seed=seed, noise_percentage=0.1, irrelevant_features=True).take(n))


@pytest.fixture(scope="module", params=list(MODELS))
def trained(request):
    model = make(request.param)
    for x, y in stream(600):
        model.learn_one(x, y)
    return request.param, model


def test_pickle_round_trip_gives_identical_predictions(trained):
    name, model = trained
    restored = pickle.loads(pickle.dumps(model))
    xs = [x for x, _ in stream(200, seed=11)]
    assert [model.predict_proba_one(x) for x in xs] == [restored.predict_proba_one(x) for x in xs]
    # and they keep learning identically
    more = stream(200, seed=12)
    for x, y in more:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert [model.predict_one(x) for x in xs] == [restored.predict_one(x) for x in xs]


def test_clone_is_untrained_with_same_params(trained):
    name, model = trained
    clone = model.clone()
    assert clone._get_params() == model._get_params()
    assert clone.predict_proba_one(stream(1)[0][0]) == {}


def test_predict_does_not_mutate(trained):
    """Predicting must leave no trace: a copy that never predicted behaves identically from then on."""
    name, model = trained
    untouched = copy.deepcopy(model)
    probe = [x for x, _ in stream(50, seed=21)]
    for x in probe:
        model.predict_proba_one(x)
        model.predict_one(x)
    for x, y in stream(100, seed=23):
        model.learn_one(x, y)
        untouched.learn_one(x, y)
    xs = [x for x, _ in stream(100, seed=22)]
    assert [model.predict_proba_one(x) for x in xs] == [untouched.predict_proba_one(x) for x in xs]


def test_learns_better_than_chance():
    """Every model beats chance (10 classes: 10%) by far on a stationary LED stream."""
    for name in MODELS:
        model = make(name)
        data = stream(1500)
        for x, y in data[:1200]:
            model.learn_one(x, y)
        accuracy = sum(model.predict_one(x) == y for x, y in data[1200:]) / 300
        assert accuracy > 0.4, name


@pytest.mark.parametrize("name", list(MODELS))
def test_untrained_model_predicts_nothing(name):
    model = make(name)
    x = stream(1)[0][0]
    assert model.predict_proba_one(x) == {}
    assert model.predict_one(x) is None
