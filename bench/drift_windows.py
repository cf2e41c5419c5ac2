"""Nightly drift windows end to end: stable nights raise no alert; injected drift is alerted within k windows, once.

A reference of N rows and ``--nights`` nightly windows of N rows each are drawn in Spark with the 20 feature-like
columns of ``bench.drift`` (normal, lognormal, count-like, uniform, categorical, with nulls, constant), each night
with its own seed. From night ``--drift-from`` on, the generator moves ``--drift-columns`` of them (mean shifts,
wider tails, another category mix). Every night goes through what ``jobs.monitoring.drift.monitor`` does with a
window: the Spark profile of the window (``jobs.monitoring.statistics.profile``), the test Evidently would pick per
column against the reference's cached profile, the drifted share, and the alert policy of the model config
(``jobs.monitoring.alerts``: k of the last n windows, cooldown). The Delta writes, the report and the mail are
left out: they do not decide anything.

Prints one line per night and a JSON summary, appends it to ``docs/benchmarks/history.jsonl``, and exits 1
when a stable night alerted, the drift was not alerted within k windows, or an episode was alerted twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import date, timedelta
from typing import Any

from bench import report
from bench.drift import COLUMNS, SPARK_OVERRIDES, columns

log = logging.getLogger("bench.drift_windows")

FIRST_NIGHT = date(2026, 1, 1)
# Which columns the injected drift moves, in order: two of each kind that can move, so any count mixes kinds.
DRIFT_ORDER = (0, 5, 9, 12, 16, 1, 6, 10, 13, 17, 2, 7, 11, 14, 3, 8, 15, 4)


def run(rows: int, nights: int, drift_from: int, drift_columns: int, model: str, spark: Any = None) -> dict[str, Any]:
    """Profile the reference once, then each night's window; apply the model's alert policy night by night."""
    from jobs.config import load_model_config
    from jobs.monitoring import alerts, statistics
    from jobs.spark import get_spark

    policy = load_model_config(model).drift
    names = [f"f{i:02d}" for i in range(COLUMNS)]
    moved = frozenset(DRIFT_ORDER[:drift_columns])
    owned = spark is None
    spark = spark or get_spark("bench-drift-windows", master="local[2]", overrides=SPARK_OVERRIDES)
    history: list[alerts.Window] = []
    sent: list[alerts.Alert] = []
    log_rows: list[dict[str, Any]] = []
    try:
        parts = max(2, rows // 1_000_000)
        t0 = time.perf_counter()
        reference = statistics.profile(spark.range(rows, numPartitions=parts).select(*columns(0)), names)
        reference_seconds = time.perf_counter() - t0
        log.info("reference: %d rows profiled in %.1f s", rows, reference_seconds)
        for night in range(1, nights + 1):
            day = FIRST_NIGHT + timedelta(days=night - 1)
            drifting = night >= drift_from
            t0 = time.perf_counter()
            window = spark.range(rows, numPartitions=parts).select(
                *columns(1000 * night, moved if drifting else frozenset())
            )
            results = statistics.compare(reference, statistics.profile(window, names))
            seconds = time.perf_counter() - t0
            drifted = {r.column: r.drifted for r in results}
            history.append(
                alerts.Window(day, alerts.drifted_share(drifted), False, tuple(c for c, d in drifted.items() if d))
            )
            decision = alerts.should_alert(history[-policy.persistence_n :], sent, policy, model)
            if decision.alert:
                sent.append(alerts.Alert(day, decision.episode_id))
            row = {
                "night": night,
                "date": day.isoformat(),
                "injected": drifting,
                "drifted_columns": sorted(c for c, d in drifted.items() if d),
                "drifted_share": round(history[-1].drifted_share, 3),
                "alert": decision.alert,
                "reason": decision.reason,
                "seconds": round(seconds, 1),
            }
            log_rows.append(row)
            print(
                f"night {night:2d} {day} {'DRIFT ' if drifting else 'stable'} drifted {len(row['drifted_columns']):2d}"
                f"/{COLUMNS} share {row['drifted_share']:.2f} {'ALERT' if decision.alert else '-    '} "
                f"{decision.reason} ({seconds:.1f} s)",
                flush=True,
            )
    finally:
        if owned:
            spark.stop()
    alerted = [r["night"] for r in log_rows if r["alert"]]
    false_alerts = [n for n in alerted if n < drift_from]
    first = next((n for n in alerted if n >= drift_from), None)
    delay = None if first is None else first - drift_from + 1
    expected = [drift_from + policy.persistence_k - 1] if drift_from + policy.persistence_k - 1 <= nights else []
    window_seconds = [r["seconds"] for r in log_rows]
    return {
        "rows_per_window": rows,
        "nights": nights,
        "columns": COLUMNS,
        "drift_from_night": drift_from,
        "drifted_columns_injected": sorted(f"f{i:02d}" for i in moved),
        "policy": {
            "max_drifted_share": policy.max_drifted_share,
            "persistence_k": policy.persistence_k,
            "persistence_n": policy.persistence_n,
            "cooldown_days": policy.cooldown_days,
        },
        "reference_seconds": round(reference_seconds, 1),
        "window_seconds_median": sorted(window_seconds)[len(window_seconds) // 2],
        "window_seconds_max": max(window_seconds),
        "stable_nights_with_drifted_columns": sum(1 for r in log_rows if not r["injected"] and r["drifted_columns"]),
        "alerts_on_nights": alerted,
        "false_alerts": false_alerts,
        "windows_to_alert": delay,
        "ok": not false_alerts and alerted == expected and (delay is None or delay <= policy.persistence_k),
        "nights_log": log_rows,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.drift_windows [--rows N --nights 30 --drift-from 21 --drift-columns 8]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.drift_windows", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the reference and in each window")
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--drift-from", type=int, default=21, help="first night with injected drift")
    parser.add_argument("--drift-columns", type=int, default=8, help=f"columns the drift moves (of {COLUMNS})")
    parser.add_argument("--model", default="purchase_propensity", help="whose drift policy applies")
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    args = parser.parse_args(argv)
    if not 0 <= args.drift_columns <= len(DRIFT_ORDER):
        parser.error(f"--drift-columns must be in 0..{len(DRIFT_ORDER)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.rows, args.nights, args.drift_from, args.drift_columns, args.model)
    summary = {k: v for k, v in result.items() if k != "nights_log"}
    print(json.dumps(summary), flush=True)
    if not args.no_record:
        report.record(
            "drift-windows",
            {key: getattr(args, key) for key in ("rows", "nights", "drift_from", "drift_columns")},
            summary,
            rows=args.rows,
            stages={
                "reference": {"seconds": result["reference_seconds"]},
                "night.median": {"seconds": result["window_seconds_median"]},
                "night.max": {"seconds": result["window_seconds_max"]},
            },
            ratios={"nights to alert": result["windows_to_alert"], "false alerts": len(result["false_alerts"])},
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
