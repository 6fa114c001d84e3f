"""ARFF and CSV stream files: parsed like MOA/scikit-multiflow read them; bad rows reported with their line."""

from __future__ import annotations

import gzip

import pytest

from connectors.files import open_arff, open_csv, open_file
from stream_moe.events import DecodeError

ARFF = """% a comment
@relation test

@attribute 'temp' numeric
@attribute colour {red, green, 'dark blue'}
@attribute n integer
@attribute class {yes,no}

@data
1.5,red,3,yes
2.5,'dark blue',4,no
?,green,5,yes
oops,red,1,no
1.0,purple,2,yes
1.0,red,2
3.0,green,?,?
"""


def decode_all(source, decoder):
    events, errors = [], []
    for batch in source.batches(3):
        for record in batch:
            try:
                events.append(decoder.decode(record))
            except DecodeError as err:
                errors.append(str(err))
    return events, errors


def test_arff_rows_and_bad_rows(tmp_path):
    path = tmp_path / "s.arff.gz"
    with gzip.open(path, "wt") as f:
        f.write(ARFF)
    events, errors = decode_all(*open_file(path))
    assert [e.y for e in events] == ["yes", "no", "yes", None]
    assert events[0].x == {"temp": 1.5, "colour": "red", "n": 3.0}
    assert events[1].x["colour"] == "dark blue"
    assert "temp" not in events[2].x  # missing value: feature left out
    assert events[3].y is None  # missing label: unlabelled event
    assert errors == [
        "line 13: column 'temp': not a number: 'oops'",
        "line 14: column 'colour': unknown nominal value 'purple'",
        "line 15: expected 4 values, found 3",
    ]


def test_arff_named_target(tmp_path):
    path = tmp_path / "s.arff"
    path.write_text(ARFF)
    source, decoder = open_arff(path, target="colour", limit=2)
    events, _ = decode_all(source, decoder)
    assert [e.y for e in events] == ["red", "dark blue"]
    assert "class" in events[0].x


def test_csv_types_sniffed_and_bad_rows(tmp_path):
    path = tmp_path / "s.csv"
    good = "".join(f"{i}.5,{'xy'[i % 2]},{i},{i % 2}\n" for i in range(40))
    path.write_text("a,b,c,target\n" + good + "2.5,x,nan?,1\n3.5,x,3\n4.5,x,inf,0\n")
    events, errors = decode_all(*open_csv(path))
    assert [e.y for e in events] == [i % 2 for i in range(40)]  # integer labels, as scikit-multiflow's files have
    assert events[1].x == {"a": 1.5, "b": "y", "c": 1.0}
    assert errors == [
        "line 42: column 'c': not a number: 'nan?'",
        "line 43: expected 4 values, found 3",
        "line 44: column 'c': not a finite number: 'inf'",
    ]


def test_unknown_file_type(tmp_path):
    with pytest.raises(ValueError, match="unknown stream file type"):
        open_file(tmp_path / "x.parquet")


def test_real_electricity_file(elec_path):
    events, errors = decode_all(*open_file(elec_path))
    assert len(events) == 45_312 and not errors
    assert sum(e.y == "UP" for e in events) == 19_237
    assert events[0].x["day"] == "2"  # nominal attribute stays a category
