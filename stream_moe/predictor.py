"""Any river classifier seen by the event loop as a batch predictor and learner.

The mixtures get whole micro-batches (their `predict_learn_many` and `learn_many` take lists of dicts); other models
(river's, whose `*_many` methods take DataFrames, and the fast tree, whose take coded arrays) are called once per
event, in order. `stream_moe.keyed_models` serves one model per event key through the same functions.
"""

from __future__ import annotations

from river import base

from stream_moe.events import Event, Prediction
from stream_moe.models.mixture import Mixture

Answer = tuple[dict, list[int]]  # class probabilities, experts consulted


def predict_learn(model: base.Classifier, xs: list[dict], ys: list) -> list[Answer]:
    """Test-then-train over a batch in order: each row's answer, then the row learned if its label is not None."""
    if isinstance(model, Mixture):
        return model.predict_learn_many(xs, ys)
    answers = []
    for x, y in zip(xs, ys):
        answers.append((model.predict_proba_one(x), []))
        if y is not None:
            model.learn_one(x, y)
    return answers


def learn(model: base.Classifier, xs: list[dict], ys: list) -> None:
    """Learn labelled rows in order."""
    if isinstance(model, Mixture):
        model.learn_many(xs, ys)
    else:
        for x, y in zip(xs, ys):
            model.learn_one(x, y)


def predictions(events: list[Event], answers: list[Answer]) -> list[Prediction]:
    """The events' predictions from their answers: the most probable class, its probabilities and experts."""
    return [
        Prediction(e.id, max(proba, key=proba.__getitem__) if proba else None, proba, experts, e.key, e.ts)
        for e, (proba, experts) in zip(events, answers)
    ]


class Predictor:
    """Wraps a classifier with its name and version for the predictions it emits.

    `learned` counts the labelled events the model has learned: the loop's and the checkpoints' proof that each was
    learned exactly once.
    """

    def __init__(self, model: base.Classifier, name: str, version: str = "0"):
        self.model = model
        self.name = name
        self.version = version
        self.learned = 0

    def process(self, events: list[Event]) -> list[Prediction]:
        """Test-then-train over the batch in arrival order: each event is predicted, then learned if it has a label."""
        answers = predict_learn(self.model, [e.x for e in events], [e.y for e in events])
        self.learned += sum(e.y is not None for e in events)
        return predictions(events, answers)

    def learn(self, xs: list[dict], ys: list, keys: list | None = None) -> None:
        """Learn labels that arrived after their events were predicted (`keys`, the events' keys, matter to keyed
        predictors only)."""
        learn(self.model, xs, ys)
        self.learned += len(ys)
