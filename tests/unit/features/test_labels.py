"""Labels without Spark: which as-of dates a run may label, once the horizon has passed in the data."""

from __future__ import annotations

from datetime import date, timedelta

from jobs.features import labels


def test_label_window_waits_for_the_horizon() -> None:
    first = date(1997, 1, 1)
    assert labels.label_window(date(1997, 3, 1), date(1997, 3, 1), 90, first) is None
    assert labels.label_window(date(1997, 4, 1), date(1997, 4, 1), 90, first) == (date(1997, 1, 1), date(1997, 1, 1))
    # A nightly run for data day d matures exactly as-of d - horizon.
    d = date(1998, 1, 10)
    assert labels.label_window(d, d, 90, first) == (d - timedelta(days=90), d - timedelta(days=90))
    # A backfill matures every as-of date from start - horizon.
    assert labels.label_window(date(1997, 6, 1), date(1997, 12, 31), 30, first) == (date(1997, 5, 2), date(1997, 12, 1))
