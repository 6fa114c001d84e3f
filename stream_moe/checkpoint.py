"""Atomic, checksummed checkpoints of a model's state and the source positions it has consumed.

A checkpoint is one pickle, written to a temporary file, fsynced, renamed into place (and the directory fsynced), so a
crash leaves either the previous checkpoint or the new one, never half of one. Its first line is the sha256 of the
rest: a file damaged later (disk, a bad copy) is recognised and skipped, and the newest valid one is restored. The last
`keep` checkpoints are kept.

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
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = self.paths()
        number = int(existing[-1].name[len(PREFIX):-len(SUFFIX)]) + 1 if existing else 0
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        path = self.directory / f"{PREFIX}{number:012d}{SUFFIX}"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(hashlib.sha256(payload).hexdigest().encode() + b"\n")
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

    def restore(self) -> typing.Any | None:
        """The newest valid state, or None when there is none; damaged files are logged and skipped."""
        for path in reversed(self.paths()):
            try:
                digest, payload = path.read_bytes().split(b"\n", 1)
                if hashlib.sha256(payload).hexdigest().encode() != digest:
                    raise ValueError("checksum mismatch")
                return pickle.loads(payload)
            except Exception as err:  # a damaged or unreadable file: fall back to the one before
                log.warning("skipping checkpoint %s: %s", path, err)
        return None
