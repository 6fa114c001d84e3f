"""ARFF and CSV stream files: parsed like MOA/scikit-multiflow read them; bad rows reported with their line."""

from __future__ import annotations

import gzip

import pytest

from connectors.files import StreamFileError, UnknownTarget, open_arff, open_csv, open_file
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


SPARSE_ARFF = """@relation sparse
@attribute a numeric
@attribute colour {red, green, 'dark blue'}
@attribute b numeric
@attribute class {no, yes}
@data
{0 1.5, 1 green, 3 yes}
{2 -2}
{1 'dark blue', 2 ?}
1,red,2,yes
{7 1}
{zero 1}
"""


def test_sparse_arff_rows_hold_zero_or_the_first_value_where_left_out(tmp_path):
    path = tmp_path / "s.arff"
    path.write_text(SPARSE_ARFF)
    events, errors = decode_all(*open_file(path))
    assert [(e.x, e.y) for e in events] == [
        ({"a": 1.5, "colour": "green", "b": 0.0}, "yes"),
        ({"a": 0.0, "colour": "red", "b": -2.0}, "no"),
        ({"a": 0.0, "colour": "dark blue"}, "no"),  # '?' is missing, in sparse rows too
        ({"a": 1.0, "colour": "red", "b": 2.0}, "yes"),
    ]
    assert errors == ["line 11: sparse index 7 past the last column (3)",
                      "line 12: sparse entry 'zero 1' is not 'index value'"]


def test_a_line_that_is_not_utf8_is_refused_not_made_a_class(tmp_path):
    path = tmp_path / "s.csv"
    rows = [f"{i}.5,{'ab'[i % 2]}".encode() for i in range(20)]
    rows[5] = b"5.5,\xff\xfe"
    path.write_bytes(b"x,label\n" + b"\n".join(rows) + b"\n")
    source, decoder = open_file(path)
    events, errors = decode_all(source, decoder)
    assert errors == ["line 7: not valid UTF-8"]
    assert {e.y for e in events} == {"a", "b"} and len(events) == 19


@pytest.mark.parametrize("kind", ["string", "date 'yyyy-MM-dd'", "relational"])
def test_attributes_that_cannot_be_streamed_are_refused_by_name(tmp_path, kind):
    path = tmp_path / "s.arff"
    path.write_text(f"@relation r\n@attribute a numeric\n@attribute when {kind}\n@attribute c {{x,y}}\n@data\n1,z,x\n")
    with pytest.raises(StreamFileError, match=rf"^{path}:3: attribute 'when' is of type {kind.split()[0]}, which "
                       "cannot be streamed"):
        open_file(path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("empty.csv", "", "empty file"),
    ("blank.csv", "\n\n", "empty file"),
    ("header.csv", "a,b,label\n", "no data rows after the header"),
    ("empty.arff", "", "empty file"),
    ("header.arff", "@relation r\n@attribute a numeric\n@attribute c {x,y}\n@data\n", "no data rows after @data"),
    ("nodata.arff", "@relation r\n@attribute a numeric\n", "no @data section"),
])
def test_files_without_rows_are_refused(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StreamFileError, match=f"^{path}: {message}$"):
        open_file(path)


def test_a_gzip_file_cut_short_fails_with_the_line_it_stopped_after(tmp_path):
    import random

    rng = random.Random(3)
    text = "a,label\n" + "".join(f"{rng.random():.9f},{i % 2}\n" for i in range(20_000))
    packed = gzip.compress(text.encode())
    path = tmp_path / "s.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    source, decoder = open_file(path)
    with pytest.raises(StreamFileError, match=rf"^{path}: the gzip data ends early, after line (\d+) "):
        decode_all(source, decoder)


def test_a_target_that_is_not_a_column_is_named_with_the_closest(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("speed,label\n1,a\n")
    with pytest.raises(UnknownTarget, match=r"^'lable' is not a column of s\.csv \(did you mean label\?\); its "
                       "columns: speed, label$"):
        open_file(path, target="lable")
