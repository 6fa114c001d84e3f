"""The event loop shared by the daemon and offline replay: source -> decode -> predict -> sinks -> learn.

It works in micro-batches: decode the batch (bad records go to the dead-letter sinks with their reason and position),
then hand each shard's events (see `stream_moe.shards`: one model per input partition) to its model at once, which
predicts and learns them test-then-train in arrival order (each event is predicted by a model that has learned every
earlier labelled event; batch models route the whole batch in one call). Events without a label wait in the shard's
pending table; a later label-only event with the same id is joined to them and learned. Then the predictions are
emitted and the labelled ones scored.
"""

from __future__ import annotations

import dataclasses
import time
import typing

from connectors.source import Decoder, Source
from stream_moe.events import DeadLetter, DecodeError, Event, Position, Prediction, Record
from stream_moe.evaluation import PrequentialEvaluator
from stream_moe.shards import Shards


class PredictionSink(typing.Protocol):
    def write(self, predictions: list[Prediction]) -> None: ...

    def close(self) -> None: ...


class DeadLetterSink(typing.Protocol):
    def write(self, letters: list[DeadLetter]) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class LoopStats:
    """Counts of what went through the loop, and where the time went."""

    records: int = 0
    predictions: int = 0
    learned: int = 0
    labels_joined: int = 0
    dead_letters: int = 0
    batches: int = 0
    model_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.records / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def model_per_second(self) -> float:
        return self.records / self.model_seconds if self.model_seconds else 0.0


class EventLoop:
    """Drives one source through the shards' models into the sinks. Each shard keeps, per (source, partition), the
    offset after the last record fully processed (predicted and, if labelled, learned): where a restart resumes."""

    def __init__(
        self,
        source: Source,
        decoder: Decoder,
        shards: Shards,
        sinks: typing.Sequence[PredictionSink] = (),
        dead_letters: typing.Sequence[DeadLetterSink] = (),
        evaluator: PrequentialEvaluator | None = None,
        batch_size: int = 32,
        max_wait_s: float = 0.05,
    ):
        self.source = source
        self.decoder = decoder
        self.shards = shards
        self.sinks = list(sinks)
        self.dead_letters = list(dead_letters)
        self.evaluator = evaluator
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.stats = LoopStats()
        self._stopping = False

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run` (safe to call from a signal handler)."""
        self._stopping = True

    def run(self, on_batch: typing.Callable[[LoopStats], None] | None = None) -> LoopStats:
        """Process batches until the source is exhausted or `stop` is called (a live source never ends by itself)."""
        start = time.perf_counter()
        try:
            for records in self.source.batches(self.batch_size, self.max_wait_s):
                self.process(records)
                self.stats.wall_seconds = time.perf_counter() - start
                if on_batch is not None:
                    on_batch(self.stats)
                if self._stopping:
                    break
        finally:
            self.stats.wall_seconds = time.perf_counter() - start
        return self.stats

    def process(self, records: list[Record]) -> None:
        by_shard: dict[int, list[tuple[Event, Position]]] = {}
        letters = []
        for record in records:
            try:
                by_shard.setdefault(record.position.partition, []).append((self.decoder.decode(record), record.position))
            except DecodeError as err:
                letters.append(DeadLetter(record.value, str(err), record.position, err.kind))

        predictions, scored = [], []
        t0 = time.perf_counter()
        for n, items in by_shard.items():
            predictions += self._process_shard(n, items, scored, letters)
        self.stats.model_seconds += time.perf_counter() - t0

        for sink in self.sinks:
            sink.write(predictions)
        if letters:
            self.stats.dead_letters += len(letters)
            for sink in self.dead_letters:
                sink.write(letters)
        if self.evaluator is not None and scored:
            self.evaluator.update_many([y for y, _ in scored], [y_pred for _, y_pred in scored])

        self.stats.records += len(records)
        self.stats.predictions += len(predictions)
        self.stats.batches += 1
        for record in records:
            position = record.position
            self.shards.get(position.partition).positions[(position.source, position.partition)] = position.offset + 1

    def _process_shard(self, n: int, items, scored: list, letters: list) -> list[Prediction]:
        """Predict and learn one shard's events: those with features test-then-train, then the labels that join
        waiting events (a label for an id that is not waiting is a dead letter)."""
        shard = self.shards.get(n)
        events = [e for e, _ in items if e.x is not None]
        predictions = shard.predictor.process(events) if events else []
        for e, p in zip(events, predictions):
            if e.y is None:
                shard.pending.add(e.id, e.x, p.y_pred, e.ts)
            else:
                scored.append((e.y, p.y_pred))
                if shard.learned_ids is not None:
                    shard.learned_ids.append(e.id)
        self.stats.learned += len(events) - sum(e.y is None for e in events)

        xs, ys = [], []
        for e, position in items:
            if e.x is not None:
                continue
            waiting = shard.pending.pop(e.id)
            if waiting is None:
                letters.append(DeadLetter(f"label {e.y!r} for id {e.id!r}", f"label for unknown id {e.id!r} (never "
                               "seen, already labelled, or expired)", position, "unknown_id"))
                continue
            xs.append(waiting.x)
            ys.append(e.y)
            scored.append((e.y, waiting.y_pred))
            if shard.learned_ids is not None:
                shard.learned_ids.append(e.id)
        if xs:
            shard.predictor.learn(xs, ys)
            self.stats.learned += len(xs)
            self.stats.labels_joined += len(xs)
        return predictions
