"""The benchmark streams by name: the synthetic generators, the small real data sets bundled with river and the real
data files, opened as a source.

Real files are looked up by their usual names in the data directories (`STREAM_MOE_DATA`, `--data-dir`, or the
defaults of the settings); a file that is absent raises `StreamUnavailable` with a message that says where it was
looked for, so callers can skip cleanly.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import typing

from river import datasets

from connectors import generators
from connectors.files import open_file
from connectors.source import Decoder, IterableSource
from stream_moe.events import Event, Position, Record

REAL_STREAMS = {
    "elec": (
        ("electricity.arff.gz", "electricity.arff", "elecNormNew.arff.gz", "elecNormNew.arff"),
        "Electricity (NSW market, Harries 1999; MOA's elecNormNew), 45,312 rows, UP/DOWN",
    ),
    "airlines": (
        ("airlines.arff.gz", "airlines.arff", "airlines.csv.gz", "airlines.csv"),
        "Airlines flight delays (MOA), 539,383 rows",
    ),
    "covtype": (
        ("covtypeNorm.arff.gz", "covtypeNorm.arff", "covtype.arff.gz", "covtype.arff", "covtype.csv.gz", "covtype.csv"),
        "Forest CoverType (MOA's covtypeNorm), 581,012 rows, 7 classes",
    ),
    "weather": (
        ("weather_noaa.csv.gz", "weather_noaa.csv", "weather.csv"),
        "NOAA daily weather, Offutt AFB 1949-1999 (Elwell & Polikar), 18,159 rows, rain or not",
    ),
}


# real data sets that river ships inside its package (nothing to download), read whole in their order
BUNDLED = {
    "phishing": (datasets.Phishing, "Phishing web pages (river's Phishing), 1,250 rows, 9 attributes, phishing or not"),
    "bananas": (datasets.Bananas, "Bananas (river's Bananas), 5,300 rows, 2 numeric attributes, 2 classes"),
    "segment": (datasets.ImageSegments, "Image segments (river's ImageSegments), 2,310 rows, 18 attributes, 7 classes"),
}


class StreamUnavailable(FileNotFoundError):
    """A real stream whose file is not on this machine."""


@dataclasses.dataclass
class OpenedStream:
    """A benchmark ready to replay: its source and decoder, and what is known of its drifts."""

    name: str
    source: IterableSource
    decoder: Decoder
    description: str
    drifts: list[int]
    length: int | None = None  # records, when known in advance


class PairDecoder:
    """For generated records, whose value is already an (x, y) pair, or an (x, y, key) triple; the id is the
    position."""

    def decode(self, record: Record) -> Event:
        x, y, *key = record.value
        return Event(id=str(record.position.offset), x=x, y=y, key=key[0] if key else None)


def stream_names() -> list[str]:
    return [*generators.GENERATORS, *BUNDLED, *REAL_STREAMS]


def describe(name: str) -> str:
    """A line on what the stream is.

    >>> describe("bananas")
    "Bananas (river's Bananas), 5,300 rows, 2 numeric attributes, 2 classes"
    """
    for table in (generators.GENERATORS, BUNDLED, REAL_STREAMS):
        if name in table:
            return table[name][1]
    raise ValueError(f"unknown stream {name!r}; known: {', '.join(stream_names())}")


def find_file(name: str, data_dirs: typing.Sequence[pathlib.Path]) -> pathlib.Path:
    candidates, _ = REAL_STREAMS[name]
    for directory in data_dirs:
        for candidate in candidates:
            path = pathlib.Path(directory) / candidate
            if path.is_file():
                return path
    looked = ", ".join(str(d) for d in data_dirs) or "(no data directory given)"
    raise StreamUnavailable(
        f"stream {name!r} needs one of {', '.join(candidates)} in a data directory; looked in: {looked}. "
        "Set STREAM_MOE_DATA or pass --data-dir."
    )


def open_stream(
    name: str, n: int | None = None, seed: int = 1, data_dirs: typing.Sequence[pathlib.Path] = ()
) -> OpenedStream:
    """Open benchmark `name`, limited to its first `n` instances (generators default to 1,000,000; data sets are
    read whole)."""
    if n is not None and n < 1:
        raise ValueError(f"a stream's length must be a positive number of instances, got {n}")
    if name in generators.GENERATORS:
        length = generators.BENCHMARK_LENGTH if n is None else n
        records = (
            Record(pair, Position(name, i)) for i, pair in enumerate(generators.generate(name, n=length, seed=seed))
        )
        source = IterableSource(name, records)
        return OpenedStream(name, source, PairDecoder(), describe(name), generators.drifts(name, length), length)
    if name in BUNDLED:
        dataset = BUNDLED[name][0]()
        length = dataset.n_samples if n is None else min(n, dataset.n_samples)
        records = (Record(pair, Position(name, i)) for i, pair in enumerate(itertools.islice(dataset, length)))
        return OpenedStream(name, IterableSource(name, records), PairDecoder(), describe(name), [], length)
    if name not in REAL_STREAMS:
        raise ValueError(f"unknown stream {name!r}; known: {', '.join(stream_names())}")
    path = find_file(name, data_dirs)
    source, decoder = open_file(path, limit=n)
    return OpenedStream(name, source, decoder, describe(name), [], length=n)
