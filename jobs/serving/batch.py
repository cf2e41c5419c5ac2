"""Batch inference: every customer scored as of one date by the champion, into gold ``predictions``.

The alias is resolved to a concrete version first (``models:/<model>@champion`` -> ``models:/<model>/<version>``)
and that version is what scores and what every row records, so a promotion or rollback in the middle of a run
cannot mix two models in one date. Scoring runs in Spark through MLflow's ``spark_udf`` (the model is shipped to
the executors; nothing is collected). A date of at most ``MLP_SCORE_DRIVER_MAX_ROWS`` rows (CDNOW's 23,570
customers) is scored in the driver instead: starting Python workers and loading the model in each cost ~25 s for a
second of predicting. The write is a Delta ``replaceWhere`` on (model, as_of_date): a re-run replaces that date only
and every other date's history stays for monitoring.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from jobs import cli
from jobs.config import ModelConfig, feature_columns, load_model_config
from jobs.features.build import FEATURES_TABLE
from jobs.ml.registry import resolve_champion
from jobs.settings import Settings
from jobs.spark import replace_window, run_job, to_pandas

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

PREDICTIONS_TABLE = "predictions"  # <lake>/models/<model>/predictions


def score(features_df: DataFrame, model_uri: str, columns: list[str], driver_max_rows: int = 0) -> DataFrame:
    """``features_df`` with a ``score`` column from the registered pyfunc at ``model_uri``.

    MLflow's spark_udf on the executors; in the driver when ``features_df`` has at most ``driver_max_rows`` rows.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    if driver_max_rows > 0 and features_df.limit(driver_max_rows + 1).count() <= driver_max_rows:
        return _score_in_driver(features_df, model_uri, columns)
    predict = mlflow.pyfunc.spark_udf(features_df.sparkSession, model_uri, result_type="double", env_manager="local")
    return features_df.withColumn("score", predict(F.struct(*[F.col(c) for c in columns])))


def _score_in_driver(features_df: DataFrame, model_uri: str, columns: list[str]) -> DataFrame:
    """The same scores as spark_udf's, computed by the driver's copy of the model on the collected rows."""
    import mlflow.pyfunc
    import numpy as np
    from pyspark.sql.types import DoubleType, StructField, StructType

    frame = to_pandas(features_df)
    model = mlflow.pyfunc.load_model(model_uri)
    frame["score"] = np.asarray(model.predict(frame[columns]), dtype="float64").reshape(-1) if len(frame) else []
    schema = StructType([*features_df.schema.fields, StructField("score", DoubleType())])
    return features_df.sparkSession.createDataFrame(frame, schema=schema)


def predictions(
    features_df: DataFrame,
    config: ModelConfig,
    champion: dict[str, Any],
    columns: list[str],
    run_id: str,
    driver_max_rows: int = 0,
) -> DataFrame:
    """Prediction rows: customer_id, as_of_date, score, model, its version and MLflow run, the DAG run, when."""
    from pyspark.sql import functions as F

    selected = features_df.select("customer_id", "as_of_date", *columns)
    scored = score(selected, champion["uri"], columns, driver_max_rows)
    return scored.select(
        "customer_id",
        "as_of_date",
        F.col("score").cast("double").alias("score"),
        F.lit(config.name).alias("model"),
        F.lit(champion["version"]).cast("int").alias("model_version"),
        F.lit(champion["run_id"]).alias("model_run_id"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("scored_at"),
    )


def model_columns(model_uri: str, config: ModelConfig) -> list[str]:
    """The inputs the model's signature names (they are gold feature columns)."""
    from mlflow.models import get_model_info

    schema = get_model_info(model_uri).signature
    names = [c.name for c in schema.inputs] if schema is not None else list(feature_columns(config))
    unknown = sorted(set(names) - set(feature_columns(config)))
    if unknown:
        raise ValueError(f"{model_uri} expects inputs that are not gold features of {config.name}: {unknown}")
    return names


def run_inference(
    spark: SparkSession, settings: Settings, config: ModelConfig, as_of: date, run_id: str
) -> dict[str, Any]:
    """Score every customer with features on ``as_of`` by the champion; replace that date's predictions."""
    from pyspark.sql import functions as F

    champion = resolve_champion(settings, config.name)
    log.info("scoring %s as of %s with %s (run %s)", config.name, as_of, champion["uri"], champion["run_id"])
    columns = model_columns(champion["uri"], config)
    gold = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, FEATURES_TABLE))
        .where(F.col("as_of_date") == F.lit(as_of))
    )
    frame = predictions(gold, config, champion, columns, run_id, settings.score_driver_max_rows)
    where = f"model = '{config.name}' AND as_of_date = '{as_of.isoformat()}'"
    written = replace_window(frame, settings.model_table_path(config.name, PREDICTIONS_TABLE), where, "as_of_date")
    if written == 0:
        raise ValueError(f"no gold features for {config.name} as of {as_of}: run the feature pipeline for that date")
    log.info("%s as of %s: %d customers scored by version %d", config.name, as_of, written, champion["version"])
    return {"model": config.name, "as_of_date": as_of.isoformat(), "rows": written, **champion}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--model M --date YYYY-MM-DD --run-id ID``; prints the outline (rows, version) as JSON."""
    parser = cli.parser("jobs.serving.batch", "score one as-of date")
    cli.add_model(parser)
    cli.add_date(parser)
    args = parser.parse_args(argv)
    config = load_model_config(args.model)
    outline = run_job(
        "inference", lambda spark, settings: run_inference(spark, settings, config, args.date, args.run_id)
    )
    print(json.dumps(outline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
