"""Any river classifier seen by the event loop as a batch predictor and learner.

The mixtures get whole micro-batches (their `predict_learn_many` and `learn_many` take lists of dicts); other models
(river's, whose `*_many` methods take DataFrames, and the fast tree, whose take coded arrays) are called once per
event, in order. `stream_moe.keyed_models` serves one model per event key through the same functions.

A batch is processed in two halves, `begin` and `end`, around the routing of the mixtures' rows: so that the loop
can route the rows of many predictors (the shards of a process, the keys of a shard) whose routers share a
`RouterBank` in one call (`stream_moe.models.router_bank.route`). `process` is both halves with the predictor's
routers alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from river import base

from stream_moe.events import Event, Prediction
from stream_moe.models.mixture import Mixture, Routing
from stream_moe.models.router_bank import RouterBank, route

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


def join_bank(model, bank: RouterBank | None) -> None:
    """Put a mixture's router in `bank` (no-op for other models, or without a bank)."""
    if bank is not None and isinstance(model, Mixture):
        model.use_router_bank(bank)


def leave_bank(model) -> None:
    """Take a mixture's router out of its bank, for good (the model is being replaced or spilled)."""
    router = getattr(model, "router_", None)
    if getattr(router, "bank", None) is not None:
        router.bank.remove(router.index)


@dataclasses.dataclass
class Begun:
    """A batch between `begin` and `end`: its events, the rows its mixtures need routed, and what `end` needs."""

    events: list[Event]
    routings: list[Routing]
    plan: object = None


class Predictor:
    """Wraps a classifier with its name and version for the predictions it emits.

    `learned` counts the labelled events the model has learned: the loop's and the checkpoints' proof that each was
    learned exactly once. With a `bank`, a mixture's router is a member of it (also after a restore).
    """

    def __init__(self, model: base.Classifier, name: str, version: str = "0", bank: RouterBank | None = None):
        self.name = name
        self.version = version
        self.bank = bank
        self.learned = 0
        self._model = None
        self.model = model

    @property
    def model(self) -> base.Classifier:
        return self._model

    @model.setter
    def model(self, model: base.Classifier) -> None:
        if self._model is not None and self.bank is not None:
            leave_bank(self._model)
        self._model = model
        join_bank(model, self.bank)

    def begin(self, events: list[Event]) -> Begun:
        """The first half of `process`: a mixture's rows encoded for its router."""
        if isinstance(self.model, Mixture):
            return Begun(events, [self.model.start_batch([e.x for e in events], [e.y for e in events])])
        return Begun(events, [])

    def end(self, begun: Begun, logits: list[np.ndarray | None]) -> list[Prediction]:
        """The second half of `process`, given the logits of `begun.routings`."""
        events = begun.events
        if begun.routings:
            answers = self.model.finish_batch(begun.routings[0], logits[0])
        else:
            answers = predict_learn(self.model, [e.x for e in events], [e.y for e in events])
        self.learned += sum(e.y is not None for e in events)
        return predictions(events, answers)

    def process(self, events: list[Event]) -> list[Prediction]:
        """Test-then-train over the batch in arrival order: each event is predicted, then learned if it has a label."""
        begun = self.begin(events)
        return self.end(begun, route(begun.routings))

    def learn(self, xs: list[dict], ys: list, keys: list | None = None) -> None:
        """Learn labels that arrived after their events were predicted (`keys`, the events' keys, matter to keyed
        predictors only)."""
        learn(self.model, xs, ys)
        self.learned += len(ys)
