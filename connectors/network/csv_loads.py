"""Real per-link (or per origin-destination pair) load time series from a CSV file, to forecast your own measurements.

Two layouts are read: *wide*, a timestamp column and one column per series; and *long*, three columns
``timestamp,series,value`` (the header names are free; the layout is recognised by the column count and whether the
second column is numeric). Timestamps are numbers (e.g. Unix seconds) or ISO 8601 times; a series missing at a
timestamp of the long layout carries its previous value (0 before its first). A file whose name ends in ``.gz`` is
read through gzip. OD demand series are named ``origin>destination``.

>>> import io
>>> wide = io.StringIO("time,A-B,B-C\\n0,1.5,2\\n60,1.7,2.5\\n")
>>> s = read_loads(wide)
>>> s.names, s.times.tolist(), s.values.tolist()
(['A-B', 'B-C'], [0.0, 60.0], [[1.5, 2.0], [1.7, 2.5]])
>>> long = io.StringIO("time,link,load\\n0,A-B,1.5\\n0,B-C,2\\n60,A-B,1.7\\n")
>>> read_loads(long).values.tolist()
[[1.5, 2.0], [1.7, 2.0]]
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import pathlib
import typing

import numpy as np


@dataclasses.dataclass
class LoadSeries:
    names: list[str]
    times: np.ndarray  # seconds
    values: np.ndarray  # times x series

    @property
    def step(self) -> float:
        """The sampling interval: the median time between two samples (seconds)."""
        return float(np.median(np.diff(self.times))) if len(self.times) > 1 else 1.0

    def spans(self) -> np.ndarray | None:
        """The time since the previous sample of each sample, in sampling intervals (the first: 1), or None when
        sampling is regular: a gap in the timestamps reaches a forecaster as a longer time span.

        >>> LoadSeries(["A-B"], np.array([0.0, 60, 120, 420, 480]), np.zeros((5, 1))).spans().tolist()
        [1.0, 1.0, 1.0, 5.0, 1.0]
        """
        if len(self.times) < 2 or self.step <= 0:
            return None
        spans = np.concatenate([[1.0], np.diff(self.times) / self.step])
        return None if np.allclose(spans, 1.0) else spans


def parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.datetime.fromisoformat(text).timestamp()


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def open_text(path: str | pathlib.Path) -> typing.TextIO:
    """A CSV file opened for reading as text, through gzip when its name ends in ``.gz``."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def read_loads(file: str | pathlib.Path | typing.TextIO) -> LoadSeries:
    if isinstance(file, (str, pathlib.Path)):
        with open_text(file) as f:
            return read_loads(f)
    rows = [r for r in csv.reader(file) if r]
    if not rows:
        raise ValueError("empty file")
    header, rows = rows[0], rows[1:]
    if len(header) == 3 and rows and not is_number(rows[0][1]):
        names = list(dict.fromkeys(r[1] for r in rows))
        column = {n: i for i, n in enumerate(names)}
        times = sorted({parse_time(r[0]) for r in rows})
        at = {t: i for i, t in enumerate(times)}
        values = np.full((len(times), len(names)), np.nan)
        for r in rows:
            values[at[parse_time(r[0])], column[r[1]]] = float(r[2])
        for i in range(len(times)):  # carry the previous value where a series has none
            previous = values[i - 1] if i else np.zeros(len(names))
            values[i] = np.where(np.isnan(values[i]), previous, values[i])
        return LoadSeries(names, np.array(times), values)
    return LoadSeries(
        header[1:], np.array([parse_time(r[0]) for r in rows]), np.array([[float(v) for v in r[1:]] for r in rows])
    )
