"""One model per event key (customer, device, link, tenant) within a shard, each adapting to its own drift.

A key's model is made on first sight from the configured model. At most `max_live` models stay live; the least
recently used are spilled as compressed pickles and reloaded, by value, when their key comes back, so a spilled model
carries on exactly where it stopped. With a checkpoint store, each checkpoint first puts in it, as blobs named by their
sha256, the models spilled since the last one and the live ones used since; the checkpoint itself holds their names,
so its size and time follow the models that changed, not all of them, and spilled models leave memory. A name in
a restored checkpoint is reloaded from the store when its key comes back. Without a store (offline replay) spilled
models stay in memory. Live and spilled models are one picklable value (`KeyedModels`): the shard's checkpoint holds
them all, and learning stays exactly-once per key across crashes and hand-overs as it is per shard.

With a `RouterBank` shared by the process, the routers of every model a micro-batch touches are routed in one call
and trained in one pass (see `stream_moe.predictor` for the two halves of a batch).

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
import concurrent.futures
import pickle
import typing
import zlib

from stream_moe.checkpoint import MissingBlob, blob_digest
from stream_moe.events import Event, Prediction
from stream_moe.models.mixture import Mixture
from stream_moe.models.router_bank import RouterBank, route
from stream_moe.predictor import Answer, Begun, join_bank, leave_bank, learn, predict_learn, predictions

PUT_THREADS = 8  # blobs compressed and written at once by a checkpoint (fsyncs wait on the disk, not on the CPU)


class KeyedModels:
    """The models of a shard by key: `live` ones in order of last use; `spilled` ones as compressed pickles, or as the
    name of the blob that holds one in the checkpoint store; `stored`, the blobs that hold live models unchanged
    since; counts of models made, spilled and reloaded.

    Pickled (a snapshot), a live model with a blob is its name, and comes back spilled."""

    def __init__(self):
        self.live: collections.OrderedDict[str | None, typing.Any] = collections.OrderedDict()
        self.spilled: dict[str | None, bytes | str] = {}
        self.stored: dict[str | None, str] = {}
        self.made = 0
        self.spills = 0
        self.reloads = 0

    def __len__(self) -> int:
        return len(self.live) + len(self.spilled)

    def refs(self) -> set[str]:
        """The blobs these models need."""
        return {s for s in self.spilled.values() if isinstance(s, str)} | set(self.stored.values())

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["live"] = collections.OrderedDict((k, m) for k, m in self.live.items() if k not in self.stored)
        state["spilled"] = {**self.spilled, **self.stored}
        state["stored"] = {}
        return state


class KeyedPredictor:
    """The event loop's predictor for one model per event key (events without a key share one model).

    Parameters
    ----------
    make_model: makes the model of a new key.
    name: the model's name, for predictions and checkpoints.
    max_live: models kept live at most; the least recently used beyond it are spilled.
    bank: the router bank of the mixtures' routers (None: each keeps its own router).

    `blobs` reads a blob of the checkpoint store by name (set by `stream_moe.shards.Shards` when it has a store).
    """

    def __init__(self, make_model: typing.Callable[[], typing.Any], name: str, max_live: int = 1000,
                 bank: RouterBank | None = None, version: str = "0"):
        self.make_model = make_model
        self.name = name
        self.version = version
        self.max_live = max_live
        self.bank = bank
        self.learned = 0
        self.blobs: typing.Callable[[str], bytes] | None = None
        self._models = KeyedModels()

    @property
    def model(self) -> KeyedModels:
        return self._models

    @model.setter
    def model(self, models: KeyedModels) -> None:
        """Take restored models: the ones they replace leave the bank, the live ones join it."""
        for old in self._models.live.values():
            leave_bank(old)
        self._models = models
        for model in models.live.values():
            join_bank(model, self.bank)

    def begin(self, events: list[Event]) -> Begun:
        """The first half of `process`: the events grouped by key, each key's live model, and the mixtures' rows
        encoded for their routers."""
        by_key: dict[str | None, list[int]] = {}
        for i, e in enumerate(events):
            by_key.setdefault(e.key, []).append(i)
        groups = [(self._get(key), rows) for key, rows in by_key.items()]
        routings = [model.start_batch([events[i].x for i in rows], [events[i].y for i in rows])
                    for model, rows in groups if isinstance(model, Mixture)]
        return Begun(events, routings, groups)

    def end(self, begun: Begun, logits: list) -> list[Prediction]:
        """The second half of `process`, given the logits of `begun.routings`: each key's events test-then-train."""
        events = begun.events
        answers: list[Answer | None] = [None] * len(events)
        routed = iter(zip(begun.routings, logits))
        for model, rows in begun.plan:
            if isinstance(model, Mixture):
                key_answers = model.finish_batch(*next(routed))
            else:
                key_answers = predict_learn(model, [events[i].x for i in rows], [events[i].y for i in rows])
            for i, answer in zip(rows, key_answers):
                answers[i] = answer
        self.learned += sum(e.y is not None for e in events)
        self._spill_beyond_limit()
        return predictions(events, answers)

    def process(self, events: list[Event]) -> list[Prediction]:
        """Test-then-train, each key's events in arrival order by its model; the mixtures' routers in one call."""
        begun = self.begin(events)
        return self.end(begun, route(begun.routings))

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

    def persist(self, put: typing.Callable[[str, bytes], int]) -> tuple[set[str], int]:
        """Put into the checkpoint store (`put(name, data)`, which returns the bytes written) the spilled models still
        in memory and the live ones used since they were last put; return the blobs the models need and the bytes
        written. The snapshot taken next names them instead of holding them. Compressing, hashing and writing run on
        `PUT_THREADS` threads (zlib, hashlib and file writes release the GIL); pickling stays on this one."""
        models = self._models
        spilled = [(key, s) for key, s in models.spilled.items() if isinstance(s, bytes)]
        dirty = [(key, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
                 for key, model in models.live.items() if key not in models.stored]
        with concurrent.futures.ThreadPoolExecutor(PUT_THREADS) as pool:
            named = list(pool.map(lambda item: named_blob(item[1]), spilled))
            packed = list(pool.map(lambda item: named_blob(zlib.compress(item[1], 1)), dirty))
            blobs = dict(named + packed)  # one write per name, though two models may pickle alike
            written = sum(pool.map(lambda item: put(*item), blobs.items()))
        for (key, _), (name, _) in zip(spilled, named):
            models.spilled[key] = name
        for (key, _), (name, _) in zip(dirty, packed):
            models.stored[key] = name
        return models.refs(), written

    def _get(self, key: str | None):
        """The live model of `key`, reloaded or made when needed, marked as the most recently used (and as changed
        since its blob, if it has one)."""
        models = self._models
        model = models.live.get(key)
        if model is not None:
            models.live.move_to_end(key)
            models.stored.pop(key, None)
            return model
        spilled = models.spilled.pop(key, None)
        if spilled is not None:
            model = pickle.loads(zlib.decompress(spilled if isinstance(spilled, bytes) else self._read(spilled)))
            models.reloads += 1
        else:
            model = self.make_model()
            models.made += 1
        join_bank(model, self.bank)
        models.live[key] = model
        return model

    def _read(self, name: str) -> bytes:
        if self.blobs is None:
            raise MissingBlob(f"model blob {name} is in a checkpoint store, and this predictor has none")
        return self.blobs(name)

    def _spill_beyond_limit(self) -> None:
        models = self._models
        while len(models.live) > self.max_live:
            key, model = models.live.popitem(last=False)
            stored = models.stored.pop(key, None)
            models.spilled[key] = stored if stored is not None else compressed(model)
            leave_bank(model)
            models.spills += 1


def named_blob(data: bytes) -> tuple[str, bytes]:
    return blob_digest(data), data


def compressed(model) -> bytes:
    """A model as it is spilled: its pickle, compressed (zlib's fastest level)."""
    return zlib.compress(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), 1)
