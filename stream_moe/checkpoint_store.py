"""Where shard snapshots are kept: the interface every checkpoint store offers, and the directory store.

A store keeps, per shard number, the snapshots of a shard's pickled state (framed as `stream_moe.checkpoint.frame`
does: format, checksum, the blobs it refers to) and blobs: immutable byte strings named by their sha256, which hold
what a snapshot need not repeat each time (the models of `stream_moe.keyed_models`, spilled or unchanged since they
were put). Its contract, checked on every store by the same tests (tests/test_checkpoint_store.py):

- `put_blob` and then `save` return only once the blobs and the snapshot are durable (fsynced, or acknowledged by
  every in-sync replica), so the caller may then commit the positions it holds; a save interrupted midway is never
  restored, the one before is. After a save, the blobs that no kept snapshot refers to are deleted.
- `restore` gives the newest complete snapshot whose checksum holds and whose blobs are all there, skipping others; it
  raises `IncompatibleCheckpoint` when that snapshot has another format, `DamagedCheckpoints` when snapshots exist and
  none is intact, and returns None when there are none. `get_blob` gives a blob's bytes, checked against its name,
  or raises `MissingBlob`.
- `remove_leftovers` deletes what an interrupted save left, once the shard is this process's alone.

`DirectoryStore` keeps them as checkpoint files under `shard-<n>/` (blobs under `shard-<n>/blobs/`) of a directory
every replica shares;
`stream_moe.kafka_store.KafkaStore` on a compacted Kafka topic, for replicas that share nothing but the brokers.
"""

from __future__ import annotations

import pathlib
import typing

from stream_moe.checkpoint import Checkpointer


class CheckpointStore(typing.Protocol):
    def save(self, shard: int, payload: bytes, refs: typing.Iterable[str] = ()) -> int:
        """Store a pickled state, which refers to the blobs `refs`, as the shard's newest snapshot, durably; return the
        bytes written."""

    def put_blob(self, shard: int, digest: str, data: bytes) -> int:
        """Keep a blob of the shard, durable by the time the next `save` returns; return the bytes written."""

    def get_blob(self, shard: int, digest: str) -> bytes:
        """A blob of the shard, checked against its digest."""

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

    def save(self, shard: int, payload: bytes, refs: typing.Iterable[str] = ()) -> int:
        return self.checkpointer(shard).save_payload(payload, refs).stat().st_size

    def put_blob(self, shard: int, digest: str, data: bytes) -> int:
        return self.checkpointer(shard).put_blob(digest, data)

    def get_blob(self, shard: int, digest: str) -> bytes:
        return self.checkpointer(shard).get_blob(digest)

    def restore(self, shard: int) -> typing.Any | None:
        return self.checkpointer(shard).restore()

    def remove_leftovers(self, shard: int) -> None:
        self.checkpointer(shard).remove_temporary()

    def close(self) -> None:
        pass
