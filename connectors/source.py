"""What every source offers the event loop: micro-batches of records, and where it stands."""

from __future__ import annotations

import itertools
import typing

from stream_moe.events import Event, Record


class Source(typing.Protocol):
    """A stream of records, handed over in micro-batches of at most `max_records`.

    `max_wait_s` bounds how long a source that waits for data (Kafka) may hold back a partial batch; sources that never
    wait (files, generators) ignore it. An exhausted source stops iterating; a live one never does.
    """

    name: str

    def batches(self, max_records: int, max_wait_s: float) -> typing.Iterator[list[Record]]: ...

    def close(self) -> None: ...


class Decoder(typing.Protocol):
    """Turns one record into an `Event`, or raises `stream_moe.events.DecodeError` with the reason."""

    def decode(self, record: Record) -> Event: ...


class IterableSource:
    """A finite source over an iterator of records (files, generators), cut at `limit` records: batches are consecutive
    chunks."""

    def __init__(
        self,
        name: str,
        records: typing.Iterable[Record],
        close: typing.Callable[[], None] | None = None,
        limit: int | None = None,
    ):
        self.name = name
        self._records = itertools.islice(records, limit)
        self._close = close

    def batches(self, max_records: int, max_wait_s: float = 0.0) -> typing.Iterator[list[Record]]:
        while batch := list(itertools.islice(self._records, max_records)):
            yield batch

    def seek(self, offset: int) -> None:
        """Skip ahead to the record at `offset` (records before it were consumed by an earlier run); call before
        the first batch."""
        next(itertools.islice(self._records, offset, offset), None)

    def close(self) -> None:
        if self._close is not None:
            self._close()
