"""Nightly drift monitor: data drift, prediction drift and (once labels mature) performance, then the alert decision.

Reference: the rows the champion was trained on (the train split of the training set tagged on its version, at
pinned Delta versions), and the champion's scores on them. Current: gold features and predictions of the latest
``drift.window_days`` as-of dates. Per column, the test Evidently would choose (Wasserstein distance for large
numeric samples, Jensen-Shannon for few distinct values, K-S / chi-square for small ones) is computed in Spark from
bounded-size profiles (``jobs.monitoring.statistics``), so a window of millions of rows costs the same memory as one of
thousands; the reference's profiles are computed once per champion version and cached. Performance: the scores of
the as-of date whose labels just matured, against the champion's metric at promotion.

Writes, in the model's own folder (``<lake>/models/<model>/``): one row per (date, column) in ``drift_metrics``, one
per date in ``drift_windows``, and, when ``jobs.monitoring.alerts.should_alert`` opens an episode, one in
``drift_alerts`` (all replaceWhere/MERGE on the date, so a re-run replaces). The HTML report
(``include/reports/drift.html``: the full-data decisions, over Evidently 0.7 on a sample) goes to
``reports/drift/<model>/<date>/`` and to MLflow; ``summary.json`` beside it is what the DAG's alert task reads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import cli, reports
from jobs.config import ModelConfig, load_model_config
from jobs.features.build import FEATURES_TABLE
from jobs.features.labels import LABELS_TABLE
from jobs.ml import trainset
from jobs.ml.metrics import evaluate, gain
from jobs.ml.registry import experiment_id
from jobs.monitoring import alerts, statistics
from jobs.serving import batch
from jobs.settings import Settings
from jobs.spark import is_delta_table, replace_window, run_job, to_pandas

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# The model's own monitoring tables, under <lake>/models/<model>/.
METRICS_TABLE = "drift_metrics"
WINDOWS_TABLE = "drift_windows"
ALERTS_TABLE = "drift_alerts"
SCORE = "score"
EVIDENTLY = "evidently.html"  # Evidently's own page, beside index.html


def scored_version(spark: SparkSession, settings: Settings, config: ModelConfig, as_of: date) -> int:
    """The model version that scored ``as_of`` (gold predictions hold one per date): the night is monitored against
    the model that produced its scores, even if ``@champion`` moved since."""
    from pyspark.sql import functions as F

    path = settings.model_table_path(config.name, batch.PREDICTIONS_TABLE)
    versions = []
    if is_delta_table(spark, path):
        versions = [
            r.model_version
            for r in spark.read.format("delta")
            .load(path)
            .where((F.col("model") == config.name) & (F.col("as_of_date") == F.lit(as_of)))
            .select("model_version")
            .distinct()
            .collect()
        ]
    if not versions:
        raise ValueError(f"no predictions of {config.name} for {as_of}: run inference (the score task) first")
    if len(versions) > 1:
        raise ValueError(f"{config.name} {as_of} was scored by several versions {sorted(versions)}; re-score the date")
    return int(versions[0])


def _champion_details(settings: Settings, config: ModelConfig, scored_by: int) -> dict[str, Any]:
    """The scoring version's training set, feature importance and primary metric at promotion."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    champion = {
        "version": scored_by,
        "run_id": None,
        "uri": f"models:/{config.name}/{scored_by}",
    }
    client = MlflowClient()
    version = client.get_model_version(config.name, str(champion["version"]))
    champion["run_id"] = version.run_id
    primary = config.training.primary_metric
    promoted = None
    if version.tags.get("mlp.evaluation_run") and version.tags.get("mlp.decision") in {"promoted", "forced"}:
        promoted = client.get_run(version.tags["mlp.evaluation_run"]).data.metrics.get(f"candidate_{primary}")
    if promoted is None and version.tags.get(f"holdout_{primary}"):
        promoted = float(version.tags[f"holdout_{primary}"])
    importance: dict[str, float] = {}
    family = version.tags.get("family")
    if family and config.drift.weight_by_importance:
        try:
            importance = json.loads(
                Path(client.download_artifacts(version.run_id, f"{family}_importance.json")).read_text()
            )
        except Exception:  # importance only weights the share; without it every column counts the same
            log.warning("no feature importance for %s v%s; columns weigh the same", config.name, champion["version"])
    return {
        **champion,
        "trainset": version.tags.get("trainset"),
        "promoted_metric": promoted,
        "importance": importance,
    }


def _reference(spark: SparkSession, settings: Settings, config: ModelConfig, champion: dict) -> DataFrame:
    """The champion's training rows (train split of its pinned training set)."""
    from pyspark.sql import functions as F

    if not champion["trainset"]:
        raise ValueError(f"{config.name} v{champion['version']} names no training set (tag 'trainset')")
    path = trainset.set_path(settings, config, champion["trainset"])
    return spark.read.parquet(path).where(F.col("split") == "train")


def _cache(settings: Settings, config: ModelConfig, champion: dict, suffix: str) -> Path:
    """A reference cache file of this champion (its MLflow run in the name: versions restart with a new registry)."""
    name = f"reference_v{champion['version']}_{champion['run_id']}.{suffix}"
    return settings.home / "cache" / "drift" / config.name / name


def reference_profiles(
    spark: SparkSession, settings: Settings, config: ModelConfig, champion: dict, columns: list[str]
) -> dict[str, statistics.Profile]:
    """Profiles of the reference features and scores, computed once per champion version and cached."""
    cache = _cache(settings, config, champion, "json")
    if cache.exists():
        cached = json.loads(cache.read_text())
        if set(cached) >= {*columns, SCORE}:
            return {name: statistics.Profile.from_dict(p) for name, p in cached.items()}
    sample = _reference(spark, settings, config, champion)
    sample = batch.score(sample.select(*columns), champion["uri"], columns, settings.score_driver_max_rows)
    profiles = statistics.profile(sample, [*columns, SCORE])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({name: p.to_dict() for name, p in profiles.items()}))
    return profiles


def reference_sample(
    spark: SparkSession,
    settings: Settings,
    config: ModelConfig,
    champion: dict,
    columns: list[str],
    limit: int,
    fraction: float,
) -> pd.DataFrame:
    """A scored sample of the reference for Evidently's plots, drawn once per champion version and cached."""
    import pandas as pd

    cache = _cache(settings, config, champion, f"sample{limit}.parquet")
    cols = [*columns, SCORE]
    if cache.exists():
        cached = pd.read_parquet(cache)
        if set(cached.columns) >= set(cols):
            return cached[cols]
    sampled = _reference(spark, settings, config, champion).sample(fraction=fraction, seed=7).limit(limit)
    # Scored after sampling: only the sample's rows go through the model.
    scored = batch.score(sampled.select(*columns), champion["uri"], columns, settings.score_driver_max_rows)
    frame = to_pandas(scored.select(*cols))
    cache.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(cache)
    return frame


def current_frame(spark: SparkSession, settings: Settings, config: ModelConfig, as_of: date, version: int) -> Any:
    """Gold features joined with the champion's predictions for the window ending ``as_of``."""
    from pyspark.sql import functions as F

    first = as_of - timedelta(days=config.drift.window_days - 1)
    in_window = (F.col("as_of_date") >= F.lit(first)) & (F.col("as_of_date") <= F.lit(as_of))
    scores = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, batch.PREDICTIONS_TABLE))
        .where(in_window & (F.col("model") == config.name) & (F.col("model_version") == version))
        .select("customer_id", "as_of_date", SCORE)
    )
    # Only the scored dates of gold (its partitions) are read, not the whole window.
    scored = [r.as_of_date for r in scores.select("as_of_date").distinct().collect()]
    gold = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, FEATURES_TABLE))
        .where(F.col("as_of_date").isin(scored))
    )
    return gold.join(scores, ["customer_id", "as_of_date"], "inner")


def performance(
    spark: SparkSession, settings: Settings, config: ModelConfig, as_of: date, champion: dict
) -> dict[str, Any] | None:
    """The champion's metrics on the as-of date whose labels matured tonight, and the drop since promotion."""
    from pyspark.sql import functions as F

    matured = as_of - timedelta(days=config.label.horizon_days)
    scores = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, batch.PREDICTIONS_TABLE))
        .where((F.col("model") == config.name) & (F.col("as_of_date") == F.lit(matured)))
        .select("customer_id", SCORE, "model_version")
    )
    labels = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, LABELS_TABLE))
        .where(F.col("as_of_date") == F.lit(matured))
        .select("customer_id", "label")
    )
    # Two columns of one date (tens of thousands of rows at most): small enough for the driver.
    joined = to_pandas(scores.join(labels, "customer_id"))
    if joined.empty or joined["label"].nunique() < 2:
        return None
    metrics = evaluate(joined["label"].to_numpy(), joined[SCORE].to_numpy())
    primary = config.training.primary_metric
    baseline = champion["promoted_metric"]
    drop = None
    if baseline is not None:
        drop = gain(baseline, metrics[primary], primary)  # how much worse than at promotion
    return {
        "as_of_date": matured.isoformat(),
        "rows": len(joined),
        "metrics": metrics,
        "primary": primary,
        "at_promotion": baseline,
        "drop": drop,
        "scored_by": sorted(int(v) for v in joined["model_version"].unique()),
    }


def _history(spark: SparkSession, settings: Settings, config: ModelConfig, as_of: date, version: int) -> tuple:
    """(windows of this champion version up to ``as_of``, alerts sent for the model so far)."""
    from pyspark.sql import functions as F

    windows, sent = [], []
    path = settings.model_table_path(config.name, WINDOWS_TABLE)
    if is_delta_table(spark, path):
        rows = (
            spark.read.format("delta")
            .load(path)
            .where((F.col("model") == config.name) & (F.col("model_version") == version))
            .where(F.col("as_of_date") <= F.lit(as_of))
            .orderBy(F.col("as_of_date").desc())
            .limit(config.drift.persistence_n)
            .collect()
        )
        windows = [
            alerts.Window(
                r.as_of_date,
                r.drifted_share,
                r.prediction_drifted,
                tuple(filter(None, r.drifted_columns.split(","))),
                r.performance_drop,
            )
            for r in rows
        ]
    path = settings.model_table_path(config.name, ALERTS_TABLE)
    if is_delta_table(spark, path):
        sent = [
            alerts.Alert(r.as_of_date, r.episode_id)
            for r in spark.read.format("delta").load(path).where(F.col("model") == config.name).collect()
        ]
    return windows, sent


def _write(
    spark: SparkSession, settings: Settings, config: ModelConfig, table: str, rows: list, schema: str, where: str
):
    replace_window(spark.createDataFrame(rows, schema), settings.model_table_path(config.name, table), where, None)


METRICS_SCHEMA = (
    "as_of_date date, model string, model_version int, kind string, column string, method string, score double, "
    "threshold double, drifted boolean, reference_rows long, current_rows long, run_id string"
)
WINDOWS_SCHEMA = (
    "as_of_date date, model string, model_version int, columns int, drifted_share double, drifted_columns string, "
    "prediction_drifted boolean, performance_metric double, performance_drop double, current_rows long, "
    "report string, run_id string, monitored_at timestamp"
)
ALERTS_SCHEMA = (
    "as_of_date date, model string, model_version int, episode_id string, reason string, drifted_share double, "
    "retrain boolean, run_id string, recorded_at timestamp"
)


def monitor(spark: SparkSession, settings: Settings, config: ModelConfig, as_of: date, run_id: str) -> dict[str, Any]:
    """Drift of the window ending ``as_of`` against the training data of the version that scored it; the alert
    decision; the report; tonight's alert mail queued in the outbox (the DAG's send_alert delivers it)."""
    champion = _champion_details(settings, config, scored_version(spark, settings, config, as_of))
    version = champion["version"]
    columns = batch.model_columns(champion["uri"], config)
    log.info("drift of %s v%s, window ending %s, %d feature columns", config.name, version, as_of, len(columns))
    reference = reference_profiles(spark, settings, config, champion, columns)
    # Profiled here, sampled for the report below: joined once.
    current_df = current_frame(spark, settings, config, as_of, version).persist()
    current = statistics.profile(current_df, [*columns, SCORE])
    if not current[SCORE].rows:
        raise ValueError(
            f"no predictions of {config.name} v{version} in the window ending {as_of}: run inference first"
        )
    results = statistics.compare(reference, current)
    features = [r for r in results if r.column != SCORE]
    prediction = next(r for r in results if r.column == SCORE)
    share = alerts.drifted_share(
        {r.column: r.drifted for r in features}, champion["importance"] if config.drift.weight_by_importance else None
    )
    perf = performance(spark, settings, config, as_of, champion)
    log.info(
        "%s %s: %d/%d features drifted (share %.2f), prediction drift %s (%s %.4f), performance %s",
        config.name,
        as_of,
        sum(r.drifted for r in features),
        len(features),
        share,
        prediction.drifted,
        prediction.method,
        prediction.score,
        perf and {k: perf[k] for k in ("as_of_date", "drop")},
    )

    out = reports.report_dir(settings, "drift", config.name, as_of)
    out.mkdir(parents=True, exist_ok=True)
    report = write_report(spark, settings, config, champion, columns, current_df, results, share, perf, as_of, out)
    current_df.unpersist()
    stamp = datetime.now(UTC)
    where = f"model = '{config.name}' AND as_of_date = '{as_of.isoformat()}'"
    _write(
        spark,
        settings,
        config,
        METRICS_TABLE,
        [
            {
                "as_of_date": as_of,
                "model": config.name,
                "model_version": version,
                "kind": "prediction" if r.column == SCORE else "data",
                "column": r.column,
                "method": r.method,
                "score": float(r.score),
                "threshold": float(r.threshold),
                "drifted": bool(r.drifted),
                "reference_rows": int(r.reference_rows),
                "current_rows": int(r.current_rows),
                "run_id": run_id,
            }
            for r in results
        ],
        METRICS_SCHEMA,
        where,
    )
    window = {
        "as_of_date": as_of,
        "model": config.name,
        "model_version": version,
        "columns": len(features),
        "drifted_share": float(share),
        "drifted_columns": ",".join(r.column for r in features if r.drifted),
        "prediction_drifted": bool(prediction.drifted),
        "performance_metric": perf["metrics"][perf["primary"]] if perf else None,
        "performance_drop": perf["drop"] if perf else None,
        "current_rows": int(prediction.current_rows),
        "report": report,
        "run_id": run_id,
        "monitored_at": stamp,
    }
    _write(spark, settings, config, WINDOWS_TABLE, [window], WINDOWS_SCHEMA, where)

    history, sent = _history(spark, settings, config, as_of, version)
    decision = alerts.should_alert(history, sent, config.drift, config.name)
    log.info("alert decision for %s %s: %s", config.name, as_of, decision.as_dict())
    if decision.alert:
        _write(
            spark,
            settings,
            config,
            ALERTS_TABLE,
            [
                {
                    "as_of_date": as_of,
                    "model": config.name,
                    "model_version": version,
                    "episode_id": decision.episode_id,
                    "reason": decision.reason,
                    "drifted_share": float(share),
                    "retrain": decision.retrain,
                    "run_id": run_id,
                    "recorded_at": stamp,
                }
            ],
            ALERTS_SCHEMA,
            where,
        )
    summary = {
        "model": config.name,
        "as_of_date": as_of.isoformat(),
        "model_version": version,
        "run_id": run_id,
        "window_days": config.drift.window_days,
        "drifted_share": share,
        "max_drifted_share": config.drift.max_drifted_share,
        "columns": [asdict(r) for r in results],
        "prediction": asdict(prediction),
        "performance": perf,
        "decision": decision.as_dict(),
        "report": report,
        "retrain_reason": f"drift episode {decision.episode_id}: {decision.reason}" if decision.retrain else None,
        # Retraining learns from the labels matured by tonight, so a re-run of a past night trains as it would have.
        "retrain_as_of_end": (as_of - timedelta(days=config.label.horizon_days + 1)).isoformat()
        if decision.retrain
        else None,
    }
    reports.write_summary(out / reports.SUMMARY_FILES["drift"], summary)
    return summary


def binnable(*sides: Any) -> bool:
    """Whether numpy can cut each side's finite values into 10 histogram bins, as Evidently's drift plots do."""
    import numpy as np

    for side in sides:
        values = np.asarray(side, dtype="float64")
        values = values[np.isfinite(values)]
        if values.size:
            try:
                np.histogram(values, bins=10, density=True)
            except ValueError:
                return False
    return True


def report_values(
    config: ModelConfig,
    champion: dict,
    results: list,
    share: float,
    perf: dict | None,
    as_of: date,
    sample_rows: int,
    not_plotted: list[str],
) -> dict[str, Any]:
    """What ``include/reports/drift.html`` shows, numbers formatted: drifted columns first, by score."""
    performance = None
    if perf:
        performance = {
            "as_of_date": perf["as_of_date"],
            "rows": perf["rows"],
            "primary": perf["primary"],
            "value": f"{perf['metrics'][perf['primary']]:.4f}",
            "at_promotion": perf["at_promotion"],
            "drop": perf["drop"],
        }
    return {
        "model": config.name,
        "version": champion["version"],
        "as_of": str(as_of),
        "trainset": str(champion["trainset"]),
        "drifted_share": f"{share:.0%}",
        "alert_share": f"{config.drift.max_drifted_share:.0%}",
        "sample_rows": sample_rows,
        "not_plotted": not_plotted,
        "performance": performance,
        "evidently": EVIDENTLY,
        "columns": [
            {
                "column": r.column,
                "method": r.method,
                "score": f"{r.score:.4f}",
                "threshold": f"{r.threshold:g}",
                "drifted": r.drifted,
            }
            for r in sorted(results, key=lambda r: (not r.drifted, -r.score))
        ],
    }


def write_report(
    spark: SparkSession,
    settings: Settings,
    config: ModelConfig,
    champion: dict,
    columns: list[str],
    current_df: Any,
    results: list,
    share: float,
    perf: dict | None,
    as_of: date,
    out: Path,
) -> str:
    """index.html (the full-data decisions) + evidently.html (Evidently 0.7 on a sample of each side), in MLflow."""
    import mlflow
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    limit = config.drift.report_sample_rows
    cols = [*columns, SCORE]
    # Row counts from the profiles (scores are never null), so the sample costs no extra pass over the window.
    score = next(r for r in results if r.column == SCORE)
    totals = {"reference": score.reference_rows, "current": score.current_rows}
    fraction = {name: min(1.0, 1.2 * limit / max(total, 1)) for name, total in totals.items()}
    sides = {
        "reference": reference_sample(spark, settings, config, champion, columns, limit, fraction["reference"]),
        "current": to_pandas(current_df.sample(fraction=fraction["current"], seed=7).limit(limit).select(*cols)),
    }
    plotted = [c for c in cols if binnable(sides["reference"][c], sides["current"][c])]
    skipped = sorted(set(cols) - set(plotted))
    if skipped:  # numpy cannot histogram them (e.g. a huge constant); their decisions above still use every row
        log.warning("not in the Evidently report (values cannot be binned): %s", skipped)
    try:
        definition = DataDefinition(numerical_columns=plotted)
        snapshot = Report([DataDriftPreset(columns=plotted)]).run(
            current_data=Dataset.from_pandas(sides["current"][plotted], data_definition=definition),
            reference_data=Dataset.from_pandas(sides["reference"][plotted], data_definition=definition),
        )
        snapshot.save_html(str(out / EVIDENTLY))
    except Exception as error:  # the report is for reading; the decisions come from the Spark profiles
        log.warning("Evidently's HTML report failed (%s); the drift decisions stand", error)
        reports.write_html(out / EVIDENTLY, "reports/evidently_error.html", error=repr(error))
    page = report_values(config, champion, results, share, perf, as_of, limit, skipped)
    index = reports.write_html(out / "index.html", "reports/drift.html", **page)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run(
        experiment_id=experiment_id(settings, config.name),
        run_name=f"drift {as_of} v{champion['version']}",
        tags={"mlp.role": "monitoring", "mlp.model": config.name, "mlp.as_of_date": str(as_of)},
    ):
        mlflow.log_metrics(
            {
                "drifted_share": share,
                **({"performance_drop": perf["drop"]} if perf and perf["drop"] is not None else {}),
            }
        )
        mlflow.log_artifacts(str(out), "drift")
    return reports.file_uri(index)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--model M --date YYYY-MM-DD --run-id ID``; prints the alert decision as JSON."""
    parser = cli.parser("jobs.monitoring.drift", "drift monitor for one night")
    cli.add_model(parser)
    cli.add_date(parser)
    args = parser.parse_args(argv)
    config = load_model_config(args.model)
    summary = run_job("drift", lambda spark, s: monitor(spark, s, config, args.date, args.run_id))
    print(json.dumps(summary["decision"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
