"""The real CDNOW transactions: a typed reader and a replay that lands them night by night.

CDNOW_master.txt ships inside the ``lifetimes`` distribution; it is read as a data file (``lifetimes`` itself
is never imported: it needs the removed ``pkg_resources``).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import cli
from jobs.settings import load
from jobs.sources import landing

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FIRST_DAY = date(1997, 1, 1)
LAST_DAY = date(1998, 6, 30)
EXPECTED_ROWS = 69_659
EXPECTED_CUSTOMERS = 23_570


def cdnow_path() -> Path:
    """Location of CDNOW_master.txt inside the installed ``lifetimes`` distribution (not imported)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'lifetimes' distribution is not installed; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.exists():
        raise FileNotFoundError(f"CDNOW_master.txt not found at {path}")
    return path


def read_cdnow(path: Path | None = None) -> pd.DataFrame:
    """Parse CDNOW into typed transactions: transaction_id, customer_id, order_date, quantity, amount.

    The file has no transaction id; ``cdnow-<line>`` (1-based data line) is stable and unique, and it keeps the
    215 legitimately repeated purchases (same customer, day, quantity and value) apart from re-sent rows.
    """
    import pandas as pd

    frame = pd.read_csv(
        path or cdnow_path(),
        sep=r"\s+",
        skiprows=1,
        header=None,
        names=["customer_id", "yyyymmdd", "quantity", "amount"],
        dtype={"customer_id": "int64", "yyyymmdd": "string", "quantity": "int64", "amount": "float64"},
    )
    frame.insert(0, "transaction_id", [f"cdnow-{i:06d}" for i in range(1, len(frame) + 1)])
    frame["order_date"] = pd.to_datetime(frame.pop("yyyymmdd"), format="%Y%m%d").dt.date
    return frame[list(landing.COLUMNS)]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay wrote."""

    days: int
    rows: int
    empty_days: int


def replay(landing_root: Path, start: date, end: date, frame: pd.DataFrame | None = None) -> ReplayResult:
    """Write each CDNOW day in [start, end] as a landing folder; re-running rewrites identical files.

    A day without purchases still gets a header-only file and ``_SUCCESS``: the source reported "nothing
    today", which downstream tells apart from "not arrived yet" (no folder or no marker).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    frame = read_cdnow() if frame is None else frame
    window = frame[(frame["order_date"] >= start) & (frame["order_date"] <= end)]
    by_day = {day: rows for day, rows in window.groupby("order_date", sort=True)}
    total_days = (end - start).days + 1
    rows_written = empty = 0
    for offset in range(total_days):
        day = start + timedelta(days=offset)
        rows = by_day.get(day)
        lines = [landing.HEADER]
        if rows is None:
            empty += 1
        else:
            lines += [
                f"{t},{c},{d.isoformat()},{q},{a:.2f}" for t, c, d, q, a in rows.itertuples(index=False, name=None)
            ]
        folder = landing.day_dir(landing_root, day)
        rows_written += landing.write_atomic(folder / "part-00000.csv", lines) - 1
        landing.mark_complete(folder)
        if total_days >= 20 and (offset + 1) % max(1, total_days // 10) == 0:
            log.info("replayed %d/%d days (%d rows so far)", offset + 1, total_days, rows_written)
    return ReplayResult(days=total_days, rows=rows_written, empty_days=empty)


def _date(text: str) -> date:
    return date.fromisoformat(text)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``replay --start D --end D [--landing DIR]`` lands CDNOW days as a source system would."""
    parser = cli.parser("jobs.sources.cdnow", "CDNOW reader and replay")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("replay", help="write CDNOW days into the landing zone")
    rep.add_argument("--start", type=_date, default=FIRST_DAY)
    rep.add_argument("--end", type=_date, default=LAST_DAY)
    rep.add_argument("--landing", type=Path, default=None, help="landing root (default: settings)")
    sub.add_parser("summary", help="print the source file's row, customer and day counts")
    args = parser.parse_args(argv)
    cli.setup_logging()
    if args.command == "summary":
        frame = read_cdnow()
        print(
            f"CDNOW {cdnow_path()}: {len(frame)} rows, {frame['customer_id'].nunique()} customers, "
            f"{frame['order_date'].nunique()} days {frame['order_date'].min()}..{frame['order_date'].max()}"
        )
        return 0
    landing_root = args.landing or load().landing_root
    result = replay(landing_root, args.start, args.end)
    print(
        f"replayed {args.start}..{args.end} into {landing_root}: {result.days} days, "
        f"{result.rows} rows, {result.empty_days} days without purchases"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
