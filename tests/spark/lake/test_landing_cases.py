"""Landing files as real exporters write them: each case is read correctly or fails ingest naming the file.

One day folder per case. For a case that is read, every physical line of its files (counted here, from the bytes)
is a header, a blank or a data line in ``ops/landing_files``; the data lines are the bronze rows; and bronze rows
= accepted (silver) + duplicates + quarantined in ``ops/reconciliation``, with the values and reasons expected.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from jobs.lake import clean, ingest
from jobs.sources import landing

HEADER = landing.HEADER
START = date(2024, 3, 1)


@dataclass(frozen=True)
class Case:
    day: date
    files: dict[str, bytes]
    accepted: dict[str, tuple[int, int, float]]  # transaction_id -> (customer_id, quantity, amount)
    headers: int
    blanks: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)


def _csv(*lines: str, end: str = "\n") -> bytes:
    return "".join(line + end for line in lines).encode("utf-8")


def _day(n: int) -> date:
    return date(START.year, START.month, START.day + n)


def _cases() -> dict[str, Case]:
    d = [_day(i).isoformat() for i in range(6)]
    return {
        "gzip": Case(
            _day(0),
            {
                "part-00000.csv.gz": gzip.compress(_csv(HEADER, f"g1,1,{d[0]},1,1.00", f"g2,2,{d[0]},2,2.00")),
                "part-00001.csv": _csv(HEADER, f"g3,3,{d[0]},3,3.00"),
            },
            {"g1": (1, 1, 1.0), "g2": (2, 2, 2.0), "g3": (3, 3, 3.0)},
            headers=2,
        ),
        "upper_case_extension": Case(
            _day(1),
            {
                "PART-00000.CSV": _csv(HEADER, f"u1,1,{d[1]},1,1.00"),
                "Part-00001.CSV.GZ": gzip.compress(_csv(HEADER, f"u2,2,{d[1]},2,2.00", f"u3,3,{d[1]},3,3.00")),
            },
            {"u1": (1, 1, 1.0), "u2": (2, 2, 2.0), "u3": (3, 3, 3.0)},
            headers=2,
        ),
        "repeated_header": Case(  # two exports concatenated: the second's header starts a new section
            _day(2),
            {
                "part-00000.csv": _csv(
                    HEADER,
                    f"h1,1,{d[2]},1,1.00",
                    f"h2,2,{d[2]},2,2.00",
                    HEADER,
                    f"h3,3,{d[2]},3,3.00",
                    "customer_id,transaction_id,quantity,amount,order_date",  # and a later one in another order
                    f"4,h4,4,4.00,{d[2]}",
                )
            },
            {"h1": (1, 1, 1.0), "h2": (2, 2, 2.0), "h3": (3, 3, 3.0), "h4": (4, 4, 4.0)},
            headers=3,
        ),
        "reordered_header": Case(
            _day(3),
            {
                "part-00000.csv": _csv("customer_id,amount,transaction_id,quantity,order_date", f"7,10.50,r1,2,{d[3]}"),
                "part-00001.csv": _csv(
                    "Amount , ORDER_DATE,Transaction_Id,quantity,customer_id", f"3.25,{d[3]},r2,1,8"
                ),
                # a header lacking a column is still a header: its rows are quarantined, not read as data lines
                "part-00002.csv": _csv("quantity,transaction_id,customer_id,order_date", f"1,r3,9,{d[3]}"),
            },
            {"r1": (7, 2, 10.5), "r2": (8, 1, 3.25)},
            headers=3,
            quarantined={landing.REASON_MISSING_COLUMN: 1},
        ),
        "rfc4180_quoting": Case(
            _day(4),
            {
                "part-00000.csv": _csv(
                    '"transaction_id","customer_id","order_date","quantity","amount"',
                    f'"q1","7","{d[4]}","2","10.50"',
                    f'"q,2",7,{d[4]},1,3.00',  # a quoted comma is part of the field
                    f'"q""3",7,{d[4]},1,"4.25"',  # a doubled quote is one quote
                    f'q4,7,{d[4]},1,"1,000.00"',  # one field "1,000.00": not a number, not a malformed line
                    f'"q5,7,{d[4]},1,1.00',  # an unterminated quote
                    f'q6,7,{d[4]},1,1.00,"extra"',  # one field too many
                    f'"q7\nbroken",7,{d[4]},1,1.00',  # a quoted line break: two lines, neither half misread
                ),
            },
            {"q1": (7, 2, 10.5), "q,2": (7, 1, 3.0), 'q"3': (7, 1, 4.25)},
            headers=1,
            quarantined={landing.REASON_BAD_AMOUNT: 1, landing.REASON_MALFORMED: 4},
        ),
        "blank_lines": Case(  # a byte-order mark, CRLF line ends, empty and whitespace-only lines, blank trailers
            _day(5),
            {
                "part-00000.csv": b"\xef\xbb\xbf"
                + _csv(HEADER, "", f"b1,1,{d[5]},1,1.00", "   ", "\t", f"b2,2,{d[5]},2,2.00", "", "", end="\r\n"),
                "part-00001.csv": _csv(HEADER, f"b3,3,{d[5]},3,3.00", " "),
            },
            {"b1": (1, 1, 1.0), "b2": (2, 2, 2.0), "b3": (3, 3, 3.0)},
            headers=2,
            blanks=6,
        ),
    }


CASES = _cases()


def physical_lines(path: Path) -> int:
    """Lines of a landing file counted from its bytes (gunzipped when its name says so), ends \\n, \\r\\n or \\r."""
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.name.lower().endswith(".gz") else data).decode("utf-8-sig")
    return len(re.findall(r"\r\n|\r|\n", text)) + (1 if text and not text.endswith(("\n", "\r")) else 0)


def _land(root: Path, day: date, files: dict[str, bytes]) -> Path:
    folder = landing.day_dir(root, day)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    landing.mark_complete(folder)
    return folder


def _table(spark, settings, table):
    return spark.read.format("delta").load(settings.table_path(*table))


@pytest.fixture(scope="module")
def lake(spark, module_settings):
    """Every readable case landed on its own day, then one ingest and one clean of the whole window."""
    for case in CASES.values():
        _land(module_settings.landing_root, case.day, case.files)
    end = max(case.day for case in CASES.values())
    ingest.ingest(spark, module_settings, START, end, run_id="r")
    clean.clean(spark, module_settings, START, end, run_id="c")
    return module_settings


@pytest.mark.parametrize("name", list(CASES))
def test_every_physical_line_is_accounted_for(spark, lake, name) -> None:
    case = CASES[name]
    folder = landing.day_dir(lake.landing_root, case.day)
    on_day = f"landing_date = '{case.day}'"
    files = {
        r.source_file.rsplit("/", 1)[1]: r
        for r in _table(spark, lake, ingest.LANDING_FILES_TABLE).where(on_day).collect()
    }
    assert set(files) == set(case.files)  # every file was read, none skipped
    for file_name, row in files.items():
        assert row.physical_lines == physical_lines(folder / file_name), file_name
        assert row.physical_lines == row.header_lines + row.blank_lines + row.data_lines, file_name
    assert sum(r.header_lines for r in files.values()) == case.headers
    assert sum(r.blank_lines for r in files.values()) == case.blanks

    bronze = _table(spark, lake, ingest.BRONZE_TABLE).where(on_day)
    bronze_rows = bronze.count()
    assert bronze_rows == sum(r.data_lines for r in files.values())
    assert {r.source_file.rsplit("/", 1)[1] for r in bronze.select("source_file").distinct().collect()} <= set(files)
    (recon,) = _table(spark, lake, clean.RECONCILIATION_TABLE).where(on_day).collect()
    assert recon.landed == bronze_rows == recon.accepted + recon.duplicates + recon.quarantined

    silver = {r.transaction_id: r for r in _table(spark, lake, clean.SILVER_TABLE).where(on_day).collect()}
    assert {tid: (r.customer_id, r.quantity, r.amount) for tid, r in silver.items()} == case.accepted
    assert all(r.order_date == case.day for r in silver.values())
    quarantine = _table(spark, lake, clean.QUARANTINE_TABLE).where(on_day).collect()
    assert Counter(r.reason for r in quarantine) == Counter(case.quarantined)
    assert (recon.accepted, recon.duplicates, recon.quarantined) == (
        len(case.accepted),
        0,
        sum(case.quarantined.values()),
    )


@pytest.mark.parametrize("stray", ["notes.txt", "part-00001.csv.zip", "part-00002.tsv", ".part-00003.csv.tmp"])
def test_a_file_ingest_does_not_read_fails_it_naming_the_file(spark, settings, stray) -> None:
    folder = _land(settings.landing_root, START, {"part-00000.csv": _csv(HEADER, f"s1,1,{START},1,1.00")})
    (folder / stray).write_bytes(b"s2,2,2024-03-01,2,2.00\n")
    with pytest.raises(landing.LandingFileError, match=re.escape(stray)):
        ingest.ingest(spark, settings, START, START, run_id="r")
    assert not Path(settings.table_path(*ingest.BRONZE_TABLE)).exists()


def test_spark_checksums_beside_the_files_are_not_data(spark, settings) -> None:
    folder = _land(settings.landing_root, START, {"part-00000.csv": _csv(HEADER, f"s1,1,{START},1,1.00")})
    (folder / ".part-00000.csv.crc").write_bytes(b"crc")
    (folder / "._SUCCESS.crc").write_bytes(b"crc")
    assert ingest.ingest(spark, settings, START, START, run_id="r") == 1


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("part-00001.csv.gz", _csv(HEADER, f"x1,1,{START},1,1.00"), "not gzip"),
        (
            "part-00001.CSV.GZ",
            gzip.compress(_csv(HEADER, *[f"x{i},1,{START},1,1.00" for i in range(500)]))[:-40],
            "EOF",
        ),
        ("part-00001.csv", b"transaction_id,customer_id,order_date,quantity,amount\nx1,1,2024-03-01,1,\xe9\n", "UTF-8"),
    ],
    ids=["gz-name-not-gzip", "truncated-gzip", "not-utf8"],
)
def test_a_file_that_cannot_be_read_fails_ingest_naming_it(spark, settings, name, data, says) -> None:
    _land(settings.landing_root, START, {"part-00000.csv": _csv(HEADER, f"s1,1,{START},1,1.00"), name: data})
    with pytest.raises(landing.LandingFileError, match=re.escape(name)) as failed:
        ingest.ingest(spark, settings, START, START, run_id="r")
    assert says in str(failed.value)
    assert not Path(settings.table_path(*ingest.BRONZE_TABLE)).exists()
