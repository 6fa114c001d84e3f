"""The event loop shared by the daemon and offline replay: source -> decode -> predict -> sinks -> learn.

It works in micro-batches: decode the batch (bad records go to the dead-letter sink with their reason and position),
then hand it to the model at once, which predicts and learns it test-then-train in arrival order (each event is
predicted by a model that has learned every earlier labelled event; batch models route the whole batch in one call),
then emit the predictions and score the labelled ones.
"""

from __future__ import annotations

import dataclasses
import time
import typing

from connectors.source import Decoder, Source
from stream_moe.events import DeadLetter, DecodeError, Position, Prediction
from stream_moe.evaluation import PrequentialEvaluator
from stream_moe.predictor import Predictor


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
    """Drives one source through one model into the sinks; `positions` holds, per (source, partition), the offset
    after the last record fully processed (predicted and, if labelled, learned): where a restart resumes."""

    def __init__(
        self,
        source: Source,
        decoder: Decoder,
        predictor: Predictor,
        sinks: typing.Sequence[PredictionSink] = (),
        dead_letters: DeadLetterSink | None = None,
        evaluator: PrequentialEvaluator | None = None,
        batch_size: int = 32,
        max_wait_s: float = 0.05,
    ):
        self.source = source
        self.decoder = decoder
        self.predictor = predictor
        self.sinks = list(sinks)
        self.dead_letters = dead_letters
        self.evaluator = evaluator
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.stats = LoopStats()
        self.positions: dict[tuple[str, int], int] = {}

    def run(self, on_batch: typing.Callable[[LoopStats], None] | None = None) -> LoopStats:
        """Process batches until the source is exhausted (a live source: until stopped from `on_batch`)."""
        start = time.perf_counter()
        try:
            for records in self.source.batches(self.batch_size, self.max_wait_s):
                self.process(records)
                self.stats.wall_seconds = time.perf_counter() - start
                if on_batch is not None:
                    on_batch(self.stats)
        finally:
            self.stats.wall_seconds = time.perf_counter() - start
        return self.stats

    def process(self, records) -> None:
        events, letters = [], []
        for record in records:
            try:
                events.append(self.decoder.decode(record))
            except DecodeError as err:
                letters.append(DeadLetter(record.value, str(err), record.position))
        if letters:
            self.stats.dead_letters += len(letters)
            if self.dead_letters is not None:
                self.dead_letters.write(letters)

        t0 = time.perf_counter()
        predictions = self.predictor.process(events)
        self.stats.model_seconds += time.perf_counter() - t0
        for sink in self.sinks:
            sink.write(predictions)
        labelled = [i for i, e in enumerate(events) if e.y is not None]
        if self.evaluator is not None and labelled:
            self.evaluator.update_many([events[i].y for i in labelled], [predictions[i].y_pred for i in labelled])

        self.stats.records += len(records)
        self.stats.predictions += len(predictions)
        self.stats.learned += len(labelled)
        self.stats.batches += 1
        for record in records:
            self._advance(record.position)

    def _advance(self, position: Position) -> None:
        self.positions[(position.source, position.partition)] = position.offset + 1
