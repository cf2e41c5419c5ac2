"""The benchmark history appends, and its README table and log-log plots are regenerated from it."""

from __future__ import annotations

import json

from bench import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(root, rows: int, spark: float, duckdb: float) -> dict:
    stages = {"spark.backfill": {"seconds": spark, "peak_gib": 1.5}, "duckdb.backfill": {"seconds": duckdb}}
    return report.record(
        "features-duckdb-synthetic",
        {"rows": rows},
        {"equal": True},
        rows=rows,
        stages=stages,
        ratios={"backfill spark/duckdb": round(spark / duckdb, 2)},
        root=root,
    )


def test_record_appends_and_keeps_earlier_lines(tmp_path) -> None:
    _record(tmp_path, 100_000, 12.0, 2.0)
    first = (tmp_path / report.HISTORY).read_text()
    _record(tmp_path, 1_000_000, 60.0, 9.0)
    text = (tmp_path / report.HISTORY).read_text()
    assert text.startswith(first)
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["rows"] for line in lines] == [100_000, 1_000_000]
    entry = lines[0]
    assert entry["benchmark"] == "features-duckdb-synthetic"
    assert entry["stages"]["spark.backfill"] == {"seconds": 12.0, "peak_gib": 1.5}
    assert entry["ratios"] == {"backfill spark/duckdb": 6.0}
    assert {"timestamp", "commit", "dirty", "params", "result"} <= set(entry)
    assert set(report.MACHINE_COLUMNS) <= set(entry["machine"])
    assert entry["machine"]["cores"] >= 1 and entry["machine"]["duckdb"]


def test_readme_shows_the_newest_result_per_size_and_the_machine(tmp_path) -> None:
    _record(tmp_path, 100_000, 12.0, 2.0)
    _record(tmp_path, 100_000, 11.0, 1.0)
    _record(tmp_path, 1_000_000, 60.0, 9.0)
    readme = (tmp_path / "README.md").read_text()
    results = readme.split("## Machines")[0]
    rows = [line for line in results.splitlines() if line.startswith("| features-duckdb-synthetic")]
    assert len(rows) == 2
    assert "spark.backfill 11.00" in rows[0] and "backfill spark/duckdb 11.00" in rows[0]
    assert "100,000" in rows[0] and "1,000,000" in rows[1]
    assert "## Machines" in readme and "| A |" in readme
    assert "3 results" in readme
    assert "![features-duckdb-synthetic](features-duckdb-synthetic.png)" in readme


def test_growth_reads_the_slope_between_the_smallest_and_largest_size(tmp_path) -> None:
    _record(tmp_path, 100_000, 12.0, 2.0)
    _record(tmp_path, 1_000_000, 60.0, 20.0)
    _record(tmp_path, 10_000_000, 1200.0, 200.0)
    grown = {g["stage"]: g for g in report.growth(report.newest(report.history(tmp_path)))}
    # 12 s -> 1200 s over 100x the rows is slope 1.0; the middle size does not count (only the ends)
    assert grown["spark.backfill"]["rows"] == (100_000, 10_000_000)
    assert grown["spark.backfill"]["slope"] == 1.0 and grown["spark.backfill"]["reading"] == "linear"
    _record(tmp_path, 10_000_000, 12000.0, 200.0)
    grown = {g["stage"]: g for g in report.growth(report.newest(report.history(tmp_path)))}
    assert grown["spark.backfill"]["slope"] == 1.5 and grown["spark.backfill"]["reading"] == "super-linear"
    assert grown["duckdb.backfill"]["slope"] == 1.0
    _record(tmp_path, 10_000_000, 24.0, 20.0)
    grown = {g["stage"]: g for g in report.growth(report.newest(report.history(tmp_path)))}
    assert grown["spark.backfill"]["reading"] == "sub-linear"
    growth_section = (tmp_path / "README.md").read_text().split("## Growth with rows")[1]
    row = "| features-duckdb-synthetic | spark.backfill | 100,000 → 10,000,000 | 12.00 → 24.00 | 0.15 |"
    assert row in growth_section


def test_plot_is_a_real_png(tmp_path) -> None:
    _record(tmp_path, 100_000, 12.0, 2.0)
    _record(tmp_path, 1_000_000, 60.0, 9.0)
    data = (tmp_path / "features-duckdb-synthetic.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def test_render_from_the_cli_rewrites_the_views(tmp_path) -> None:
    _record(tmp_path, 100_000, 12.0, 2.0)
    (tmp_path / "README.md").unlink()
    (tmp_path / "features-duckdb-synthetic.png").unlink()
    assert report.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").exists()
    assert (tmp_path / "features-duckdb-synthetic.png").read_bytes().startswith(PNG_MAGIC)


def test_the_features_benchmark_records_its_stages(tmp_path) -> None:
    from bench import features as bench_features

    result = {  # what bench.features printed for 10M synthetic transactions (trimmed)
        "source": "synthetic",
        "silver_rows": 10_000_000,
        "backfill": {"rows": 35_925_299, "seconds": 151.8, "mode": "backfill"},
        "day50": {"as_of": "1997-02-19", "seconds": 7.37, "mode": "increment", "equals_backfill": True},
        "day500": {"as_of": "1998-05-16", "seconds": 8.74, "mode": "increment", "equals_backfill": True},
        "ratio_day500_day50": 1.19,
    }
    entry = bench_features.record(result, {"source": "synthetic", "rows": 10_000_000}, root=tmp_path)
    assert entry["benchmark"] == "features-synthetic" and entry["rows"] == 10_000_000
    assert entry["stages"]["spark.backfill"] == {"seconds": 151.8}
    assert entry["ratios"] == {"day500/day50": 1.19}
    assert (tmp_path / "features-synthetic.png").read_bytes().startswith(PNG_MAGIC)
