"""Ingest: landing -> bronze keeps every line with lineage, and re-runs replace rather than duplicate."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.lake import ingest
from jobs.sources import cdnow, landing


def _bronze(spark, settings):
    return spark.read.format("delta").load(settings.table_path(*ingest.BRONZE_TABLE))


def test_bronze_holds_every_landed_line_and_reruns_do_not_duplicate(spark, settings) -> None:
    start, end = date(1997, 1, 1), date(1997, 1, 5)
    landed = cdnow.replay(settings.landing_root, start, end).rows
    assert ingest.ingest(spark, settings, start, end, run_id="r1") == landed
    assert ingest.ingest(spark, settings, date(1997, 1, 3), date(1997, 1, 3), run_id="r2") > 0
    bronze = _bronze(spark, settings)
    assert bronze.count() == landed
    assert bronze.select("raw_line", "source_file").distinct().count() == landed
    runs = {
        r.landing_date.isoformat(): r.ingest_run_id
        for r in bronze.select("landing_date", "ingest_run_id").distinct().collect()
    }
    assert runs["1997-01-03"] == "r2" and runs["1997-01-02"] == "r1"
    row = bronze.filter("raw_line LIKE 'cdnow-000001,%'").first()
    assert row.header == landing.HEADER and row.landing_date == date(1997, 1, 1)
    assert row.source_file.endswith("date=1997-01-01/part-00000.csv")


def test_unfinished_day_fails_loudly(spark, settings) -> None:
    cdnow.replay(settings.landing_root, date(1997, 1, 1), date(1997, 1, 2))
    (landing.day_dir(settings.landing_root, date(1997, 1, 2)) / landing.SUCCESS_MARKER).unlink()
    with pytest.raises(FileNotFoundError, match="not complete"):
        ingest.ingest(spark, settings, date(1997, 1, 1), date(1997, 1, 2), run_id="r")


def test_a_day_without_purchases_lands_and_cleans_as_zero_rows(spark, settings) -> None:
    from jobs.lake import clean

    cdnow.replay(settings.landing_root, date(1997, 1, 1), date(1997, 1, 1))
    empty = date(1997, 1, 2)
    folder = landing.day_dir(settings.landing_root, empty)
    landing.write_atomic(folder / "part-00000.csv", [landing.HEADER])  # the source's "no purchases today"
    landing.mark_complete(folder)
    landed = ingest.ingest(spark, settings, date(1997, 1, 1), date(1997, 1, 1), run_id="r1")
    assert clean.clean(spark, settings, date(1997, 1, 1), date(1997, 1, 1), "c1").accepted == landed > 0
    for attempt in ("first", "re-run"):  # a re-run commits nothing new; the count must not be the last commit's
        assert ingest.ingest(spark, settings, empty, empty, run_id=f"r-{attempt}") == 0
        result = clean.clean(spark, settings, empty, empty, f"c-{attempt}")
        assert (result.landed, result.accepted, result.quarantined) == (0, 0, {})
    silver = spark.read.format("delta").load(settings.table_path(*clean.SILVER_TABLE))
    assert silver.count() == landed and _bronze(spark, settings).count() == landed
    # The empty day is on the record as 0 landed (for the volume gate), once, from the latest run.
    counts = spark.read.format("delta").load(settings.table_path(*clean.RECONCILIATION_TABLE))
    day = [r.asDict() for r in counts.where(f"landing_date = '{empty}'").collect()]
    assert [(r["landed"], r["accepted"], r["quarantined"], r["run_id"]) for r in day] == [(0, 0, 0, "c-re-run")]
