"""The landing zone contract: how a source system drops transaction files for the platform to ingest.

Layout: ``<landing_root>/transactions/date=YYYY-MM-DD/part-*.csv`` plus a ``_SUCCESS`` marker written last.
Every file is CSV with a header line of ``COLUMNS``. A day folder with a ``_SUCCESS`` marker and header-only
files means "the source had no purchases that day"; a day folder without the marker has not fully arrived.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path

COLUMNS: tuple[str, ...] = ("transaction_id", "customer_id", "order_date", "quantity", "amount")
HEADER = ",".join(COLUMNS)
SUCCESS_MARKER = "_SUCCESS"
DATASET = "transactions"


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
REASON_BAD_DATE = "bad_date"  # order_date not a yyyy-mm-dd date
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
