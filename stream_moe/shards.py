"""Model state by shard: one model per input partition, so that state follows partitions when replicas scale out.

A shard is everything learned from one partition number: the model (in its `Predictor`), its join tables (predicted
events waiting for labels, labels waiting for events, recent ids: `stream_moe.joins`) and the positions consumed (the
input partition, and the label topic's partition with the same number: labels must be keyed like their events so
they land on the same partition number). With a checkpoint store (`stream_moe.checkpoint_store`: a directory every
replica shares, or a Kafka topic) each shard is saved on its own: a replica saves a shard when its partition is revoked
and restores it when the partition is assigned, so no two replicas learn the same partition and a handed-over model
carries on from the exact positions it consumed.

A shard never lets a record stop it: when the model raises on a micro-batch, the shard's state is restored to what it
was before the batch (its last snapshot, then the batches since, again), and the batch is bisected until the record
that makes the model raise is found and dead-lettered (`model_error`); every other record is processed as usual.

Offline replay has a single shard (partition 0) and no checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pathlib
import pickle
import time
import typing

from stream_moe.checkpoint import DamagedCheckpoints
from stream_moe.checkpoint_store import CheckpointStore, DirectoryStore
from stream_moe.events import DeadLetter, Event, Prediction, Record
from stream_moe.feature_kinds import FeatureKinds
from stream_moe.joins import EarlyLabel, JoinLimits, Joins, Waiting
from stream_moe.keyed_models import KeyedPredictor
from stream_moe.models.router_bank import route
from stream_moe.predictor import Begun, Predictor

log = logging.getLogger(__name__)

Item = tuple[Event | None, Record]  # a record and its event (None: the record was refused by the decoder)
# Dead letters of labels that waited for their event and never joined it (not of the record being processed).
LABEL_DROPS = frozenset({"label_expired", "label_evicted", "label_superseded"})


class WrongModel(RuntimeError):
    """A checkpoint holds another model than the one configured."""


@dataclasses.dataclass
class Outcome:
    """What processing records gave: predictions, (label, prediction) pairs to score, dead letters, and counts of
    events learned, of label records joined to their event at once (`joined`) and of those kept waiting for it
    (`early`)."""

    predictions: list[Prediction] = dataclasses.field(default_factory=list)
    scored: list[tuple] = dataclasses.field(default_factory=list)
    letters: list[DeadLetter] = dataclasses.field(default_factory=list)
    learned: int = 0
    joined: int = 0
    early: int = 0

    def add(self, other: "Outcome") -> None:
        self.predictions += other.predictions
        self.scored += other.scored
        self.letters += other.letters
        self.learned += other.learned
        self.joined += other.joined
        self.early += other.early


@dataclasses.dataclass
class Step:
    """A micro-batch of a shard between `Shard.begin` and `Shard.end`."""

    items: list[Item]
    outcome: Outcome
    begun: Begun
    joined_x: list
    joined_y: list
    joined_keys: list


class Shard:
    """One partition's model and bookkeeping. `learned_ids`, when kept (an audit option: it grows with the stream),
    lists the id of every event learned, in order: exactly-once learning means no id appears twice.

    `journal_limit` bounds the records processed since the last snapshot of the state (taken at each checkpoint, and
    whenever that many records were processed): the cost of restoring the state when the model raises."""

    def __init__(self, predictor: Predictor, joins: Joins, learned_ids: list[str] | None = None,
                 journal_limit: int = 20_000):
        self.predictor = predictor
        self.joins = joins
        self.kinds = FeatureKinds()
        self.positions: dict[tuple[str, int], int] = {}
        self.learned_ids = learned_ids
        self.journal_limit = journal_limit
        self._snapshot: bytes | None = None
        self._journal: list[tuple[list[Item], float]] = []
        self._journaled = 0

    def state(self) -> dict:
        return {
            "model_name": self.predictor.name,
            "model": self.predictor.model,
            "learned": self.predictor.learned,
            "joins": self.joins,
            "kinds": self.kinds,
            "positions": dict(self.positions),
            "learned_ids": self.learned_ids,
        }

    def load(self, state: dict) -> None:
        if state["model_name"] != self.predictor.name:
            raise WrongModel(f"the checkpoint holds model {state['model_name']!r}, not the configured "
                             f"{self.predictor.name!r}: serve {state['model_name']!r}, or use another checkpoint_dir")
        self.predictor.model = state["model"]
        self.predictor.learned = state["learned"]
        self.joins = state["joins"]
        self.kinds = state["kinds"]
        self.positions = dict(state["positions"])
        self.learned_ids = state["learned_ids"]

    # snapshots and recovery
    def snapshot(self) -> bytes:
        """Take the current state as the point to restore from; return its pickle (what a checkpoint saves)."""
        self._snapshot = pickle.dumps(self.state(), protocol=pickle.HIGHEST_PROTOCOL)
        self._journal, self._journaled = [], 0
        return self._snapshot

    def restore(self) -> None:
        """Back to the state after the last batch that succeeded: the snapshot, then the batches since, again."""
        self.load(pickle.loads(self._snapshot))
        for items, wall in self._journal:
            self.process(items, wall)

    def process_guarded(self, items: list[Item], wall: float) -> Outcome:
        """`process`, except that a batch on which the model raises leaves no trace of the attempt: the state is
        restored and the batch bisected, down to the records that fail alone, which become `model_error` dead
        letters."""
        self.snapshot_if_due()
        try:
            outcome = self.process(items, wall)
        except Exception as err:
            self.restore()
            self.snapshot()  # bisecting restores from here, without running the journal again
            if len(items) > 1:
                half = len(items) // 2
                outcome = self.process_guarded(items[:half], wall)
                outcome.add(self.process_guarded(items[half:], wall))
                return outcome
            record = items[0][1]
            log.warning("model error; record dead-lettered", extra={"error": repr(err), "offset": record.position.offset})
            items = [(None, record)]  # the record is consumed without reaching the model
            outcome = self.process(items, wall)
            outcome.letters.append(DeadLetter(record.value, f"the model raised on this event: {err!r}",
                                              record.position, "model_error"))
        self.journal(items, wall)
        return outcome

    def snapshot_if_due(self) -> None:
        """Take a snapshot when there is none yet or the journal since the last one is full."""
        if self._snapshot is None or self._journaled >= self.journal_limit:
            self.snapshot()

    def journal(self, items: list[Item], wall: float) -> None:
        """Note a batch processed since the snapshot, for a restore to process it again."""
        self._journal.append((items, wall))
        self._journaled += len(items)

    def process(self, items: list[Item], wall: float) -> Outcome:
        """Join labels and events, predict and learn the events test-then-train in arrival order (a batch model
        routes them in one call), learn the labels of waiting events, then advance the positions past every record:
        `begin`, the routing of its rows by the shard's routers alone, then `end`."""
        step = self.begin(items, wall)
        return self.end(step, route(step.begun.routings))

    def begin(self, items: list[Item], wall: float) -> Step:
        """The first half of `process`: the records joined and refused, and the events' rows encoded for routing.

        A record may be refused here: an event time more than `max_ts_ahead_s` ahead of `wall` (`bad_ts`), a feature
        value of another kind than the feature's first (`wrong_type`, see `FeatureKinds`), an event id seen recently
        (`duplicate_id`), a label for an event already labelled or expired (`unknown_id`), a second
        label waiting for the same event (`duplicate_label`). Labels that waited for their event and never joined it
        become dead letters too (`LABEL_DROPS`)."""
        j, out = self.joins, Outcome()
        events: list[Event] = []
        unlabelled: dict[str, int] = {}  # this batch's events without a label yet: index in `events`
        joined_x: list = []
        joined_y: list = []
        joined_keys: list = []
        for event, record in items:
            if event is None:
                continue
            if not j.accepts(event.ts, wall):
                out.letters.append(refused(record, f"event time {event.ts!r} is more than {j.max_ts_ahead_s:g} s "
                                           "ahead of processing time", "bad_ts"))
            elif event.x is not None:
                if (why := self.kinds.refusal(event.x)) is not None:
                    out.letters.append(refused(record, why, "wrong_type"))
                    continue
                if not j.recent.add(event.id):
                    out.letters.append(refused(record, f"event id {event.id!r} was seen already", "duplicate_id"))
                    continue
                early = j.early.pop(event.id)
                if early is not None:
                    if event.y is None:
                        event = Event(event.id, event.x, early.y, event.key, event.ts)
                    else:
                        out.letters.append(label_letter(event.id, early, "label_superseded",
                                                        "the event came with a label of its own"))
                if event.y is None:
                    unlabelled[event.id] = len(events)
                events.append(event)
            elif (i := unlabelled.pop(event.id, None)) is not None:
                e = events[i]
                events[i] = Event(e.id, e.x, event.y, e.key, e.ts)
                out.joined += 1
            elif (waiting := j.pending.pop(event.id)) is not None:
                out.joined += 1
                joined_x.append(waiting.x)
                joined_y.append(event.y)
                joined_keys.append(waiting.key)
                out.scored.append((event.y, waiting.y_pred))
                if self.learned_ids is not None:
                    self.learned_ids.append(event.id)
            elif event.id in j.recent:
                out.letters.append(refused(record, f"label for id {event.id!r}, whose event was labelled already or "
                                           "waited longer than the pending limits", "unknown_id"))
            elif event.id in j.early:
                out.letters.append(refused(record, f"a label for id {event.id!r} is waiting already",
                                           "duplicate_label"))
            else:
                out.early += 1
                for id, dropped in j.early.add(event.id, EarlyLabel(event.y, record.position), j.time_of(event.ts)):
                    out.letters.append(label_letter(id, dropped, "label_evicted", "its event did not come before "
                                                    f"{j.early.max_size} more labels were waiting"))

        return Step(items, out, self.predictor.begin(events), joined_x, joined_y, joined_keys)

    def end(self, step: Step, logits: list) -> Outcome:
        """The second half of `process`, given the logits of `step.begun.routings`."""
        j, out, events = self.joins, step.outcome, step.begun.events
        out.predictions = self.predictor.end(step.begun, logits) if events else []
        for e, p in zip(events, out.predictions):
            if e.y is None:
                j.pending.add(e.id, Waiting(e.x, p.y_pred, e.key), j.time_of(e.ts))
            else:
                out.scored.append((e.y, p.y_pred))
                out.learned += 1
                if self.learned_ids is not None:
                    self.learned_ids.append(e.id)
        if step.joined_x:
            self.predictor.learn(step.joined_x, step.joined_y, step.joined_keys)
            out.learned += len(step.joined_x)

        j.pending.expire(j.now)
        for id, dropped in j.early.expire(j.now):
            out.letters.append(label_letter(id, dropped, "label_expired", f"its event did not come within "
                                            f"{j.early.max_age_s:g} s of event time"))
        positions = self.positions
        for _, record in step.items:
            p = record.position
            positions[(p.source, p.partition)] = p.offset + 1
        return out


def refused(record: Record, reason: str, kind: str) -> DeadLetter:
    return DeadLetter(record.value, reason, record.position, kind)


def label_letter(id: str, label: EarlyLabel, kind: str, why: str) -> DeadLetter:
    """The dead letter of a label that never joined its event (its raw text rebuilt from the id and label)."""
    return DeadLetter(json.dumps({"id": id, "y": label.y}), f"label for id {id!r} dropped: {why}", label.position, kind)


class Shards:
    """The shards this process owns, by partition number; a shard is made on first use by `make_predictor` (and
    restored from its newest checkpoint in `store`, if any: by default a `DirectoryStore` of `checkpoint_dir`, when
    given).

    A shard whose checkpoints are all damaged is not started afresh, which would silently forget what it learned:
    `get` raises `DamagedCheckpoints`, unless `allow_fresh_start`. `route_together`: the shards' routers share a
    router bank, so `process` routes every shard's rows in one call."""

    def __init__(
        self,
        make_predictor: typing.Callable[[], Predictor],
        checkpoint_dir: str | pathlib.Path | None = None,
        keep: int = 3,
        limits: JoinLimits | None = None,
        audit: bool = False,
        allow_fresh_start: bool = False,
        store: CheckpointStore | None = None,
        route_together: bool = False,
    ):
        self.make_predictor = make_predictor
        self.route_together = route_together
        if store is None and checkpoint_dir is not None:
            store = DirectoryStore(checkpoint_dir, keep)
        self.store = store
        # the directory to check for writing at start, when the store is one
        self.checkpoint_dir: pathlib.Path | None = getattr(store, "directory", None)
        self.limits = limits or JoinLimits()
        self.audit = audit
        self.allow_fresh_start = allow_fresh_start
        self.owned: dict[int, Shard] = {}
        self.saved_at: float | None = None  # time.time() of the last checkpoint
        self.save_seconds = 0.0  # how long the last checkpoint took
        self.saved_bytes = 0  # and its size, over the shards saved

    def __iter__(self) -> typing.Iterator[tuple[int, Shard]]:
        return iter(sorted(self.owned.items()))

    def get(self, n: int) -> Shard:
        shard = self.owned.get(n)
        if shard is None:
            shard = Shard(self.make_predictor(), Joins(self.limits), learned_ids=[] if self.audit else None)
            if self.store is not None:
                if isinstance(shard.predictor, KeyedPredictor):
                    shard.predictor.blobs = functools.partial(self.store.get_blob, n)
                try:
                    state = self.store.restore(n)
                except DamagedCheckpoints:
                    if not self.allow_fresh_start:
                        raise
                    log.warning("every checkpoint of shard %d is damaged; starting it afresh", n)
                    state = None
                self.store.remove_leftovers(n)
                if state is not None:
                    shard.load(state)
            self.owned[n] = shard
        return shard

    def process(self, batches: dict[int, list[Item]], wall: float) -> list[Outcome]:
        """Each shard's micro-batch (`Shard.process_guarded`). With `route_together` (the shards' routers share a
        bank) every shard's rows are routed in one call per bank between the halves of their batches; if anything
        raises, the shards that began are restored and each batch is processed on its own, guarded."""
        shards = [self.get(n) for n in batches]
        if not self.route_together or len(shards) < 2:
            return [shard.process_guarded(items, wall) for shard, items in zip(shards, batches.values())]
        steps: list[Step] = []
        try:
            for shard, items in zip(shards, batches.values()):
                shard.snapshot_if_due()
                steps.append(shard.begin(items, wall))
            logits = iter(route([r for step in steps for r in step.begun.routings]))
            outcomes = [shard.end(step, [next(logits) for _ in step.begun.routings])
                        for shard, step in zip(shards, steps)]
        except Exception:
            for shard in shards[: len(steps) + 1]:
                shard.restore()
            return [shard.process_guarded(items, wall) for shard, items in zip(shards, batches.values())]
        for shard, items in zip(shards, batches.values()):
            shard.journal(items, wall)
        return outcomes

    def save(self, numbers: typing.Iterable[int] | None = None) -> None:
        """Checkpoint the given shards (default: all owned) in the store, each durably before the next; each checkpoint
        is also the shard's new snapshot, put after the blobs it refers to. `save_seconds` and `saved_bytes` measure them, as
        written to the store (blobs included)."""
        if self.store is None:
            return
        started, size = time.perf_counter(), 0
        for n in sorted(self.owned) if numbers is None else numbers:
            if n in self.owned:
                predictor, refs = self.owned[n].predictor, set()
                if isinstance(predictor, KeyedPredictor):  # its models go to the store as blobs, named by the snapshot
                    refs, written = predictor.persist(functools.partial(self.store.put_blob, n))
                    size += written
                size += self.store.save(n, self.owned[n].snapshot(), refs)
        self.saved_at = time.time()
        self.save_seconds, self.saved_bytes = time.perf_counter() - started, size

    def drop(self, numbers: typing.Iterable[int]) -> None:
        for n in numbers:
            self.owned.pop(n, None)

    def positions(self) -> dict[tuple[str, int], int]:
        """Where each (source, partition) owned resumes: the offset after the last record fully processed."""
        return {k: v for _, shard in self for k, v in shard.positions.items()}
