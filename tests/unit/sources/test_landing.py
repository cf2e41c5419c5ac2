"""The landing contract's file reader: every physical line is a header, a blank or a data line, in order."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from jobs.sources import landing

H = landing.HEADER


def _lines(path: Path) -> list[tuple[str, str, str]]:
    return list(landing.read_lines(path))


def test_lines_keep_their_order_and_the_header_in_force(tmp_path: Path) -> None:
    reordered = "customer_id,amount,transaction_id,quantity,order_date"
    path = tmp_path / "part-0.csv"
    path.write_bytes(f"\ufeff{H}\r\nt1,7,2024-03-01,2,10.50\r\n \r\n{reordered}\rt2\n\n".encode())
    assert _lines(path) == [
        (landing.LINE_HEADER, H, H),
        (landing.LINE_DATA, H, "t1,7,2024-03-01,2,10.50"),
        (landing.LINE_BLANK, H, " "),
        (landing.LINE_HEADER, reordered, reordered),
        (landing.LINE_DATA, reordered, "t2"),
        (landing.LINE_BLANK, reordered, ""),
    ]


def test_lines_before_any_header_have_none(tmp_path: Path) -> None:
    path = tmp_path / "part-0.csv"
    path.write_text("t1,7,2024-03-01,2,10.50\n")
    assert _lines(path) == [(landing.LINE_DATA, "", "t1,7,2024-03-01,2,10.50")]


@pytest.mark.parametrize("name", ["part-0.csv.gz", "PART-0.CSV.GZ", "part-0.csv"])
def test_gzip_is_read_by_its_magic_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(f"{H}\nt1,7,2024-03-01,2,10.50\n".encode()))
    assert [line for _, _, line in _lines(path)] == [H, "t1,7,2024-03-01,2,10.50"]


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("part-0.csv.gz", b"transaction_id\n", "not gzip"),
        ("part-0.csv.gz", gzip.compress(b"transaction_id\n" * 1000, mtime=0)[:-20], "EOFError"),
        ("part-0.csv", b"transaction_id\n\xe9\n", "not UTF-8"),
    ],
    ids=["gz-name-not-gzip", "truncated-gzip", "not-utf8"],  # stable ids: every xdist worker collects the same
)
def test_a_file_that_cannot_be_read_correctly_names_itself(tmp_path: Path, name: str, data: bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(landing.LandingFileError, match=str(path)) as failed:
        _lines(path)
    assert says in str(failed.value)


def test_an_empty_file_has_no_lines(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"")
    (tmp_path / "b.csv.gz").write_bytes(b"")
    assert _lines(tmp_path / "a.csv") == _lines(tmp_path / "b.csv.gz") == []


@pytest.mark.parametrize(
    ("line", "header"),
    [
        (H, True),
        ('"transaction_id","customer_id","order_date","quantity","amount"', True),
        ("Amount , ORDER_DATE,Transaction_Id,quantity,customer_id", True),
        ("transaction_id,customer_id,order_date,quantity", True),  # lacks a column: still a header
        (H + ",currency", True),
        ("t1,7,2024-03-01,2,10.50", False),
        ("t1,amount,quantity", False),  # a corrupt line with two column names is not a header
        ("transaction_id,transaction_id,customer_id,order_date", False),
        ("transaction_id,customer id,order_date,quantity", True),  # "customer id": a header still, lacking customer_id
    ],
)
def test_a_header_is_recognised_by_its_names_in_any_order(line: str, header: bool) -> None:
    assert landing.is_header(line) is header


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("a,b,,c", ["a", "b", "", "c"]),
        ('"a,b","c""d",e', ["a,b", 'c"d', "e"]),
        ('a,"b', None),  # unterminated quote
        ('a,"b"c', None),  # text after a closing quote
        ('a,b"c', None),  # a quote inside an unquoted field
        ('a, "b"', None),  # ... which a space before the quote makes it
        ('"x\ny",1', ["x\ny", "1"]),
        ('b",7,2024-03-01,1,1.00', None),  # the second half of a record broken by a quoted line break
        (None, None),
    ],
)
def test_parse_line_is_rfc4180(line: str | None, fields: list[str] | None) -> None:
    assert landing.parse_line(line) == fields


def test_data_files_accept_csv_and_csv_gz_in_any_case_and_nothing_else(tmp_path: Path) -> None:
    names = ["part-0.csv", "PART-1.CSV", "part-2.csv.gz", "Part-3.Csv.Gz"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    landing.mark_complete(tmp_path)
    (tmp_path / ".part-0.csv.crc").write_bytes(b"")  # Hadoop's checksum of a file that is there
    assert [p.name for p in landing.data_files(tmp_path)] == sorted(names)
    for stray in ("notes.txt", ".part-9.csv.crc", "_temporary", "part-4.csv.bz2"):
        entry = tmp_path / stray
        entry.mkdir() if stray == "_temporary" else entry.write_bytes(b"")
        with pytest.raises(landing.LandingFileError, match=stray):
            landing.data_files(tmp_path)
        entry.rmdir() if entry.is_dir() else entry.unlink()
