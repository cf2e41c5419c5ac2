"""Weekly lake maintenance: OPTIMIZE (compaction) and VACUUM with a retention no shorter than 7 days."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import cli
from jobs.settings import Settings
from jobs.spark import run_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MIN_RETENTION_HOURS = 168


def delta_tables(lake_root: str) -> list[str]:
    """Every Delta table under a local lake root (``<layer>/<table>`` folders holding a ``_delta_log``)."""
    root = Path(lake_root)
    return sorted(str(p.parent) for p in root.glob("*/*/_delta_log")) + sorted(
        str(p.parent) for p in root.glob("*/*/*/_delta_log")
    )


def maintain(spark: SparkSession, settings: Settings, retention_hours: int) -> dict[str, dict[str, int]]:
    """OPTIMIZE and VACUUM each table; returns files removed/added per table."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise ValueError(f"retention {retention_hours} h is below the safe minimum of {MIN_RETENTION_HOURS} h")
    report = {}
    for path in delta_tables(settings.lake_root):
        # SQL, not the DeltaTable API: it works over Spark Connect too.
        optimized = spark.sql(f"OPTIMIZE delta.`{path}`").first()
        metrics = optimized["metrics"] if optimized else None
        spark.sql(f"VACUUM delta.`{path}` RETAIN {int(retention_hours)} HOURS").collect()
        report[path] = {
            "files_removed": int(metrics["numFilesRemoved"]) if metrics else 0,
            "files_added": int(metrics["numFilesAdded"]) if metrics else 0,
        }
        log.info("maintained %s: %s", path, report[path])
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--retention-hours N`` optimizes and vacuums every Delta table of the lake."""
    parser = cli.parser("jobs.lake.maintenance", __doc__)
    parser.add_argument("--retention-hours", type=int, default=MIN_RETENTION_HOURS)
    args = parser.parse_args(argv)
    run_job("maintenance", lambda spark, settings: print(json.dumps(maintain(spark, settings, args.retention_hours))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
