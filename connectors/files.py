"""ARFF and CSV stream files (MOA's and scikit-multiflow's formats), read lazily, gzip or plain.

The source hands over raw lines with their line numbers; the decoder, built from the file's header, parses a line into
an event or refuses it with a reason (wrong arity, unparsable number, unknown nominal value), so a bad row reaches the
dead-letter sink with its line instead of vanishing or stopping the replay. Missing values (`?` or empty) leave the
feature out of the event, river's convention; a missing target leaves the event unlabelled.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import itertools
import pathlib
import re
import typing

from connectors.source import IterableSource
from stream_moe.events import DecodeError, Event, Position, Record

MISSING = {"?", ""}
CSV_SNIFF_ROWS = 1000
NUMERIC_SHARE = 0.95  # a CSV column is numeric when this share of its first values are numbers; the rest are bad rows


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@dataclasses.dataclass
class Column:
    """A column of a stream file: numeric, or nominal with its allowed values (None: any value, as in CSV)."""

    name: str
    numeric: bool
    values: frozenset[str] | None = None


class RowDecoder:
    """Parses one delimited line into an event, given the file's columns and which one is the target.

    >>> cols = [Column("a", True), Column("c", False, frozenset({"x", "y"})), Column("class", False, frozenset({"0", "1"}))]
    >>> dec = RowDecoder(cols, target="class", source="f")
    >>> dec.decode(Record("0.5,x,1", Position("f", 12)))
    Event(id='f:12', x={'a': 0.5, 'c': 'x'}, y='1', key=None, ts=None)
    >>> dec.decode(Record("zz,x,1", Position("f", 13)))
    Traceback (most recent call last):
    ...
    stream_moe.events.DecodeError: line 13: column 'a': not a number: 'zz'
    """

    def __init__(
        self, columns: list[Column], target: str | None, source: str, int_labels: bool = False, quote: str = '"'
    ):
        names = [c.name for c in columns]
        if target is not None and target not in names:
            raise ValueError(f"{source}: target column {target!r} not among the columns {names}")
        self.columns = columns
        self.target = target
        self.source = source
        self.int_labels = int_labels
        self.quote = quote

    def decode(self, record: Record) -> Event:
        line = record.position.offset
        fields = split_fields(record.value, self.quote)
        if len(fields) != len(self.columns):
            raise DecodeError(f"line {line}: expected {len(self.columns)} values, found {len(fields)}")
        x: dict[str, typing.Any] = {}
        y = None
        for column, text in zip(self.columns, fields):
            if text in MISSING:
                continue
            if column.numeric:
                try:
                    value: typing.Any = float(text)
                except ValueError:
                    raise DecodeError(f"line {line}: column {column.name!r}: not a number: {text!r}") from None
                if value != value or value in (float("inf"), float("-inf")):
                    raise DecodeError(f"line {line}: column {column.name!r}: not a finite number: {text!r}")
            elif column.values is not None and text not in column.values:
                raise DecodeError(f"line {line}: column {column.name!r}: unknown nominal value {text!r}")
            else:
                value = text
            if column.name == self.target:
                y = int(text) if self.int_labels else value
            else:
                x[column.name] = value
        return Event(id=f"{self.source}:{line}", x=x, y=y)


def split_fields(line: str, quote: str = '"') -> list[str]:
    """Comma-separated fields, unquoted (ARFF quotes with ', CSV with "), surrounding blanks removed.

    >>> split_fields("1, 'a b',c", quote="'")
    ['1', 'a b', 'c']
    """
    if quote not in line:
        return [f.strip() for f in line.split(",")]
    return [f.strip() for f in next(csv.reader([line], quotechar=quote, skipinitialspace=True))]


def _open_text(path: pathlib.Path) -> typing.TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _numbered(lines: typing.Iterable[str], start: int) -> typing.Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=start):
        line = line.rstrip("\r\n")
        if line.strip() and not line.lstrip().startswith("%"):
            yield number, line


ARFF_ATTRIBUTE = re.compile(r"@attribute\s+('(?:[^']|\\')*'|\"[^\"]*\"|\S+)\s+(.+)$", re.IGNORECASE)


def _arff_header(lines: typing.Iterator[tuple[int, str]], path: pathlib.Path) -> list[Column]:
    columns = []
    for number, line in lines:
        lower = line.strip().lower()
        if lower.startswith("@data"):
            return columns
        if lower.startswith("@attribute"):
            match = ARFF_ATTRIBUTE.match(line.strip())
            if not match:
                raise ValueError(f"{path}:{number}: cannot read attribute declaration {line!r}")
            name, kind = match.group(1).strip("'\""), match.group(2).strip()
            if kind.startswith("{"):
                values = frozenset(split_fields(kind.strip("{} \t"), quote="'"))
                columns.append(Column(name, numeric=False, values=values))
            elif kind.lower() in ("numeric", "real", "integer"):
                columns.append(Column(name, numeric=True))
            elif kind.lower() == "string" or kind.lower().startswith("date"):
                columns.append(Column(name, numeric=False))
            else:
                raise ValueError(f"{path}:{number}: unsupported attribute type {kind!r}")
    raise ValueError(f"{path}: no @data section")


def open_arff(
    path: str | pathlib.Path, target: str | None = None, limit: int | None = None
) -> tuple[IterableSource, RowDecoder]:
    """Source (of at most `limit` rows) and decoder for an ARFF file; the target is the last attribute unless named."""
    path = pathlib.Path(path)
    handle = _open_text(path)
    lines = _numbered(handle, start=1)
    try:
        columns = _arff_header(lines, path)
    except BaseException:
        handle.close()
        raise
    target = target or columns[-1].name
    decoder = RowDecoder(columns, target, source=path.name, quote="'")
    records = (Record(line, Position(path.name, number)) for number, line in lines)
    return IterableSource(path.name, records, close=handle.close, limit=limit), decoder


def open_csv(
    path: str | pathlib.Path, target: str | None = None, nominal: typing.Iterable[str] = (), limit: int | None = None
) -> tuple[IterableSource, RowDecoder]:
    """Source (of at most `limit` rows) and decoder for a CSV file with a header row (scikit-multiflow's stream files
    are such).

    Column types come from the first rows: a column is numeric when at least 95% of its values there parse as numbers
    (so one typo does not turn it nominal; that row is then refused), unless named in `nominal`. The target is the last column unless named; integer-valued targets become int labels.
    """
    path = pathlib.Path(path)
    handle = _open_text(path)
    lines = _numbered(handle, start=1)
    try:
        header_line, header = next(lines)
    except StopIteration:
        handle.close()
        raise ValueError(f"{path}: empty file") from None
    names = split_fields(header)
    target = target or names[-1]
    sniffed = list(itertools.islice(lines, CSV_SNIFF_ROWS))
    rows = [split_fields(line) for _, line in sniffed]
    rows = [r for r in rows if len(r) == len(names)]
    nominal = set(nominal) | {target}

    def share(i: int, test) -> float:
        values = [r[i] for r in rows if r[i] not in MISSING]
        return sum(map(test, values)) / len(values) if values else 0.0

    columns = [
        Column(n, numeric=n not in nominal and share(i, is_number) >= NUMERIC_SHARE) for i, n in enumerate(names)
    ]
    int_labels = share(names.index(target), lambda t: t.lstrip("-").isdigit()) == 1.0
    decoder = RowDecoder(columns, target, source=path.name, int_labels=int_labels)
    records = (Record(line, Position(path.name, number)) for number, line in itertools.chain(sniffed, lines))
    return IterableSource(path.name, records, close=handle.close, limit=limit), decoder


def open_file(
    path: str | pathlib.Path, target: str | None = None, limit: int | None = None
) -> tuple[IterableSource, RowDecoder]:
    """ARFF or CSV by the file's suffix (before any .gz)."""
    path = pathlib.Path(path)
    kind = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if kind.lower() == ".arff":
        return open_arff(path, target, limit=limit)
    if kind.lower() == ".csv":
        return open_csv(path, target, limit=limit)
    raise ValueError(f"{path}: unknown stream file type {kind!r} (expected .arff or .csv, optionally .gz)")
