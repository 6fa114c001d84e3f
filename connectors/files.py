"""ARFF and CSV stream files (MOA's and scikit-multiflow's formats), read lazily, gzip or plain.

The source hands over raw lines with their line numbers; the decoder, built from the file's header, parses a line into
an event or refuses it with a reason (wrong arity, unparsable number, unknown nominal value, bytes that are not
UTF-8), so a bad row reaches the dead-letter sink with its line instead of vanishing, becoming a class of its own, or
stopping the replay. Missing values (`?` or empty) leave the feature out of the event, river's convention; a missing
target leaves the event unlabelled. Sparse ARFF rows (`{index value, ...}`) are read as Weka writes them: an index
left out holds 0 (a nominal attribute's first value).

What cannot be streamed is refused when the file is opened, with a `StreamFileError` naming the file: an empty file,
a header without rows, an ARFF `string`, `date` or `relational` attribute, a target that is not a column. A gzip file
cut short fails with the line it stopped after.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import gzip
import itertools
import pathlib
import re
import typing
import zlib

from connectors.source import IterableSource
from stream_moe.events import DecodeError, Event, Position, Record

MISSING = {"?", ""}
CSV_SNIFF_ROWS = 1000
NUMERIC_SHARE = 0.95  # a CSV column is numeric when this share of its first values are numbers; the rest are bad rows
KINDS = (".arff", ".csv")


class StreamFileError(ValueError):
    """A stream file that cannot be replayed as it is; the message names the file (and the line, where one is to
    blame)."""


class UnknownTarget(StreamFileError):
    """The target asked for is not a column of the file."""


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@dataclasses.dataclass
class Column:
    """A column of a stream file: numeric, or nominal with its declared values in order (None: any value, as in
    CSV)."""

    name: str
    numeric: bool
    values: tuple[str, ...] | None = None

    @property
    def zero(self) -> str:
        """What a sparse ARFF row means by leaving this column out: 0, or the first declared value."""
        return "0" if self.numeric or not self.values else self.values[0]


class RowDecoder:
    """Parses one delimited line into an event, given the file's columns and which one is the target.

    >>> cols = [Column("a", True), Column("c", False, ("x", "y")), Column("class", False, ("0", "1"))]
    >>> dec = RowDecoder(cols, target="class", source="f", sparse=True)
    >>> dec.decode(Record("0.5,x,1", Position("f", 12)))
    Event(id='f:12', x={'a': 0.5, 'c': 'x'}, y='1', key=None, ts=None)
    >>> dec.decode(Record("{0 2.5, 2 1}", Position("f", 13)))
    Event(id='f:13', x={'a': 2.5, 'c': 'x'}, y='1', key=None, ts=None)
    >>> dec.decode(Record("zz,x,1", Position("f", 14)))
    Traceback (most recent call last):
    ...
    stream_moe.events.DecodeError: line 14: column 'a': not a number: 'zz'
    """

    def __init__(
        self, columns: list[Column], target: str | None, source: str, int_labels: bool = False, quote: str = '"',
        sparse: bool = False,
    ):
        names = [c.name for c in columns]
        if target is not None and target not in names:
            close = difflib.get_close_matches(target, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UnknownTarget(f"{target!r} is not a column of {source}{hint}; its columns: {', '.join(names)}")
        self.columns = columns
        self.allowed = [frozenset(c.values) if c.values is not None else None for c in columns]
        self.target = target
        self.source = source
        self.int_labels = int_labels
        self.quote = quote
        self.sparse = sparse

    def decode(self, record: Record) -> Event:
        line = record.position.offset
        if isinstance(record.value, bytes):
            raise DecodeError(f"line {line}: not valid UTF-8", "invalid_encoding")
        if self.sparse and record.value.startswith("{"):
            fields = self._sparse_fields(record.value, line)
        else:
            fields = split_fields(record.value, self.quote)
        if len(fields) != len(self.columns):
            raise DecodeError(f"line {line}: expected {len(self.columns)} values, found {len(fields)}")
        x: dict[str, typing.Any] = {}
        y = None
        for column, allowed, text in zip(self.columns, self.allowed, fields):
            if text in MISSING:
                continue
            if column.numeric:
                try:
                    value: typing.Any = float(text)
                except ValueError:
                    raise DecodeError(f"line {line}: column {column.name!r}: not a number: {text!r}") from None
                if value != value or value in (float("inf"), float("-inf")):
                    raise DecodeError(f"line {line}: column {column.name!r}: not a finite number: {text!r}")
            elif allowed is not None and text not in allowed:
                raise DecodeError(f"line {line}: column {column.name!r}: unknown nominal value {text!r}")
            else:
                value = text
            if column.name == self.target:
                y = int(text) if self.int_labels else value
            else:
                x[column.name] = value
        return Event(id=f"{self.source}:{line}", x=x, y=y)

    def _sparse_fields(self, text: str, line: int) -> list[str]:
        """The full row of a sparse ARFF line `{index value, ...}`: the columns it leaves out hold their zero."""
        body = text.strip()
        if not body.endswith("}"):
            raise DecodeError(f"line {line}: a sparse row must end with '}}'")
        fields = [c.zero for c in self.columns]
        for entry in split_fields(body[1:-1], self.quote):
            if not entry:
                continue
            index, _, value = entry.partition(" ")
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if not index.isdigit() or not value:
                raise DecodeError(f"line {line}: sparse entry {entry!r} is not 'index value'")
            if int(index) >= len(self.columns):
                raise DecodeError(f"line {line}: sparse index {index} past the last column ({len(self.columns) - 1})")
            fields[int(index)] = value
        return fields


def split_fields(line: str, quote: str = '"') -> list[str]:
    """Comma-separated fields, unquoted (ARFF quotes with ', CSV with "), surrounding blanks removed.

    >>> split_fields("1, 'a b',c", quote="'")
    ['1', 'a b', 'c']
    """
    if quote not in line:
        return [f.strip() for f in line.split(",")]
    return [f.strip() for f in next(csv.reader([line], quotechar=quote, skipinitialspace=True))]


def _raw_lines(path: pathlib.Path) -> typing.Iterator[bytes]:
    """The file's lines as bytes (gunzipped for .gz), a gzip stream that is cut short or corrupt failing with a
    `StreamFileError` that says after which line."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    with opener(path, "rb") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                yield line
        except EOFError:
            raise StreamFileError(f"{path}: the gzip data ends early, after line {number} (a truncated file?)"
                                  ) from None
        except (gzip.BadGzipFile, zlib.error) as err:
            what = "not a gzip file" if number == 0 else f"corrupt gzip data after line {number}"
            raise StreamFileError(f"{path}: {what} ({err})") from None


def _numbered(lines: typing.Iterable[bytes]) -> typing.Iterator[tuple[int, str | bytes]]:
    """(line number, text) of the lines that hold something (not blank, not a % comment); a line that is not valid
    UTF-8 comes as its bytes, for the decoder to refuse."""
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r\n")
        try:
            line: str | bytes = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, raw
            continue
        if line.strip() and not line.lstrip().startswith("%"):
            yield number, line


def _text(path: pathlib.Path, number: int, line: str | bytes) -> str:
    """A header line, which must be text."""
    if isinstance(line, bytes):
        raise StreamFileError(f"{path}:{number}: the header is not valid UTF-8")
    return line


class _Lines:
    """The numbered lines of a stream file, opened lazily, closed by `close`."""

    def __init__(self, path: pathlib.Path):
        self._raw = _raw_lines(path)
        self.lines = _numbered(self._raw)

    def close(self) -> None:
        self._raw.close()


ARFF_ATTRIBUTE = re.compile(r"@attribute\s+('(?:[^']|\\')*'|\"[^\"]*\"|\S+)\s+(.+)$", re.IGNORECASE)


def _arff_header(lines: typing.Iterator[tuple[int, str | bytes]], path: pathlib.Path) -> list[Column]:
    columns = []
    seen = False
    for number, line in lines:
        seen = True
        line = _text(path, number, line).strip()
        lower = line.lower()
        if lower.startswith("@data"):
            if not columns:
                raise StreamFileError(f"{path}:{number}: no @attribute before @data")
            return columns
        if lower.startswith("@attribute"):
            match = ARFF_ATTRIBUTE.match(line)
            if not match:
                raise StreamFileError(f"{path}:{number}: cannot read attribute declaration {line!r}")
            name, kind = match.group(1).strip("'\""), match.group(2).strip()
            if kind.startswith("{"):
                values = tuple(dict.fromkeys(split_fields(kind.strip("{} \t"), quote="'")))
                columns.append(Column(name, numeric=False, values=values))
            elif kind.lower() in ("numeric", "real", "integer"):
                columns.append(Column(name, numeric=True))
            elif kind.split()[0].lower() in ("string", "date", "relational"):
                raise StreamFileError(
                    f"{path}:{number}: attribute {name!r} is of type {kind.split()[0].lower()}, which cannot be "
                    "streamed (only numeric and nominal attributes): remove it or convert it to one of those"
                )
            else:
                raise StreamFileError(f"{path}:{number}: unsupported attribute type {kind!r}")
    raise StreamFileError(f"{path}: empty file" if not seen else f"{path}: no @data section")


def _with_first_row(lines, path: pathlib.Path, after: str):
    """The lines again, after checking there is at least one: a file without rows has nothing to replay."""
    first = next(lines, None)
    if first is None:
        raise StreamFileError(f"{path}: no data rows after {after}")
    return itertools.chain([first], lines)


def _records(lines, path: pathlib.Path) -> typing.Iterator[Record]:
    return (Record(line, Position(path.name, number)) for number, line in lines)


def open_arff(
    path: str | pathlib.Path, target: str | None = None, limit: int | None = None
) -> tuple[IterableSource, RowDecoder]:
    """Source (of at most `limit` rows) and decoder for an ARFF file; the target is the last attribute unless named."""
    path = pathlib.Path(path)
    opened = _Lines(path)
    try:
        columns = _arff_header(opened.lines, path)
        rows = _with_first_row(opened.lines, path, "@data")
        decoder = RowDecoder(columns, target or columns[-1].name, source=path.name, quote="'", sparse=True)
    except BaseException:
        opened.close()
        raise
    return IterableSource(path.name, _records(rows, path), close=opened.close, limit=limit), decoder


def open_csv(
    path: str | pathlib.Path, target: str | None = None, nominal: typing.Iterable[str] = (), limit: int | None = None
) -> tuple[IterableSource, RowDecoder]:
    """Source (of at most `limit` rows) and decoder for a CSV file with a header row (scikit-multiflow's stream files
    are such).

    Column types come from the first rows: a column is numeric when at least 95% of its values there parse as numbers
    (so one typo does not turn it nominal; that row is then refused), unless named in `nominal`. The target is the
    last column unless named; integer-valued targets become int labels.
    """
    path = pathlib.Path(path)
    opened = _Lines(path)
    try:
        header_line, header = next(opened.lines, (0, None))
        if header is None:
            raise StreamFileError(f"{path}: empty file")
        names = split_fields(_text(path, header_line, header))
        sniffed = list(itertools.islice(opened.lines, CSV_SNIFF_ROWS))
        if not sniffed:
            raise StreamFileError(f"{path}: no data rows after the header")
        rows = [split_fields(line) for _, line in sniffed if isinstance(line, str)]
        rows = [r for r in rows if len(r) == len(names)]
        target = target or names[-1]
        nominal = set(nominal) | {target}

        def share(i: int, test) -> float:
            values = [r[i] for r in rows if r[i] not in MISSING]
            return sum(map(test, values)) / len(values) if values else 0.0

        columns = [
            Column(n, numeric=n not in nominal and share(i, is_number) >= NUMERIC_SHARE) for i, n in enumerate(names)
        ]
        int_labels = target in names and share(names.index(target), lambda t: t.lstrip("-").isdigit()) == 1.0
        decoder = RowDecoder(columns, target, source=path.name, int_labels=int_labels)
    except BaseException:
        opened.close()
        raise
    records = _records(itertools.chain(sniffed, opened.lines), path)
    return IterableSource(path.name, records, close=opened.close, limit=limit), decoder


def file_kind(path: str | pathlib.Path) -> str:
    """'.arff' or '.csv', by the file's suffix before any .gz.

    >>> file_kind("covtype.csv.gz")
    '.csv'
    """
    path = pathlib.Path(path)
    kind = (path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix).lower()
    if kind not in KINDS:
        raise StreamFileError(f"{path}: unknown stream file type {kind or '(none)'!r} (expected .arff or .csv, "
                              "optionally .gz)")
    return kind


def open_file(
    path: str | pathlib.Path, target: str | None = None, limit: int | None = None
) -> tuple[IterableSource, RowDecoder]:
    """ARFF or CSV by the file's suffix (before any .gz)."""
    opener = open_arff if file_kind(path) == ".arff" else open_csv
    return opener(path, target, limit=limit)
