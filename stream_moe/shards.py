"""Model state by shard: one model per input partition, so that state follows partitions when replicas scale out.

A shard is everything learned from one partition number: the model (in its `Predictor`), the predicted events still
waiting for labels, and the positions consumed (the input partition, and the label topic's partition with the same
number: labels must be keyed like their events so they land on the same partition number). With a checkpoint directory
each shard is saved to its own subdirectory `shard-<n>`, shared by all replicas: a replica saves a shard when its
partition is revoked and restores it when the partition is assigned, so no two replicas learn the same partition and
a handed-over model carries on from the exact positions it consumed.

Offline replay has a single shard (partition 0) and no checkpoints.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import typing

from stream_moe.checkpoint import Checkpointer
from stream_moe.pending import PendingLabels
from stream_moe.predictor import Predictor


@dataclasses.dataclass
class Shard:
    """One partition's model and bookkeeping. `learned_ids`, when kept (an audit option: it grows with the stream),
    lists the id of every event learned, in order: exactly-once learning means no id appears twice."""

    predictor: Predictor
    pending: PendingLabels
    positions: dict[tuple[str, int], int] = dataclasses.field(default_factory=dict)
    learned_ids: list[str] | None = None

    def state(self) -> dict:
        return {
            "model": self.predictor.model,
            "learned": self.predictor.learned,
            "pending": self.pending,
            "positions": dict(self.positions),
            "learned_ids": self.learned_ids,
        }

    def load(self, state: dict) -> None:
        self.predictor.model = state["model"]
        self.predictor.learned = state["learned"]
        self.pending = state["pending"]
        self.positions = dict(state["positions"])
        self.learned_ids = state["learned_ids"]


class Shards:
    """The shards this process owns, by partition number; a shard is made on first use by `make_predictor` (and
    restored from its newest checkpoint, if any)."""

    def __init__(
        self,
        make_predictor: typing.Callable[[], Predictor],
        checkpoint_dir: str | pathlib.Path | None = None,
        keep: int = 3,
        pending: typing.Callable[[], PendingLabels] = PendingLabels,
        audit: bool = False,
    ):
        self.make_predictor = make_predictor
        self.checkpoint_dir = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
        self.keep = keep
        self.make_pending = pending
        self.audit = audit
        self.owned: dict[int, Shard] = {}
        self.saved_at: float | None = None  # time.time() of the last checkpoint

    def __iter__(self) -> typing.Iterator[tuple[int, Shard]]:
        return iter(sorted(self.owned.items()))

    def get(self, n: int) -> Shard:
        shard = self.owned.get(n)
        if shard is None:
            shard = Shard(self.make_predictor(), self.make_pending(), learned_ids=[] if self.audit else None)
            if self.checkpoint_dir is not None and (state := self._checkpointer(n).restore()) is not None:
                shard.load(state)
            self.owned[n] = shard
        return shard

    def save(self, numbers: typing.Iterable[int] | None = None) -> None:
        """Checkpoint the given shards (default: all owned)."""
        if self.checkpoint_dir is None:
            return
        for n in sorted(self.owned) if numbers is None else numbers:
            if n in self.owned:
                self._checkpointer(n).save(self.owned[n].state())
        self.saved_at = time.time()

    def drop(self, numbers: typing.Iterable[int]) -> None:
        for n in numbers:
            self.owned.pop(n, None)

    def positions(self) -> dict[tuple[str, int], int]:
        """Where each (source, partition) owned resumes: the offset after the last record fully processed."""
        return {k: v for _, shard in self for k, v in shard.positions.items()}

    def _checkpointer(self, n: int) -> Checkpointer:
        return Checkpointer(self.checkpoint_dir / f"shard-{n}", self.keep)
