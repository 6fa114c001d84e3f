"""Where shard snapshots are kept: the interface every checkpoint store offers, and the directory store.

A store keeps, per shard number, the snapshots of a shard's pickled state (framed as `stream_moe.checkpoint.frame`
does: format and checksum). Its contract, checked on every store by the same tests (tests/test_checkpoint_store.py):

- `save` returns only once the snapshot is durable (fsynced, or acknowledged by every in-sync replica), so the
  caller may then commit the positions it holds; a save interrupted midway is never restored, the one before is.
- `restore` gives the newest complete snapshot whose checksum holds, skipping damaged ones; it raises
  `IncompatibleCheckpoint` when that snapshot has another format, `DamagedCheckpoints` when snapshots exist and none is
  intact, and returns None when there are none.
- `remove_leftovers` deletes what an interrupted save left, once the shard is this process's alone.

`DirectoryStore` keeps them as checkpoint files under `shard-<n>/` of a directory every replica shares;
`stream_moe.kafka_store.KafkaStore` on a compacted Kafka topic, for replicas that share nothing but the brokers.
"""

from __future__ import annotations

import pathlib
import typing

from stream_moe.checkpoint import Checkpointer


class CheckpointStore(typing.Protocol):
    def save(self, shard: int, payload: bytes) -> int:
        """Store a pickled state as the shard's newest snapshot, durably; return the bytes written."""

    def restore(self, shard: int) -> typing.Any | None:
        """The shard's newest intact state (unpickled), or None when it has no snapshot."""

    def remove_leftovers(self, shard: int) -> None:
        """Delete the remains of interrupted saves of this shard."""

    def close(self) -> None:
        """Release connections."""


class DirectoryStore:
    """Snapshots as checkpoint files in `directory`/shard-<n>, the last `keep` of each shard: a directory on one host
    (or a network filesystem) that every replica mounts."""

    def __init__(self, directory: str | pathlib.Path, keep: int = 3):
        self.directory = pathlib.Path(directory)
        self.keep = keep

    def checkpointer(self, shard: int) -> Checkpointer:
        return Checkpointer(self.directory / f"shard-{shard}", self.keep)

    def save(self, shard: int, payload: bytes) -> int:
        return self.checkpointer(shard).save_payload(payload).stat().st_size

    def restore(self, shard: int) -> typing.Any | None:
        return self.checkpointer(shard).restore()

    def remove_leftovers(self, shard: int) -> None:
        self.checkpointer(shard).remove_temporary()

    def close(self) -> None:
        pass
