"""Training sets: gold features joined with matured labels at pinned Delta versions, split by as-of date.

The split is in time: train, then validation, then holdout, each separated by a gap of at least the label horizon,
so no training label looks into the validation period (and none of validation's into the holdout). Consecutive
as-of days are near-duplicates, so one snapshot every ``sample_every_days`` is kept, anchored on the last date.

The set is written once as Parquet under ``<lake>/models/<model>/training_sets/<key>/`` with a manifest (Delta versions,
split bounds, rows and a checksum); ``key`` is a hash of everything that determines the content, so the same
versions and settings always give the same set, and asking again reuses it. Training reads the Parquet without
Spark (``load_training_set``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs import cli
from jobs.config import ModelConfig, feature_columns, load_model_config
from jobs.features import build, labels
from jobs.settings import Settings
from jobs.spark import run_job

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "holdout")
MANIFEST = "_manifest"


@dataclass(frozen=True)
class Split:
    """Inclusive as-of date bounds of the three splits."""

    train: tuple[date, date]
    validation: tuple[date, date]
    holdout: tuple[date, date]

    def as_dict(self) -> dict[str, list[str]]:
        """JSON-friendly bounds."""
        return {name: [d.isoformat() for d in getattr(self, name)] for name in SPLITS}


def split_bounds(first: date, last: date, config: ModelConfig) -> Split:
    """Holdout = the last ``holdout_days``; validation before it; train before that; ``gap`` days between each."""
    t = config.training
    gap = config.split_gap_days
    holdout = (last - timedelta(days=t.holdout_days - 1), last)
    validation_end = holdout[0] - timedelta(days=gap + 1)
    validation = (validation_end - timedelta(days=t.validation_days - 1), validation_end)
    train_end = validation[0] - timedelta(days=gap + 1)
    if train_end < first:
        need = t.holdout_days + t.validation_days + 2 * gap + 1
        raise ValueError(
            f"not enough matured labels for a time split: as-of dates {first}..{last} span "
            f"{(last - first).days + 1} days, the split needs at least {need} "
            f"(holdout {t.holdout_days} + validation {t.validation_days} + 2 gaps of {gap} + 1 train day)"
        )
    return Split(train=(first, train_end), validation=validation, holdout=holdout)


def set_key(config: ModelConfig, versions: dict[str, int], as_of_start: date | None, as_of_end: date | None) -> str:
    """A content key computed from the inputs alone (versions, requested window, split settings), so the task that
    builds a set and the one that trains on it find the same path without passing it around."""
    t = config.training
    spec = {
        "model": config.name,
        "versions": {"features": int(versions["features"]), "labels": int(versions["labels"])},
        "window": [as_of_start.isoformat() if as_of_start else "first", as_of_end.isoformat() if as_of_end else "last"],
        "features": list(feature_columns(config)),
        "sample_every_days": t.sample_every_days,
        "validation_days": t.validation_days,
        "holdout_days": t.holdout_days,
        "gap_days": config.split_gap_days,
        "horizon_days": config.label.horizon_days,
    }
    return "ts-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def current_version(path: str) -> int:
    """The latest committed version of a Delta table, from its ``_delta_log`` listing (no Spark needed)."""
    from pyarrow import fs

    filesystem, root = _arrow_path(f"{path.rstrip('/')}/_delta_log")
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    versions = [int(i.base_name[:-5]) for i in infos if i.base_name.endswith(".json") and i.base_name[:-5].isdigit()]
    if not versions:
        raise FileNotFoundError(f"{path} is not a Delta table (no commits in _delta_log)")
    return max(versions)


def pin_versions(settings: Settings, model: str) -> dict[str, int]:
    """The current versions of ``model``'s features and labels tables: what a training run will read."""
    return {
        "features": current_version(settings.model_table_path(model, build.FEATURES_TABLE)),
        "labels": current_version(settings.model_table_path(model, labels.LABELS_TABLE)),
    }


def set_path(settings: Settings, config: ModelConfig, key: str) -> str:
    """Where a training set lives."""
    return f"{settings.model_root(config.name)}/training_sets/{key}"


def assemble(features_df: DataFrame, labels_df: DataFrame, split: Split, config: ModelConfig) -> DataFrame:
    """Join features and labels on (customer_id, as_of_date), keep the sampled snapshots, tag each row's split."""
    from pyspark.sql import functions as F

    every = config.training.sample_every_days
    last = split.holdout[1]
    in_split = F.lit(None).cast("string")
    for name in reversed(SPLITS):
        lo, hi = getattr(split, name)
        in_split = F.when((F.col("as_of_date") >= F.lit(lo)) & (F.col("as_of_date") <= F.lit(hi)), name).otherwise(
            in_split
        )
    columns = ["customer_id", "as_of_date", *feature_columns(config)]
    return (
        features_df.select(*columns)
        .join(labels_df.select("customer_id", "as_of_date", "label"), ["customer_id", "as_of_date"], "inner")
        .where(F.datediff(F.lit(last), F.col("as_of_date")) % every == 0)
        .withColumn("split", in_split)
        .where(F.col("split").isNotNull())
    )


def checksum(frame: DataFrame) -> str:
    """Order-independent checksum over every column (equal contents, equal checksum)."""
    from pyspark.sql import functions as F

    value = frame.agg(F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)"))).first()[0]
    return str(value or 0)


def build_training_set(
    spark: SparkSession,
    settings: Settings,
    config: ModelConfig,
    as_of_start: date | None = None,
    as_of_end: date | None = None,
    features_version: int | None = None,
    labels_version: int | None = None,
) -> dict[str, Any]:
    """Write (or reuse) the training set for these versions and window; return its manifest."""
    from pyspark.sql import functions as F

    features_path = settings.model_table_path(config.name, build.FEATURES_TABLE)
    labels_path = settings.model_table_path(config.name, labels.LABELS_TABLE)
    versions = {
        "features": current_version(features_path) if features_version is None else features_version,
        "labels": current_version(labels_path) if labels_version is None else labels_version,
    }
    key = set_key(config, versions, as_of_start, as_of_end)
    path = set_path(settings, config, key)
    existing = read_manifest(path)
    if existing is not None:
        log.info("training set %s already built for these versions: reusing %s", key, path)
        return existing

    features_df = spark.read.format("delta").option("versionAsOf", versions["features"]).load(features_path)
    labels_df = spark.read.format("delta").option("versionAsOf", versions["labels"]).load(labels_path)
    bounds = labels_df.agg(F.min("as_of_date"), F.max("as_of_date")).first()
    if bounds[0] is None:
        raise ValueError(f"no matured labels in {labels_path} at version {versions['labels']}")
    first = max(bounds[0], as_of_start) if as_of_start else bounds[0]
    last = min(bounds[1], as_of_end) if as_of_end else bounds[1]
    split = split_bounds(first, last, config)

    frame = assemble(features_df, labels_df, split, config).persist()
    try:
        counts = {
            r.split: (r["rows"], r.positives)
            for r in frame.groupBy("split")
            .agg(F.count(F.lit(1)).alias("rows"), F.sum("label").alias("positives"))
            .collect()
        }
        missing = [name for name in SPLITS if not counts.get(name, (0, 0))[0]]
        if missing:
            raise ValueError(f"training set {key} has empty split(s) {missing}; widen the window or sample more often")
        manifest = {
            "key": key,
            "path": path,
            "model": config.name,
            "tables": {"features": features_path, "labels": labels_path},
            "versions": versions,
            "window": [first.isoformat(), last.isoformat()],
            "split": split.as_dict(),
            "sample_every_days": config.training.sample_every_days,
            "gap_days": config.split_gap_days,
            "feature_columns": list(feature_columns(config)),
            "rows": {name: int(counts[name][0]) for name in SPLITS},
            "positives": {name: int(counts[name][1]) for name in SPLITS},
            "checksum": checksum(frame),
        }
        frame.repartition("split").sortWithinPartitions("as_of_date", "customer_id").write.mode(
            "overwrite"
        ).partitionBy("split").parquet(path)
    finally:
        frame.unpersist()
    # The manifest goes last: a set without one is incomplete and is rebuilt on the next request.
    spark.createDataFrame([(json.dumps(manifest, sort_keys=True),)], "value string").coalesce(1).write.mode(
        "overwrite"
    ).text(f"{path}/{MANIFEST}")
    log.info("training set %s: %s rows (%s) at %s", key, manifest["rows"], manifest["versions"], path)
    return manifest


def _arrow_path(path: str) -> tuple[Any, str]:
    from pyarrow import fs

    if "://" not in path:
        return fs.LocalFileSystem(), path
    return fs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))


def read_manifest(path: str) -> dict[str, Any] | None:
    """A training set's manifest, or None when the set is missing or incomplete (no Spark needed)."""
    from pyarrow import fs

    filesystem, root = _arrow_path(f"{path}/{MANIFEST}")
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return None
    parts = [i.path for i in infos if i.type == fs.FileType.File and i.base_name.startswith("part-")]
    if not parts:
        return None
    with filesystem.open_input_stream(parts[0]) as stream:
        return json.loads(stream.read().decode())


def load_training_set(path: str) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """(manifest, {split: frame}) in a fixed row order; fails if the set is incomplete."""
    import pyarrow.parquet as pq

    manifest = read_manifest(path)
    if manifest is None:
        raise FileNotFoundError(f"no complete training set at {path} (missing {MANIFEST}); build it first")
    filesystem, root = _arrow_path(path)
    table = pq.read_table(root, filesystem=filesystem)
    frame = table.to_pandas()
    frame["split"] = frame["split"].astype(str)
    frame = frame.sort_values(["split", "as_of_date", "customer_id"], kind="stable").reset_index(drop=True)
    sets = {name: frame[frame.split == name].drop(columns="split").reset_index(drop=True) for name in SPLITS}
    got = {name: len(sets[name]) for name in SPLITS}
    if got != manifest["rows"]:
        raise ValueError(f"training set at {path} has rows {got}, its manifest says {manifest['rows']}")
    return manifest, sets


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--model M [--as-of-start D] [--as-of-end D] [--features-version N] [--labels-version N]``."""
    parser = cli.parser("jobs.ml.trainset", "build a pinned training set")
    cli.add_model(parser)
    optional_date = lambda text: date.fromisoformat(text) if text else None  # noqa: E731 - '' means "not set"
    parser.add_argument("--as-of-start", type=optional_date, default=None)
    parser.add_argument("--as-of-end", type=optional_date, default=None)
    parser.add_argument("--features-version", type=int, default=None)
    parser.add_argument("--labels-version", type=int, default=None)
    parser.add_argument("--manifest-out", default=None, help="also write the manifest JSON to this local file")
    args = parser.parse_args(argv)
    config = load_model_config(args.model)
    manifest = run_job(
        "trainset",
        lambda spark, settings: build_training_set(
            spark, settings, config, args.as_of_start, args.as_of_end, args.features_version, args.labels_version
        ),
    )
    print(json.dumps({k: manifest[k] for k in ("key", "path", "versions", "rows", "checksum")}))
    if args.manifest_out:
        with open(args.manifest_out, "w") as out:
            json.dump(manifest, out, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
