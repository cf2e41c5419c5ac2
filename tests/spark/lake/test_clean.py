"""Clean: typed silver, every rejected line quarantined with its reason, counts that reconcile exactly."""

from __future__ import annotations

from datetime import date

from jobs.lake import clean, ingest
from jobs.sources import cdnow, landing
from jobs.sources.generate import GeneratorConfig, generate


def _table(spark, settings, table):
    return spark.read.format("delta").load(settings.table_path(*table))


def test_hand_made_bad_lines_get_the_right_reason(spark, settings) -> None:
    day = date(2024, 3, 1)
    folder = landing.day_dir(settings.landing_root, day)
    good = "t1,7,2024-03-01,2,10.50"
    landing.write_atomic(
        folder / "part-00000.csv",
        [
            landing.HEADER,
            good,
            good,  # re-sent: duplicate
            "t2,7,2024-03-01,1,0.00",  # a free item is valid
            "t3,7,2024-03-01,2",  # malformed: a field short
            ",7,2024-03-01,1,1.00",  # malformed: no transaction id
            "t4,abc,2024-03-01,1,1.00",
            "t5,-3,2024-03-01,1,1.00",
            "t6,8,2024-02-30,1,1.00",  # not a date
            "t7,8,2024-03-02,1,1.00",  # after the landing day
            "t8,8,2024-03-01,0,1.00",
            f"t9,8,2024-03-01,{landing.MAX_QUANTITY + 1},1.00",
            "t10,8,2024-03-01,1,-5.00",
            f"t11,8,2024-03-01,1,{landing.MAX_AMOUNT * 10}",
            "t12,8,2024-03-01,1,NaN",
            "t14,8,1996-12-31,1,1.00",  # before the source's first date: the silver suite would fail it
        ],
    )
    landing.write_atomic(
        folder / "part-00001.csv", ["transaction_id,customer_id,order_date,quantity", "t13,9,2024-03-01,1"]
    )
    landing.write_atomic(folder / "part-00002.csv", [])  # an empty file
    (folder / "part-00002.csv").write_bytes(b"")
    landing.mark_complete(folder)

    assert ingest.ingest(spark, settings, day, day, run_id="r") == 16
    result = clean.clean(spark, settings, day, day, run_id="c")
    assert result.landed == 16 and result.accepted == 2 and result.duplicates == 1
    assert result.quarantined == {
        landing.REASON_MALFORMED: 2,
        landing.REASON_MISSING_COLUMN: 1,
        landing.REASON_BAD_CUSTOMER: 2,
        landing.REASON_BAD_DATE: 2,
        landing.REASON_FUTURE_DATE: 1,
        landing.REASON_BAD_QUANTITY: 2,
        landing.REASON_BAD_AMOUNT: 3,
    }
    silver = {r.transaction_id: r for r in _table(spark, settings, clean.SILVER_TABLE).collect()}
    assert set(silver) == {"t1", "t2"}
    assert (silver["t1"].customer_id, silver["t1"].order_date, silver["t1"].quantity, silver["t1"].amount) == (
        7,
        day,
        2,
        10.5,
    )
    quarantine = _table(spark, settings, clean.QUARANTINE_TABLE)
    by_line = {r.raw_line: r.reason for r in quarantine.collect()}
    assert by_line["t7,8,2024-03-02,1,1.00"] == landing.REASON_FUTURE_DATE
    assert by_line["t13,9,2024-03-01,1"] == landing.REASON_MISSING_COLUMN
    assert all(r.source_file.endswith(".csv") and r.clean_run_id == "c" for r in quarantine.collect())
    ops = _table(spark, settings, clean.RECONCILIATION_TABLE).collect()
    assert len(ops) == 1 and ops[0].landed == 16 and ops[0].quarantined_bad_amount == 3
    assert by_line["t14,8,1996-12-31,1,1.00"] == landing.REASON_BAD_DATE


def test_clean_and_the_silver_suite_agree_on_the_oldest_order_date() -> None:
    from jobs.config import load_model_config, source_first_date
    from jobs.quality import gate

    config = load_model_config("purchase_propensity")
    suites = {name: gate.load_suite(name) for name in gate.DATASETS}
    specs, _ = gate.plan(suites, config, date(1997, 3, 1), date(1997, 3, 1), [])
    (bound,) = [
        s.kwargs["min_value"]
        for s in specs["silver"]
        if s.type == "expect_column_values_to_be_between" and s.kwargs.get("column") == "order_date"
    ]
    assert bound == source_first_date(config.source.table).isoformat() == "1997-01-01"


def test_generator_corruptions_reconcile_with_its_manifest(spark, settings) -> None:
    config = GeneratorConfig(
        out=settings.landing_root, rows=6_000, customers=400, start=date(2024, 1, 1), days=6, seed=11, corrupt_rate=0.05
    )
    manifest = generate(config)
    end = date(2024, 1, 6)
    ingest.ingest(spark, settings, config.start, end, run_id="r")
    result = clean.clean(spark, settings, config.start, end, run_id="c")
    totals = manifest["totals"]
    assert result.landed == totals["rows"]
    assert result.accepted == totals["valid"]
    assert result.duplicates == totals["duplicates"]
    assert result.quarantined == {k: v for k, v in totals["quarantine"].items() if v}
    ops = {r.landing_date.isoformat(): r for r in _table(spark, settings, clean.RECONCILIATION_TABLE).collect()}
    for day, expected in manifest["days"].items():
        row = ops[day]
        assert (row.landed, row.accepted, row.duplicates) == (
            expected["rows"],
            expected["valid"],
            expected["duplicates"],
        )
        for reason, count in expected["quarantine"].items():
            assert row[f"quarantined_{reason}"] == count, (day, reason)


def test_rerun_leaves_same_tables_and_cross_day_resends_are_duplicates(spark, settings) -> None:
    frame = cdnow.read_cdnow()
    cdnow.replay(settings.landing_root, date(1997, 1, 1), date(1997, 1, 3), frame)
    # The source re-sends one of day 1's lines on day 3.
    day3 = landing.day_dir(settings.landing_root, date(1997, 1, 3)) / "part-00000.csv"
    day1_line = (
        (landing.day_dir(settings.landing_root, date(1997, 1, 1)) / "part-00000.csv").read_text().splitlines()[1]
    )
    day3.write_text(day3.read_text() + day1_line + "\n")
    ingest.ingest(spark, settings, date(1997, 1, 1), date(1997, 1, 3), run_id="r")
    clean.clean(spark, settings, date(1997, 1, 1), date(1997, 1, 2), run_id="c1")
    first = clean.clean(spark, settings, date(1997, 1, 3), date(1997, 1, 3), run_id="c2")
    snapshot = sorted(map(tuple, _table(spark, settings, clean.SILVER_TABLE).drop("ingest_run_id").collect()))
    again = clean.clean(spark, settings, date(1997, 1, 3), date(1997, 1, 3), run_id="c3")
    assert first == again and first.duplicates == 1
    assert sorted(map(tuple, _table(spark, settings, clean.SILVER_TABLE).drop("ingest_run_id").collect())) == snapshot
    silver = _table(spark, settings, clean.SILVER_TABLE)
    assert (
        silver.count()
        == silver.select("transaction_id").distinct().count()
        == frame[frame.order_date <= date(1997, 1, 3)].shape[0]
    )
