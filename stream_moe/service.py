"""The daemon: the event loop on a live source, with checkpoints, offset commits, rebalances, metrics and shutdown.

Delivery: every `checkpoint_every_s` (and on revoke and on shutdown) the sinks are flushed, the shards are
checkpointed with the positions they consumed, and only then are those positions committed. After a crash a shard is
restored from its newest valid checkpoint and its partitions are sought to the positions it holds: records after them
are predicted again (predictions are at-least-once), and each labelled event is learned exactly once.

The checkpoint directory is checked for writing at start, so that a mistake there shows at once rather than at the
first checkpoint.
"""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import threading
import time
import typing

from connectors.kafka import KafkaSource
from stream_moe.loop import EventLoop, LoopStats
from stream_moe.metrics import ServiceMetrics
from stream_moe.shards import Shards

log = logging.getLogger("stream_moe.service")


def readable(positions: dict[tuple[str, int], int]) -> dict[str, int]:
    """Positions keyed `topic:partition`, for logs."""
    return {f"{source}:{partition}": offset for (source, partition), offset in positions.items()}


class CheckpointDirUnusable(RuntimeError):
    """The checkpoint directory cannot be created or written."""


def check_writable(directory: str | pathlib.Path) -> None:
    """Create `directory` if needed and write a file in it, or raise `CheckpointDirUnusable` saying why."""
    directory = pathlib.Path(directory)
    probe = directory / f".write-test-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointDirUnusable(f"checkpoint_dir {str(directory)!r} is not writable: {err.strerror or err}") from None


class Service:
    """Runs `loop` until its source ends or a stop signal; `source` is the loop's source when it is Kafka (partitions
    come and go), None for a finite embedded source (one shard, partition 0, sought at start)."""

    def __init__(
        self,
        loop: EventLoop,
        metrics: ServiceMetrics,
        checkpoint_every_s: float,
        shutdown_deadline_s: float,
        stall_after_s: float,
        kafka: KafkaSource | None = None,
    ):
        self.loop = loop
        self.shards: Shards = loop.shards
        self.metrics = metrics
        self.kafka = kafka
        self.checkpoint_every_s = checkpoint_every_s
        self.shutdown_deadline_s = shutdown_deadline_s
        self.stall_after_s = stall_after_s
        self.flushables = [s for s in (*loop.sinks, *loop.dead_letters) if hasattr(s, "flush")]
        self.started = False
        self.stopping = False
        self.failed = False
        self._deadline: threading.Timer | None = None
        self._heartbeat = time.monotonic()
        self._last_checkpoint = time.monotonic()
        if kafka is not None:
            kafka.on_assign = self._assigned
            kafka.on_revoke = self._revoked

    # health, as /healthz and /readyz see it
    def healthy(self) -> bool:
        return time.monotonic() - self._heartbeat < self.stall_after_s

    def ready(self) -> bool:
        return self.started and not self.stopping and (self.kafka is None or bool(self.shards.owned))

    def run(self) -> LoopStats:
        if self.shards.checkpoint_dir is not None:
            check_writable(self.shards.checkpoint_dir)
        previous = {
            sig: signal.signal(sig, lambda signum, frame: self.stop(signal.Signals(signum).name))
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        if self.kafka is None:
            shard = self.shards.get(0)
            self.loop.source.seek(shard.positions.get((self.loop.source.name, 0), 0))
        self.started = True
        log.info("serving", extra={"source": self.loop.source.name, "restored": readable(self.shards.positions())})
        try:
            stats = self.loop.run(on_batch=self._after_batch)
            self.checkpoint()
        except BaseException:
            self.failed = True  # no checkpoint from here on: the last one is where a restart resumes
            raise
        finally:
            self.loop.source.close()
            for sink in (*self.loop.sinks, *self.loop.dead_letters):
                sink.close()
            if self.shards.store is not None:
                self.shards.store.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._deadline is not None:
                self._deadline.cancel()
        log.info("stopped", extra={"records": stats.records, "predictions": stats.predictions,
                                   "learned": stats.learned, "dead_letters": stats.dead_letters})
        return stats

    def stop(self, why: str = "stop") -> None:
        """Drain the batch in hand, checkpoint, commit and return from `run`; exit hard if that overruns the
        deadline (the last checkpoint stays valid, so nothing is lost, only re-predicted)."""
        if self.stopping:
            return
        self.stopping = True
        log.info("draining", extra={"signal": why, "deadline_s": self.shutdown_deadline_s})
        self.loop.stop()
        self._deadline = threading.Timer(self.shutdown_deadline_s, self._overrun)
        self._deadline.daemon = True
        self._deadline.start()

    def _overrun(self) -> None:
        log.error("shutdown deadline passed; exiting without a final checkpoint")
        os._exit(1)

    def checkpoint(self, partitions: typing.Iterable[int] | None = None, commit: bool = True) -> dict:
        """Flush the sinks, checkpoint the shards (default: all owned), then commit their positions (unless `commit`
        is false: the caller commits them); return the positions. The store's save returns only once the checkpoint
        is durable (a file fsynced, or a Kafka manifest acknowledged by every in-sync replica): a failed save raises
        here, and nothing is committed."""
        for sink in self.flushables:
            sink.flush()
        numbers = sorted(self.shards.owned) if partitions is None else list(partitions)
        self.shards.save(numbers)
        self._last_checkpoint = time.monotonic()
        positions = {k: v for n in numbers if n in self.shards.owned for k, v in self.shards.owned[n].positions.items()}
        if self.kafka is not None and commit:
            try:
                self.kafka.commit(positions)
            except Exception as err:  # e.g. a rebalance in progress; the checkpoint alone decides where we resume
                log.warning("offset commit failed", extra={"error": repr(err)})
        return positions

    def _after_batch(self, stats: LoopStats) -> None:
        self._heartbeat = time.monotonic()
        evaluator = self.loop.evaluator
        accuracy = evaluator.windowed()["window_accuracy"] if evaluator is not None and evaluator.n else None
        lost = sum(getattr(sink, "lost", 0) for sink in self.loop.dead_letters)
        self.metrics.update(stats, self.shards, accuracy, self.kafka.lag() if self.kafka is not None else {}, lost)
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s:
            self.checkpoint()

    def _assigned(self, partitions: list[int]) -> None:
        for n in partitions:
            shard = self.shards.get(n)
            if shard.positions:
                self.kafka.seek(shard.positions)
        log.info("partitions assigned", extra={"partitions": partitions, "resume_at": readable(self.shards.positions())})

    def _revoked(self, partitions: list[int]) -> dict:
        """Checkpoint the revoked shards and let them go; the source commits the positions returned. After a failure
        nothing is checkpointed: the next owner resumes from the last checkpoint."""
        if self.failed:
            self.shards.drop(partitions)
            return {}
        positions = self.checkpoint(partitions, commit=False)
        self.shards.drop(partitions)
        log.info("partitions revoked", extra={"partitions": partitions})
        return positions
