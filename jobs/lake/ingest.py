"""Ingest: landing files of a date window -> bronze Delta (every data line, lossless, with lineage).

Bronze keeps each data line exactly as it arrived plus the header line it falls under, so the clean stage can type
and judge it later and nothing is lost here. Every physical line of a landing file is a header, a blank or a data
line (:func:`jobs.sources.landing.read_lines`); ``ops/landing_files`` records, per file, how many of each it held,
so ``physical lines = header lines + blank lines + bronze rows`` for every file. A file ingest cannot read correctly
fails the whole window, naming the file, before anything is written. A window is written with replaceWhere on
``landing_date``: re-running a date replaces that date and never duplicates it.

The files are read by Python tasks on the executors (gzip by magic bytes, any name case, a header repeated or
reordered anywhere in a file), spread over as many tasks as their size needs: on Spark, so it scales with the
cluster, and with the line order of each file kept, which a header in force depends on.
"""

from __future__ import annotations

import heapq
import logging
import os
import re
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import cli
from jobs.settings import Settings
from jobs.sources import landing
from jobs.spark import default_parallelism, replace_window, run_job

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

BRONZE_TABLE = ("bronze", "transactions")
LANDING_FILES_TABLE = ("ops", "landing_files")
LINES_SCHEMA = "landing_date date, source_file string, kind string, header string, raw_line string"
BRONZE_COLUMNS = ("landing_date", "source_file", "header", "raw_line")
LANDING_FILES_SCHEMA = (
    "landing_date date, source_file string, compression string, bytes long, physical_lines long, "
    "header_lines long, blank_lines long, data_lines long, ingest_run_id string"
)
# One read task per this many (uncompressed) bytes of landing files; a gzip file counts as GZIP_RATIO times its size.
TASK_BYTES = 64 << 20
GZIP_RATIO = 5
BATCH_LINES = 32_768
_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})$")


def day_folders(landing_root: Path, start: date, end: date) -> list[Path]:
    """Landing folders for [start, end]; a missing or unfinished day is an error, not a silent gap."""
    folders, missing = [], []
    day = start
    while day <= end:
        folder = landing.day_dir(landing_root, day)
        (folders if landing.is_complete(folder) else missing).append(folder)
        day += timedelta(days=1)
    if missing:
        names = ", ".join(f.name for f in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise FileNotFoundError(f"{len(missing)} landing day(s) not complete (no {landing.SUCCESS_MARKER}): {names}")
    return folders


def landing_files(folders: list[Path]) -> list[tuple[Path, date]]:
    """Every data file of ``folders`` with its landing date; a folder entry ingest would not read is an error."""
    files = []
    for folder in folders:
        match = _DAY.search(folder.name)
        if match is None:
            raise landing.LandingFileError(f"{folder}: not a landing day folder (date=YYYY-MM-DD)")
        day = date.fromisoformat(match.group(1))
        files += [(path, day) for path in landing.data_files(folder)]
    return files


def source_uri(path: Path) -> str:
    """How bronze names a file (the form Spark's file sources report)."""
    return f"file:{os.path.abspath(path)}"


def _weight(path: Path) -> int:
    size = path.stat().st_size
    return size * GZIP_RATIO if path.name.lower().endswith(".gz") else size


def read_tasks(files: list[tuple[Path, date]], parallelism: int) -> list[list[tuple[str, str, date]]]:
    """Files spread over read tasks by size (largest first onto the lightest task): ``(path, uri, date)`` each."""
    weights = [_weight(path) for path, _ in files]
    tasks = min(len(files), max(1, -(-sum(weights) // TASK_BYTES)))
    if tasks > 1:
        tasks = min(len(files), max(tasks, parallelism))
    heap = [(0, i) for i in range(tasks)]
    out: list[list[tuple[str, str, date]]] = [[] for _ in range(tasks)]
    for index in sorted(range(len(files)), key=lambda i: -weights[i]):
        load, task = heapq.heappop(heap)
        path, day = files[index]
        out[task].append((str(path), source_uri(path), day))
        heapq.heappush(heap, (load + weights[index], task))
    for task in out:
        task.sort(key=lambda f: (f[2], f[1]))
    return out


def _read_task_files(tasks: list[list[tuple[str, str, date]]], batches: Iterator[pa.RecordBatch]):
    """mapInArrow body: every line (with its kind and header in force) of each file of the tasks in ``batches``."""
    import pyarrow as pa

    from jobs.sources import landing as contract

    schema = pa.schema(
        [
            ("landing_date", pa.date32()),
            ("source_file", pa.string()),
            ("kind", pa.string()),
            ("header", pa.string()),
            ("raw_line", pa.string()),
        ]
    )

    def batch(day: date, uri: str, kinds: list, headers: list, lines: list) -> pa.RecordBatch:
        n = len(lines)
        columns = [pa.array([day] * n, pa.date32()), pa.array([uri] * n, pa.string())]
        return pa.RecordBatch.from_arrays(
            [*columns, pa.array(kinds), pa.array(headers), pa.array(lines)], schema=schema
        )

    for ids in batches:
        for task in ids.column(0).to_pylist():
            for path, uri, day in tasks[task]:
                kinds: list[str] = []
                headers: list[str] = []
                lines: list[str] = []
                for kind, header, line in contract.read_lines(Path(path)):
                    kinds.append(kind)
                    headers.append(header)
                    lines.append(line)
                    if len(lines) >= BATCH_LINES:
                        yield batch(day, uri, kinds, headers, lines)
                        kinds, headers, lines = [], [], []
                if lines:
                    yield batch(day, uri, kinds, headers, lines)


def read_landing(spark: SparkSession, files: list[tuple[Path, date]]) -> DataFrame:
    """Every physical line of ``files``: landing_date, source_file, kind (header, blank, data), header, raw_line."""
    if not files:
        return spark.createDataFrame([], LINES_SCHEMA)
    tasks = read_tasks(files, default_parallelism(spark))
    return spark.range(0, len(tasks), 1, len(tasks)).mapInArrow(partial(_read_task_files, tasks), LINES_SCHEMA)


def to_bronze(lines: DataFrame, run_id: str) -> DataFrame:
    """Data lines only, with lineage (the pipeline run that ingested the line)."""
    from pyspark.sql import functions as F

    return lines.where(F.col("kind") == landing.LINE_DATA).select(*BRONZE_COLUMNS, F.lit(run_id).alias("ingest_run_id"))


def _landing_error(exc: Exception) -> landing.LandingFileError | None:
    """The LandingFileError a read task raised, out of the Spark error that carries it."""
    match = re.search(r"LandingFileError: (.+)", str(exc))
    return landing.LandingFileError(match.group(1).strip()) if match else None


def file_counts(spark: SparkSession, files: list[tuple[Path, date]], lines: DataFrame, run_id: str) -> list[dict]:
    """Per file: its lines by kind (every file, an empty one with zeros); a file ingest cannot read raises."""
    try:
        counted = lines.groupBy("source_file", "kind").count().collect()
    except Exception as exc:
        error = _landing_error(exc)
        if error is None:
            raise
        raise error from exc
    by_file: dict[str, dict[str, int]] = {}
    for row in counted:
        by_file.setdefault(row["source_file"], {})[row["kind"]] = row["count"]
    rows = []
    for path, day in files:
        uri = source_uri(path)
        kinds = by_file.get(uri, {})
        with path.open("rb") as handle:
            gzipped = handle.read(2) == landing.GZIP_MAGIC
        rows.append(
            {
                "landing_date": day,
                "source_file": uri,
                "compression": "gzip" if gzipped else "none",
                "bytes": path.stat().st_size,
                "physical_lines": sum(kinds.values()),
                "header_lines": kinds.get(landing.LINE_HEADER, 0),
                "blank_lines": kinds.get(landing.LINE_BLANK, 0),
                "data_lines": kinds.get(landing.LINE_DATA, 0),
                "ingest_run_id": run_id,
            }
        )
    return rows


def ingest(spark: SparkSession, settings: Settings, start: date, end: date, run_id: str) -> int:
    """Land [start, end] into bronze with replaceWhere on the window; return the number of rows written."""
    from pyspark import StorageLevel

    folders = day_folders(settings.landing_root, start, end)
    files = landing_files(folders)
    window = f"landing_date >= '{start}' AND landing_date <= '{end}'"
    lines = read_landing(spark, files).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = file_counts(spark, files, lines, run_id)  # reads every file: one that fails stops the window here
        path = settings.table_path(*BRONZE_TABLE)
        written = replace_window(to_bronze(lines, run_id), path, window, "landing_date")
    finally:
        lines.unpersist()
    data_lines = sum(row["data_lines"] for row in counts)
    if written != data_lines:
        raise RuntimeError(
            f"bronze {start}..{end}: wrote {written} rows for {data_lines} data lines; re-run the window"
        )
    replace_window(
        spark.createDataFrame(counts, LANDING_FILES_SCHEMA),
        settings.table_path(*LANDING_FILES_TABLE),
        window,
        "landing_date",
    )
    log.info(
        "bronze %s..%s: %d rows from %d files in %d day folders (%d header and %d blank lines counted) into %s",
        start,
        end,
        written,
        len(files),
        len(folders),
        sum(row["header_lines"] for row in counts),
        sum(row["blank_lines"] for row in counts),
        path,
    )
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--start D [--end D] --run-id ID`` ingests landing days into bronze."""
    parser = cli.parser("jobs.lake.ingest", "landing -> bronze")
    cli.add_window(parser)
    args = parser.parse_args(argv)
    rows = run_job("ingest", lambda spark, settings: ingest(spark, settings, *cli.window(args), args.run_id))
    print(f"ingested {rows} rows into bronze")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
