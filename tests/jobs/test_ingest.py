"""Ingest: landing -> bronze keeps every line with lineage, and re-runs replace rather than duplicate."""

from __future__ import annotations

from datetime import date

import pytest

from jobs import cdnow, ingest, landing

pytestmark = pytest.mark.slow


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
