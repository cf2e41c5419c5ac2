"""Labels: bought within the horizon after as_of_date, written only once the horizon has passed in the data."""

from __future__ import annotations

from datetime import date

from jobs.features import labels


def test_labels_look_strictly_ahead_within_the_horizon(spark) -> None:
    keys = spark.createDataFrame(
        [(1, date(2024, 1, 1)), (1, date(2024, 1, 5)), (1, date(2024, 1, 10)), (2, date(2024, 1, 1))],
        "customer_id long, as_of_date date",
    )
    purchases = spark.createDataFrame(
        [(1, date(2024, 1, 1)), (1, date(2024, 1, 5)), (1, date(2024, 1, 15)), (2, date(2024, 1, 9))],
        "customer_id long, order_date date",
    )
    got = {(r.customer_id, r.as_of_date): r.label for r in labels.compute_labels(keys, purchases, 5, "r").collect()}
    assert got == {
        (1, date(2024, 1, 1)): 1,  # bought on 01-05: inside (01-01, 01-06]
        (1, date(2024, 1, 5)): 0,  # the purchase on 01-05 itself does not count; next is 01-15
        (1, date(2024, 1, 10)): 1,  # 01-15 is exactly the horizon's last day
        (2, date(2024, 1, 1)): 0,  # 01-09 is past the 5-day horizon
    }
