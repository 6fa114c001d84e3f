"""One model per event key (customer, device, link, tenant) within a shard, each adapting to its own drift.

A key's model is made on first sight from the configured model. At most `max_live` models stay live; the least
recently used are spilled as compressed pickles and reloaded, by value, when their key comes back, so a spilled model
carries on exactly where it stopped. Live and spilled models are one picklable value (`KeyedModels`): the shard's
checkpoint holds them all, and learning stays exactly-once per key across crashes and hand-overs as it is per shard.

The mixtures' routers live in a `RouterBank` shared by the process: the routers of every model a micro-batch touches
are routed in one call and trained in one pass (`stream_moe.models.router_bank.predict_learn_together`).

>>> from river import tree
>>> keyed = KeyedPredictor(tree.HoeffdingTreeClassifier, "ht", max_live=1)
>>> events = [Event(str(i), {"f": float(i)}, i % 2, key=k) for i, k in enumerate("abab")]
>>> [p.key for p in keyed.process(events)]
['a', 'b', 'a', 'b']
>>> sorted(keyed.model.live), sorted(keyed.model.spilled), keyed.model.spills
(['b'], ['a'], 1)
"""

from __future__ import annotations

import collections
import pickle
import typing
import zlib

from stream_moe.events import Event, Prediction
from stream_moe.models.mixture import Mixture
from stream_moe.models.router_bank import RouterBank, predict_learn_together
from stream_moe.predictor import Answer, learn, predict_learn, predictions


class KeyedModels:
    """The models of a shard by key: `live` ones in order of last use, `spilled` ones as compressed pickles; counts
    of models made, spilled and reloaded."""

    def __init__(self):
        self.live: collections.OrderedDict[str | None, typing.Any] = collections.OrderedDict()
        self.spilled: dict[str | None, bytes] = {}
        self.made = 0
        self.spills = 0
        self.reloads = 0

    def __len__(self) -> int:
        return len(self.live) + len(self.spilled)


class KeyedPredictor:
    """The event loop's predictor for one model per event key (events without a key share one model).

    Parameters
    ----------
    make_model: makes the model of a new key.
    name: the model's name, for predictions and checkpoints.
    max_live: models kept live at most; the least recently used beyond it are spilled.
    bank: the router bank of the mixtures' routers (None: each keeps its own router).
    """

    def __init__(self, make_model: typing.Callable[[], typing.Any], name: str, max_live: int = 1000,
                 bank: RouterBank | None = None, version: str = "0"):
        self.make_model = make_model
        self.name = name
        self.version = version
        self.max_live = max_live
        self.bank = bank
        self.learned = 0
        self._models = KeyedModels()

    @property
    def model(self) -> KeyedModels:
        return self._models

    @model.setter
    def model(self, models: KeyedModels) -> None:
        """Take restored models: the ones they replace leave the bank, the live ones join it."""
        for old in self._models.live.values():
            self._leave_bank(old)
        self._models = models
        for model in models.live.values():
            self._join_bank(model)

    def process(self, events: list[Event]) -> list[Prediction]:
        """Test-then-train, each key's events in arrival order by its model; the mixtures' routers in one call."""
        by_key: dict[str | None, list[int]] = {}
        for i, e in enumerate(events):
            by_key.setdefault(e.key, []).append(i)
        keys = list(by_key)
        models = [self._get(key) for key in keys]
        batches = [([events[i].x for i in by_key[k]], [events[i].y for i in by_key[k]]) for k in keys]
        answers: list[Answer | None] = [None] * len(events)
        mixtures = [j for j, m in enumerate(models) if isinstance(m, Mixture)]
        together = predict_learn_together([models[j] for j in mixtures], [batches[j] for j in mixtures])
        for j, key_answers in zip(mixtures, together):
            for i, answer in zip(by_key[keys[j]], key_answers):
                answers[i] = answer
        for j, model in enumerate(models):
            if not isinstance(model, Mixture):
                for i, answer in zip(by_key[keys[j]], predict_learn(model, *batches[j])):
                    answers[i] = answer
        self.learned += sum(e.y is not None for e in events)
        self._spill_beyond_limit()
        return predictions(events, answers)

    def learn(self, xs: list[dict], ys: list, keys: list | None = None) -> None:
        """Learn labels that arrived after their events, each by the model of its event's key."""
        keys = keys if keys is not None else [None] * len(xs)
        by_key: dict[str | None, list[int]] = {}
        for i, key in enumerate(keys):
            by_key.setdefault(key, []).append(i)
        for key, rows in by_key.items():
            learn(self._get(key), [xs[i] for i in rows], [ys[i] for i in rows])
        self.learned += len(ys)
        self._spill_beyond_limit()

    def _get(self, key: str | None):
        """The live model of `key`, reloaded or made when needed, marked as the most recently used."""
        models = self._models
        model = models.live.get(key)
        if model is not None:
            models.live.move_to_end(key)
            return model
        payload = models.spilled.pop(key, None)
        if payload is not None:
            model = pickle.loads(zlib.decompress(payload))
            models.reloads += 1
        else:
            model = self.make_model()
            models.made += 1
        self._join_bank(model)
        models.live[key] = model
        return model

    def _spill_beyond_limit(self) -> None:
        models = self._models
        while len(models.live) > self.max_live:
            key, model = models.live.popitem(last=False)
            models.spilled[key] = zlib.compress(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), 1)
            self._leave_bank(model)
            models.spills += 1

    def _join_bank(self, model) -> None:
        if self.bank is not None and isinstance(model, Mixture):
            model.use_router_bank(self.bank)

    def _leave_bank(self, model) -> None:
        router = getattr(model, "router_", None)
        if getattr(router, "bank", None) is not None:
            router.bank.remove(router.index)
