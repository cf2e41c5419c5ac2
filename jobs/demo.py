"""`make demo`: run what the platform has today on the real CDNOW data, then say what happened and where to look."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import date, timedelta

from jobs import cdnow, clean, features, ingest, labels, promotion, quality, train, trainset
from jobs.config import load_model_config
from jobs.settings import load

log = logging.getLogger("demo")
MODEL = "purchase_propensity"


def main(argv: list[str] | None = None) -> int:
    """Replay CDNOW, then backfill bronze, silver, gold features and labels, then one incremental night."""
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=main.__doc__)
    parser.add_argument("--start", type=date.fromisoformat, default=cdnow.FIRST_DAY)
    parser.add_argument("--end", type=date.fromisoformat, default=cdnow.LAST_DAY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load()
    config = load_model_config(MODEL)
    started = time.monotonic()
    timings: dict[str, float] = {}
    backfill_end = args.end - timedelta(days=1)

    def step(name: str, fn, *a):
        t0 = time.monotonic()
        out = fn(*a)
        timings[name] = time.monotonic() - t0
        return out

    log.info("step 1/9: replaying CDNOW %s..%s into %s", args.start, args.end, settings.landing_root)
    replayed = step("replay", cdnow.replay, settings.landing_root, args.start, args.end)

    from jobs.spark import get_spark

    spark = get_spark("demo", settings=settings)
    try:
        log.info("step 2/9: ingest landing -> bronze (%s..%s, one Spark job)", args.start, backfill_end)
        step("ingest", ingest.ingest, spark, settings, args.start, backfill_end, "demo-backfill")
        log.info("step 3/9: clean bronze -> silver + quarantine")
        cleaned = step("clean", clean.clean, spark, settings, args.start, backfill_end, "demo-backfill")
        log.info("step 4/9: point-in-time features for every customer and day (backfill)")
        built = step(
            "features", features.build_features, spark, settings, config, args.start, backfill_end, "demo-backfill"
        )
        log.info("step 5/9: labels whose %d-day horizon has matured", config.label.horizon_days)
        step("labels", labels.build_labels, spark, settings, config, args.start, backfill_end, "demo")
        log.info("step 6/9: one nightly increment for %s, as the scheduler would run it", args.end)
        t0 = time.monotonic()
        ingest.ingest(spark, settings, args.end, args.end, "demo-nightly")
        nightly_clean = clean.clean(spark, settings, args.end, args.end, "demo-nightly")
        nightly = features.build_features(spark, settings, config, args.end, args.end, "demo-nightly")
        labels.build_labels(spark, settings, config, args.end, args.end, "demo-nightly")
        timings["nightly"] = time.monotonic() - t0
        log.info("step 7/9: data-quality gate (Great Expectations) on the night's bronze, silver and gold")
        gate = step("quality_gate", quality.run_gate, spark, settings, config, args.end, args.end, "demo-nightly")
        log.info("%s", quality.describe(gate))
        log.info("step 8/9: training set at pinned Delta versions, then XGBoost vs PyTorch, tracked in MLflow")
        versions = trainset.pin_versions(settings)
        manifest = step(
            "training_set",
            trainset.build_training_set,
            spark,
            settings,
            config,
            None,
            None,
            versions["features"],
            versions["labels"],
        )
        read = lambda table: spark.read.format("delta").load(settings.table_path(*table))  # noqa: E731
        silver_rows = read(clean.SILVER_TABLE).count()
        gold = read(features.GOLD_TABLE)
        gold_rows, gold_days = gold.count(), gold.select("as_of_date").distinct().count()
        label_rows = read(labels.LABELS_TABLE)
        positives = label_rows.where("label = 1").count()
        label_total = label_rows.count()
    finally:
        spark.stop()

    # The local training backend: exactly the command a Kubernetes GPU pod would run, then the same verification.
    command = [
        sys.executable,
        "-m",
        "jobs.train",
        "--model",
        MODEL,
        "--features-version",
        str(versions["features"]),
        "--labels-version",
        str(versions["labels"]),
        "--dag-run-id",
        "demo",
        "--reason",
        "make demo",
    ]
    t0 = time.monotonic()
    subprocess.run(command, check=True)
    timings["train"] = time.monotonic() - t0
    trained = train.verify_training_run(settings, MODEL, "demo")

    # Exactly what the training DAG's evaluate_and_promote task submits (here without Airflow, so without e-mail).
    log.info("step 9/9: challenger vs champion on the newest matured holdout, promotion gates, audit")
    t0 = time.monotonic()
    run_id = f"demo-{int(time.time())}"
    promote = [sys.executable, "-m", "jobs.promotion", "auto", "--model", MODEL, "--dag-run-id", run_id]
    promote += ["--triggered-by", "make demo", "--reason", "make demo"]
    # Its log streams to stderr as it goes; the last line of stdout is the decision's outline.
    result = subprocess.run(promote, check=True, stdout=subprocess.PIPE, text=True)
    timings["promotion"] = time.monotonic() - t0
    outline = json.loads(result.stdout.strip().splitlines()[-1])
    decision = promotion.read_decision(promotion.decision_dir(settings, MODEL, run_id) / "decision.json")

    landed = replayed.rows
    accounted = cleaned.landed + nightly_clean.landed
    ok = accounted == landed and silver_rows == cleaned.accepted + nightly_clean.accepted
    lake = settings.lake_root
    print(
        "\n".join(
            [
                "",
                "=== demo summary ===",
                f"landing    : {landed} CDNOW rows over {replayed.days} days ({replayed.empty_days} without purchases)"
                f" in {settings.landing_root}",
                f"bronze     : {accounted} rows ({'reconciled with landing' if accounted == landed else 'MISMATCH'})",
                f"silver     : {silver_rows} rows accepted, {cleaned.duplicates + nightly_clean.duplicates} duplicates,"
                f" quarantined {cleaned.quarantined or 'none'}",
                f"features   : {gold_rows} rows = customers x {gold_days} as-of dates "
                f"(backfill mode {built.get('mode')}, nightly mode {nightly.get('mode')})",
                f"labels     : {label_total} rows, {positives / max(label_total, 1):.1%} positive "
                f"({config.label.horizon_days}-day horizon)",
                f"quality    : gate {'PASSED' if gate.passed else 'FAILED'} for {args.end}: "
                f"{len(gate.outcomes)} expectations, {len(gate.critical_failures)} critical failures, "
                f"{len(gate.warnings)} warnings; report {gate.report}",
                f"training   : set {manifest['key']} rows {manifest['rows']} (features v{versions['features']}, "
                f"labels v{versions['labels']}); winner {trained['winner']} registered as {MODEL} version "
                f"{trained['version']} @challenger; holdout ROC AUC {trained['holdout_roc_auc']:.3f}, "
                f"PR AUC {trained['holdout_pr_auc']:.3f}, log loss {trained['holdout_log_loss']:.3f}, "
                f"Brier {trained['holdout_brier']:.3f}",
                f"promotion  : {decision['summary'] if decision else outline} "
                f"[{outline['action']}; audit {lake}/ops/model_decisions; report {decision and decision['report']}]",
                f"mlflow     : {settings.mlflow_tracking_uri} (browse: .venv/bin/mlflow ui --backend-store-uri "
                f"{settings.mlflow_tracking_uri})",
                "timings    : " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()),
                f"wall time  : {time.monotonic() - started:.0f} s",
                f"where      : Delta tables under {lake}/(bronze|silver|quarantine|ops|gold); "
                f"reports under {settings.reports_root}",
                "",
                "Built so far: landing -> bronze -> silver -> gold features + labels -> data-quality gate -> training"
                " -> gated promotion (rollback: the rollback_model DAG or python -m jobs.promotion rollback).",
                "Not built yet (open issues): batch inference, drift monitoring and alerts.",
            ]
        )
    )
    return 0 if ok and gate.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
