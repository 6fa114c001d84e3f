"""Atomic, checksummed checkpoints of a model's state and the source positions it has consumed.

A checkpoint is one pickle after a header line (`frame`: the checkpoint format and the sha256 of the pickle; `unframe`
checks it). In a directory (`Checkpointer`) it is written to a temporary file, fsynced, renamed into place (and the
directory fsynced), so a crash leaves either the previous checkpoint or the new one, never half of one; a file damaged
later (disk, a bad copy) is recognised and skipped, and the newest valid one is restored. The last `keep` checkpoints
are kept. A checkpoint of another format (written by a version of stream-moe whose models pickle differently) is not
restored: `restore` raises `IncompatibleCheckpoint`, leaving the files as they are, rather than resume a model that
would fail later or start over and lose what was learned; when every checkpoint is damaged it raises
`DamagedCheckpoints`, for the same reason. Other stores (`stream_moe.checkpoint_store`) keep the same bytes and raise
the same errors. Temporary files of a writer killed
mid-write are removed by `remove_temporary` (call it only while no other process writes to the directory).

>>> import tempfile
>>> ckpt = Checkpointer(tempfile.mkdtemp(), keep=2)
>>> paths = [ckpt.save({"learned": n}) for n in range(3)]
>>> ckpt.restore(), len(ckpt.paths())
({'learned': 2}, 2)
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import pickle
import typing

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "checkpoint-", ".pkl"
MAGIC = b"stream-moe-checkpoint"
# The layout of the states this code writes. Raise it when a model's pickled state changes so that an older one
# would not run (2: fast trees' multiway branch tables, descriptors' cached normal; 3: expert pools' prototypes and
# per-slot kinds; 4: the router's flat parameters, Adam moments and numpy dropout generator; 5: drift monitors with the
# compiled ADWIN; 6: the compiled ADWIN's `rises_only` in its state; 7: the shard's join tables (early labels, recent
# ids, watermark) and the model's name); files without it are format 1.
FORMAT = 7


class IncompatibleCheckpoint(RuntimeError):
    """The newest valid checkpoint was written in another format than this code reads."""


class DamagedCheckpoints(RuntimeError):
    """Checkpoints exist, and none of them can be read."""


def incompatible(where: str, form: int, remedy: str) -> IncompatibleCheckpoint:
    return IncompatibleCheckpoint(f"{where} has checkpoint format {form}; this version of stream-moe reads format "
                                  f"{FORMAT}. {remedy}")


def damaged(where: str, remedy: str) -> DamagedCheckpoints:
    return DamagedCheckpoints(f"every checkpoint {where} is damaged; refusing to start this shard afresh, which "
                              f"would forget what it learned. {remedy}, or allow a fresh start (serve.allow_fresh_start).")


def frame(payload: bytes) -> bytes:
    """The header line that precedes a pickled state: the magic, the format this code writes, the payload's sha256."""
    return b"%s %d %s\n" % (MAGIC, FORMAT, hashlib.sha256(payload).hexdigest().encode())


def unframe(data: bytes) -> tuple[int, memoryview]:
    """The format and the payload of a header line and its payload (without copying the payload); `ValueError` when
    they are damaged. A header of the digest alone is format 1."""
    end = data.index(b"\n")
    fields = bytes(data[:end]).split(b" ")
    form, digest = (int(fields[1]), fields[2]) if fields[0] == MAGIC else (1, fields[0])
    payload = memoryview(data)[end + 1:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError("checksum mismatch")
    return form, payload


class Checkpointer:
    """Saves and restores states (any picklable value) in `directory`, numbered in order."""

    def __init__(self, directory: str | pathlib.Path, keep: int = 3):
        self.directory = pathlib.Path(directory)
        self.keep = max(1, keep)

    def paths(self) -> list[pathlib.Path]:
        """The checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: int(p.name[len(PREFIX):-len(SUFFIX)]))

    def save(self, state: typing.Any) -> pathlib.Path:
        return self.save_payload(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    def save_payload(self, payload: bytes) -> pathlib.Path:
        """Save a state already pickled."""
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = self.paths()
        number = int(existing[-1].name[len(PREFIX):-len(SUFFIX)]) + 1 if existing else 0
        path = self.directory / f"{PREFIX}{number:012d}{SUFFIX}"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(frame(payload))
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def remove_temporary(self) -> None:
        """Delete the temporary files that a writer killed mid-write left behind."""
        if self.directory.is_dir():
            for tmp in self.directory.glob(f".{PREFIX}*.tmp"):
                log.info("removing %s, left by an interrupted checkpoint", tmp)
                tmp.unlink(missing_ok=True)

    def restore(self) -> typing.Any | None:
        """The newest valid state, or None when there is no checkpoint; damaged files are logged and skipped. Raises
        `IncompatibleCheckpoint` when the newest intact file has another format, `DamagedCheckpoints` when none is
        intact."""
        paths = self.paths()
        for path in reversed(paths):
            try:
                form, payload = unframe(path.read_bytes())
            except Exception as err:  # a damaged or unreadable file: fall back to the one before
                log.warning("skipping checkpoint %s: %s", path, err)
                continue
            if form != FORMAT:
                raise incompatible(str(path), form, f"Move {self.directory} aside to start fresh, or resume it with "
                                   "the version that wrote it.")
            return pickle.loads(payload)
        if paths:
            raise damaged(f"in {self.directory} ({len(paths)} files)", "Move the directory aside")
        return None
