"""Spark + Delta work together locally: writes, MERGE, replaceWhere and time travel."""

from __future__ import annotations


def test_delta_round_trip_with_time_travel(spark, tmp_path) -> None:
    from delta.tables import DeltaTable

    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string").write.format("delta").save(path)
    updates = spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string")
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("u"), "t.id = u.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    current = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
    first = sorted(tuple(r) for r in spark.read.format("delta").option("versionAsOf", 0).load(path).collect())
    assert current == [(1, "a"), (2, "B"), (3, "c")]
    assert first == [(1, "a"), (2, "b")]
    assert [r.version for r in DeltaTable.forPath(spark, path).history().collect()] == [1, 0]


def test_replace_where_replaces_only_its_partition(spark, tmp_path) -> None:
    path = str(tmp_path / "p")
    rows = [("2024-01-01", 1), ("2024-01-02", 2)]
    spark.createDataFrame(rows, "d string, x int").write.format("delta").partitionBy("d").save(path)
    (
        spark.createDataFrame([("2024-01-02", 20)], "d string, x int")
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", "d = '2024-01-02'")
        .save(path)
    )
    assert sorted(tuple(r) for r in spark.read.format("delta").load(path).collect()) == [
        ("2024-01-01", 1),
        ("2024-01-02", 20),
    ]


def test_replace_window_counts_its_own_commit_when_an_optimize_lands_right_after(spark, tmp_path, monkeypatch) -> None:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrameWriter

    from jobs.spark import replace_window

    path = str(tmp_path / "t")
    frame = spark.createDataFrame([(d, i) for d in ("a", "b") for i in range(50)], "day string, n int")
    assert replace_window(frame, path, "day IN ('a', 'b')", "day") == 100

    save = DataFrameWriter.save

    def save_then_optimize(self, *args, **kwargs):
        save(self, *args, **kwargs)
        DeltaTable.forPath(spark, path).optimize().executeCompaction()  # another job's OPTIMIZE commits right after

    monkeypatch.setattr(DataFrameWriter, "save", save_then_optimize)
    again = spark.createDataFrame([("a", i) for i in range(7)], "day string, n int")
    assert replace_window(again, path, "day = 'a'", "day") == 7
    assert DeltaTable.forPath(spark, path).history(1).first()["operation"] == "OPTIMIZE"
    assert spark.read.format("delta").load(path).count() == 57
