"""Atomic, checksummed checkpoints of a model's state and the source positions it has consumed.

A checkpoint is one pickle after a header (`frame`: the checkpoint format, the sha256 of what follows it, and the
digests of the blobs the state refers to: per-key models kept beside the checkpoints, `stream_moe.keyed_models`;
`unframe` checks it). In a directory (`Checkpointer`) it is written to a temporary file, fsynced, renamed into place (and the
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
import io
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
# ids, watermark) and the model's name; 8: per-key models as blobs, listed in the header); files without it are format 1.
FORMAT = 8


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


def frame(payload: bytes, refs: typing.Iterable[str] = ()) -> bytes:
    """The header that precedes a pickled state: a line of the magic, the format this code writes, the sha256 of the
    rest and the number of blobs referred to; then their digests, a line each.

    >>> magic, form, digest, count, blob = frame(b"state", ["ab" * 32]).split()
    >>> magic, form, len(digest), count, blob == b"ab" * 32
    (b'stream-moe-checkpoint', b'8', 64, b'1', True)
    """
    listing = b"".join(b"%s\n" % r.encode() for r in sorted(refs))
    digest = hashlib.sha256(listing)
    digest.update(payload)
    return b"%s %d %s %d\n" % (MAGIC, FORMAT, digest.hexdigest().encode(), listing.count(b"\n")) + listing


def read_header(data: bytes | typing.BinaryIO) -> tuple[int, bytes, list[str], int]:
    """The format, the digest, the blobs referred to and the header's length of a framed state (bytes, or a file
    read from its start); `ValueError` when the header is malformed. A header of the digest alone is format 1."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    line = stream.readline(4096)
    if not line.endswith(b"\n"):
        raise ValueError("no header line")
    fields = line[:-1].split(b" ")
    if fields[0] != MAGIC:
        return 1, fields[0], [], len(line)
    refs = [stream.readline(80)[:-1].decode("ascii") for _ in range(int(fields[3]) if len(fields) > 3 else 0)]
    if any(len(r) != 64 for r in refs):
        raise ValueError("malformed list of blobs")
    return int(fields[1]), fields[2], refs, len(line) + 65 * len(refs)


def unframe(data: bytes) -> tuple[int, list[str], memoryview]:
    """The format, the blobs referred to and the payload of a framed state (without copying the payload);
    `ValueError` when they are damaged."""
    form, expected, refs, start = read_header(data)
    digest = hashlib.sha256(memoryview(data)[start - 65 * len(refs):start])
    payload = memoryview(data)[start:]
    digest.update(payload)
    if digest.hexdigest().encode() != expected:
        raise ValueError("checksum mismatch")
    return form, refs, payload


class MissingBlob(RuntimeError):
    """A blob that a state refers to is not in its store, or its bytes no longer match its digest."""


def blob_digest(data: bytes) -> str:
    """The name of a blob: the sha256 of its bytes, so that a blob never changes once written."""
    return hashlib.sha256(data).hexdigest()


def write_durably(path: pathlib.Path, *parts: bytes) -> None:
    """Write a file through a temporary one, fsynced and renamed into place: a crash leaves it whole or absent."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        for part in parts:
            f.write(part)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_directory(directory: pathlib.Path) -> None:
    """Make the renames into `directory` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Checkpointer:
    """Saves and restores states (any picklable value) in `directory`, numbered in order, and the blobs they refer to
    in its `blobs/` folder: a blob stays while one of the kept checkpoints refers to it."""

    def __init__(self, directory: str | pathlib.Path, keep: int = 3):
        self.directory = pathlib.Path(directory)
        self.blobs = self.directory / "blobs"
        self.keep = max(1, keep)

    def paths(self) -> list[pathlib.Path]:
        """The checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: int(p.name[len(PREFIX):-len(SUFFIX)]))

    def save(self, state: typing.Any) -> pathlib.Path:
        return self.save_payload(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    def save_payload(self, payload: bytes, refs: typing.Iterable[str] = ()) -> pathlib.Path:
        """Save a state already pickled, which refers to the blobs `refs` (put before); then delete the checkpoints
        beyond the last `keep` and the blobs none of those refers to."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.blobs.is_dir():
            fsync_directory(self.blobs)  # the blobs it refers to are durable before it is
        existing = self.paths()
        number = int(existing[-1].name[len(PREFIX):-len(SUFFIX)]) + 1 if existing else 0
        path = self.directory / f"{PREFIX}{number:012d}{SUFFIX}"
        write_durably(path, frame(payload, refs), payload)
        fsync_directory(self.directory)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        self.collect()
        return path

    def put_blob(self, digest: str, data: bytes) -> int:
        """Keep a blob (`digest` names its bytes); the bytes written, 0 when it is there already. It is durable once
        the next `save_payload` begins."""
        path = self.blobs / digest
        if path.is_file():
            return 0
        self.blobs.mkdir(parents=True, exist_ok=True)
        write_durably(path, data)
        return len(data)

    def get_blob(self, digest: str) -> bytes:
        try:
            data = (self.blobs / digest).read_bytes()
        except FileNotFoundError:
            raise MissingBlob(f"blob {digest} is not in {self.blobs}") from None
        if blob_digest(data) != digest:
            raise MissingBlob(f"blob {digest} in {self.blobs} is damaged (its bytes do not match its name)")
        return data

    def collect(self) -> None:
        """Delete the blobs that no kept checkpoint refers to (none while a kept checkpoint's header is unreadable)."""
        if not self.blobs.is_dir():
            return
        kept: set[str] = set()
        for path in self.paths():
            try:
                with open(path, "rb") as f:
                    kept.update(read_header(f)[2])
            except (OSError, ValueError, IndexError) as err:
                log.warning("keeping every blob of %s: the header of %s is unreadable (%s)", self.directory, path, err)
                return
        for blob in self.blobs.iterdir():
            if not blob.name.startswith(".") and blob.name not in kept:
                blob.unlink(missing_ok=True)

    def remove_temporary(self) -> None:
        """Delete the temporary files that a writer killed mid-write left behind."""
        for folder in (self.directory, self.blobs):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    log.info("removing %s, left by an interrupted checkpoint", tmp)
                    tmp.unlink(missing_ok=True)

    def restore(self) -> typing.Any | None:
        """The newest valid state, or None when there is no checkpoint; damaged files, and those referring to a blob
        that is gone, are logged and skipped. Raises `IncompatibleCheckpoint` when the newest intact file has another
        format, `DamagedCheckpoints` when none is intact."""
        paths = self.paths()
        for path in reversed(paths):
            try:
                form, refs, payload = unframe(path.read_bytes())
            except Exception as err:  # a damaged or unreadable file: fall back to the one before
                log.warning("skipping checkpoint %s: %s", path, err)
                continue
            if form != FORMAT:
                raise incompatible(str(path), form, f"Move {self.directory} aside to start fresh, or resume it with "
                                   "the version that wrote it.")
            missing = [r for r in refs if not (self.blobs / r).is_file()]
            if missing:
                log.warning("skipping checkpoint %s: %d of the blobs it refers to are missing", path, len(missing))
                continue
            return pickle.loads(payload)
        if paths:
            raise damaged(f"in {self.directory} ({len(paths)} files)", "Move the directory aside")
        return None
