"""The real CDNOW data: typed reader and the night-by-night replay into the landing zone."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from jobs.sources import cdnow, landing


def _landed_lines(root: Path) -> dict[str, int]:
    counts = {}
    for folder in sorted((root / landing.DATASET).iterdir()):
        lines = []
        for f in sorted(folder.glob("*.csv")):
            text = f.read_text().splitlines()
            assert text[0] == landing.HEADER
            lines += text[1:]
        counts[folder.name.removeprefix("date=")] = len(lines)
    return counts


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            digest.update(str(f.relative_to(root)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def test_reader_parses_typed_transactions() -> None:
    frame = cdnow.read_cdnow()
    assert len(frame) == cdnow.EXPECTED_ROWS == 69_659
    assert frame["customer_id"].nunique() == cdnow.EXPECTED_CUSTOMERS == 23_570
    assert frame["order_date"].min() == date(1997, 1, 1)
    assert frame["order_date"].max() == date(1998, 6, 30)
    assert list(frame.columns) == list(landing.COLUMNS)
    assert str(frame["customer_id"].dtype) == "int64" and str(frame["quantity"].dtype) == "int64"
    assert frame["transaction_id"].is_unique
    first = frame.iloc[0]
    assert (first.customer_id, first.order_date, first.quantity, first.amount) == (1, date(1997, 1, 1), 1, 11.77)
    # Zero-value purchases exist in the real data (promotions); they are valid, not corrupt.
    assert (frame["amount"] == 0).sum() == 80 and (frame["amount"] >= 0).all()


def test_reader_does_not_import_lifetimes() -> None:
    import sys

    cdnow.read_cdnow()
    assert "lifetimes" not in sys.modules


def test_full_replay_lands_every_row_exactly_once(tmp_path: Path) -> None:
    result = cdnow.replay(tmp_path, cdnow.FIRST_DAY, cdnow.LAST_DAY)
    counts = _landed_lines(tmp_path)
    assert result.rows == sum(counts.values()) == 69_659
    assert result.days == len(counts) == 546
    assert min(counts) == "1997-01-01" and max(counts) == "1998-06-30"
    assert all(landing.is_complete(landing.day_dir(tmp_path, date.fromisoformat(d))) for d in counts)
    ids = [
        line.split(",")[0]
        for f in (tmp_path / landing.DATASET).rglob("*.csv")
        for line in f.read_text().splitlines()[1:]
    ]
    assert len(ids) == len(set(ids)) == 69_659


def test_replay_is_idempotent(tmp_path: Path) -> None:
    frame = cdnow.read_cdnow()
    cdnow.replay(tmp_path, date(1997, 3, 1), date(1997, 3, 10), frame)
    before = _tree_digest(tmp_path)
    again = cdnow.replay(tmp_path, date(1997, 3, 1), date(1997, 3, 10), frame)
    assert _tree_digest(tmp_path) == before
    assert again.rows == sum(_landed_lines(tmp_path).values())


def test_day_without_purchases_lands_header_only_with_marker(tmp_path: Path) -> None:
    result = cdnow.replay(tmp_path, date(1998, 6, 30), date(1998, 7, 2))
    assert result.days == 3 and result.empty_days == 2
    empty = landing.day_dir(tmp_path, date(1998, 7, 1))
    assert landing.is_complete(empty)
    assert (empty / "part-00000.csv").read_text() == landing.HEADER + "\n"


def test_replay_cli_prints_counts(tmp_path: Path, capsys) -> None:
    rc = cdnow.main(["replay", "--start", "1997-01-01", "--end", "1997-01-03", "--landing", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    expected = sum(_landed_lines(tmp_path).values())
    assert f"3 days, {expected} rows, 0 days without purchases" in out
