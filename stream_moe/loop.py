"""The event loop shared by the daemon and offline replay: source -> decode -> predict -> sinks -> learn.

It works in micro-batches: decode the batch (records refused go to the dead-letter sinks with their reason and
position), then hand each shard's records (see `stream_moe.shards`: one model per input partition) to its model at
once, which predicts and learns them test-then-train in arrival order (each event is predicted by a model that has
learned every earlier labelled event; batch models route the whole batch in one call). Labels are joined to their
events whichever comes first. Then the predictions are emitted and the labelled ones scored.

No record stops the loop: whatever a decoder raises makes a dead letter, a model that raises on a record has its
state restored and the record dead-lettered (`Shard.process_guarded`), and a dead letter that cannot be written is
logged and counted. Every record read becomes a prediction, a dead letter, or a label joined to its event (or waiting
for it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import typing

from connectors.source import Decoder, Source
from stream_moe.events import DeadLetter, DecodeError, Prediction, Record
from stream_moe.evaluation import PrequentialEvaluator
from stream_moe.shards import Item, Shards

log = logging.getLogger(__name__)


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
    labels_joined: int = 0  # label records joined to their event on arrival
    labels_early: int = 0  # label records that arrived before their event (joined when it comes, or dead-lettered)
    last_batch_seconds: float = 0.0
    dead_letters: int = 0
    dead_letters_lost: int = 0  # dead letters that no sink took (logged)
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
        started = time.perf_counter()
        by_shard: dict[int, list[Item]] = {}
        letters: list[DeadLetter] = []
        decode = self.decoder.decode
        for record in records:
            event = None
            try:
                event = decode(record)
            except DecodeError as err:
                letters.append(DeadLetter(record.value, str(err), record.position, err.kind))
            except Exception as err:  # a decoder must refuse, never fail: whatever it raises refuses the record
                letters.append(DeadLetter(record.value, f"the decoder failed: {err!r}", record.position, "decoder_error"))
            by_shard.setdefault(record.position.partition, []).append((event, record))

        predictions, scored = [], []
        t0 = time.perf_counter()
        wall = time.time()
        for outcome in self.shards.process(by_shard, wall):
            predictions += outcome.predictions
            scored += outcome.scored
            letters += outcome.letters
            self.stats.learned += outcome.learned
            self.stats.labels_joined += outcome.joined
            self.stats.labels_early += outcome.early
        self.stats.model_seconds += time.perf_counter() - t0

        for sink in self.sinks:
            sink.write(predictions)
        if letters:
            self.stats.dead_letters += len(letters)
            self._write_dead_letters(letters)
        if self.evaluator is not None and scored:
            self.evaluator.update_many([y for y, _ in scored], [y_pred for _, y_pred in scored])

        self.stats.records += len(records)
        self.stats.predictions += len(predictions)
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.perf_counter() - started

    def _write_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Hand the letters to every dead-letter sink; a sink that fails loses them, which is logged and counted,
        and serving goes on."""
        for sink in self.dead_letters:
            try:
                sink.write(letters)
            except Exception as err:
                self.stats.dead_letters_lost += len(letters)
                log.error("dead letters lost", extra={"sink": type(sink).__name__, "count": len(letters),
                                                      "error": repr(err)})
