"""Any river classifier seen by the event loop as a batch predictor and learner.

The mixtures get whole micro-batches (their `predict_learn_many` and `learn_many` take lists of dicts); other models
(river's, whose `*_many` methods take DataFrames, and the fast tree, whose take coded arrays) are called once per
event, in order.
"""

from __future__ import annotations

from river import base

from stream_moe.events import Event, Prediction
from stream_moe.models.mixture import Mixture


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
        self._batched = isinstance(model, Mixture)

    def process(self, events: list[Event]) -> list[Prediction]:
        """Test-then-train over the batch in arrival order: each event is predicted, then learned if it has a label."""
        if self._batched:
            details = self.model.predict_learn_many([e.x for e in events], [e.y for e in events])
        else:
            details = []
            for e in events:
                details.append((self.model.predict_proba_one(e.x), []))
                if e.y is not None:
                    self.model.learn_one(e.x, e.y)
        self.learned += sum(e.y is not None for e in events)
        return [
            Prediction(e.id, max(proba, key=proba.__getitem__) if proba else None, proba, experts, e.key, e.ts)
            for e, (proba, experts) in zip(events, details)
        ]

    def learn(self, xs: list[dict], ys: list) -> None:
        """Learn labels that arrived after their events were predicted."""
        if self._batched:
            self.model.learn_many(xs, ys)
        else:
            for x, y in zip(xs, ys):
                self.model.learn_one(x, y)
        self.learned += len(ys)
