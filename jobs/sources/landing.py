"""The landing zone contract: how a source system drops transaction files for the platform to ingest.

Layout: ``<landing_root>/transactions/date=YYYY-MM-DD/<name>.csv`` (or ``.csv.gz``) plus a ``_SUCCESS`` marker
written last. Every file is UTF-8 CSV (RFC 4180 quoting) that starts with a header line naming its columns, in any
order; a header repeated further down (exports concatenated) starts a new section under that header. A day folder
with a ``_SUCCESS`` marker and header-only files means "the source had no purchases that day"; a day folder without
the marker has not fully arrived.

Every physical line of a file is exactly one of: a header line, a blank (empty or whitespace-only) line, or a data
line; only data lines land in bronze, the other two are counted (:func:`read_lines`). A file ingest cannot read
correctly (a name it does not accept, a broken gzip stream, bytes that are not UTF-8) is a
:class:`LandingFileError` that names it: the night fails instead of losing or misreading it.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

COLUMNS: tuple[str, ...] = ("transaction_id", "customer_id", "order_date", "quantity", "amount")
HEADER = ",".join(COLUMNS)
SUCCESS_MARKER = "_SUCCESS"
DATASET = "transactions"
# Names ingest reads, matched case-insensitively (exporters write PART-0.CSV.GZ as often as part-0.csv.gz).
DATA_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz")
GZIP_MAGIC = b"\x1f\x8b"
# What each physical line of a landing file is.
LINE_DATA = "data"
LINE_HEADER = "header"
LINE_BLANK = "blank"
_RFC4180_LINE = re.compile(r'(?:"(?:[^"]|"")*"|[^",]*)(?:,(?:"(?:[^"]|"")*"|[^",]*))*')
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_ .-]*")  # a name, not a number or a date
_NAMES_A_COLUMN = re.compile("|".join(COLUMNS), re.IGNORECASE)  # cheap pre-check before parsing a header


class LandingFileError(ValueError):
    """A landing file (or folder entry) that ingest cannot read correctly; the message starts with its path."""


def day_dir(landing_root: Path | str, day: date) -> Path:
    """Folder that holds one day's drop."""
    return Path(landing_root) / DATASET / f"date={day.isoformat()}"


def write_atomic(path: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` (without newlines) to ``path`` via a temp file and rename; return the line count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def data_files(folder: Path) -> list[Path]:
    """The files ingest reads in a day folder, sorted; any other entry is a :class:`LandingFileError` naming it.

    Besides the data files only the ``_SUCCESS`` marker and Hadoop's checksum sidecars (``.<file>.crc`` next to
    ``<file>``, written by Spark and Hadoop exporters) may be there; a stray file (``notes.txt``, ``part-0.tsv``, a
    ``.zip``, a writer's leftover temp file, a sub-folder) would otherwise be data nobody reads.
    """
    entries = sorted(folder.iterdir())
    names = {entry.name for entry in entries}
    files, unknown = [], []
    for entry in entries:
        name = entry.name
        if name == SUCCESS_MARKER or (name.startswith(".") and name.endswith(".crc") and name[1:-4] in names):
            continue
        readable = entry.is_file() and not name.startswith((".", "_"))
        (files if readable and name.lower().endswith(DATA_SUFFIXES) else unknown).append(entry)
    if unknown:
        raise LandingFileError(
            f"{unknown[0]}: not a landing data file ({', '.join(e.name for e in unknown)} in {folder}); a day folder "
            f"holds only *.csv / *.csv.gz files (any case) and {SUCCESS_MARKER}"
        )
    return files


def header_names(fields: list[str]) -> list[str]:
    """Column names as a header spells them, normalised for lookup (trimmed, lower case)."""
    return [field.strip().lower() for field in fields]


def parse_line(line: str | None) -> list[str] | None:
    """The fields of one CSV line (RFC 4180: quoted fields, quoted commas, doubled quotes); None if it is not valid
    CSV on its own: an unterminated quote, text after a closing quote, or a quote inside an unquoted field (which is
    also what each half of a record broken by a quoted line break looks like, so neither half is misread)."""
    if line is None or ('"' in line and not _RFC4180_LINE.fullmatch(line)):
        return None
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None


def is_header(line: str) -> bool:
    """True for a header line: distinct column-name-like fields, most of the contract's columns among them (in any
    order, any case). Data lines carry ids, numbers and dates, never three column names.
    """
    if not _NAMES_A_COLUMN.search(line):
        return False
    fields = parse_line(line)
    if not fields:
        return False
    names = header_names(fields)
    return (
        all(_IDENTIFIER.fullmatch(name) for name in names)
        and len(set(names)) == len(names)
        and len(set(names) & set(COLUMNS)) > len(COLUMNS) // 2
    )


def read_lines(path: Path) -> Iterator[tuple[str, str, str]]:
    """``(kind, header, line)`` for every physical line of a landing file, in order.

    ``kind`` is ``LINE_HEADER``, ``LINE_BLANK`` or ``LINE_DATA``; ``header`` is the header line in force (the latest
    one above; "" before any). Gzip is recognised by its magic bytes, so ``.csv.gz`` in any case is read, and a
    ``.gz`` name that is not gzip fails. Lines end at ``\n``, ``\r\n`` or ``\r`` (as Hadoop's line reader); a UTF-8
    byte-order mark is dropped. Fields are not split here: the clean stage parses them with a CSV parser.
    """
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if path.name.lower().endswith(".gz") and not gzipped and path.stat().st_size > 0:
                raise LandingFileError(f"{path}: named .gz but not gzip-compressed")
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline=None)
            header = ""
            for line in text:
                line = line[:-1] if line.endswith("\n") else line
                if not line.strip():
                    yield LINE_BLANK, header, line
                elif is_header(line):
                    header = line
                    yield LINE_HEADER, header, line
                else:
                    yield LINE_DATA, header, line
    except LandingFileError:
        raise
    except UnicodeDecodeError as exc:
        raise LandingFileError(f"{path}: not UTF-8 text ({exc})") from exc
    except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise LandingFileError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc


def mark_complete(folder: Path) -> None:
    """Write the ``_SUCCESS`` marker that tells ingest the day's drop is complete."""
    write_atomic(folder / SUCCESS_MARKER, [])


def is_complete(folder: Path) -> bool:
    """True when the day's drop carries its ``_SUCCESS`` marker."""
    return (folder / SUCCESS_MARKER).exists()


# Quarantine reason codes shared by the clean stage and the synthetic generator's manifest.
REASON_MALFORMED = "malformed_line"  # wrong field count or unparsable line
REASON_MISSING_COLUMN = "missing_column"  # the file's header lacks a required column
REASON_BAD_CUSTOMER = "bad_customer_id"  # blank, non-numeric or non-positive customer id
REASON_BAD_DATE = "bad_date"  # order_date not a yyyy-mm-dd date, or before the source's first date
REASON_FUTURE_DATE = "future_date"  # order_date after the day the file landed
REASON_BAD_QUANTITY = "bad_quantity"  # quantity not a positive integer or above MAX_QUANTITY
REASON_BAD_AMOUNT = "bad_amount"  # amount negative, not a number, or above MAX_AMOUNT
REASONS: tuple[str, ...] = (
    REASON_MALFORMED,
    REASON_MISSING_COLUMN,
    REASON_BAD_CUSTOMER,
    REASON_BAD_DATE,
    REASON_FUTURE_DATE,
    REASON_BAD_QUANTITY,
    REASON_BAD_AMOUNT,
)
MAX_QUANTITY = 1_000
MAX_AMOUNT = 100_000.0
