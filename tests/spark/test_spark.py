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
