"""SparkSession factory with Delta Lake enabled; the master and the jar cache come from settings."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from jobs import cli
from jobs.settings import REPO_ROOT, Settings, load

T = TypeVar("T")

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

CONNECT_LOG4J = REPO_ROOT / "include" / "spark" / "log4j2-connect.properties"
DELTA_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_package(settings: Settings) -> str:
    """Maven coordinate of the Delta jars that match the installed delta-spark and pyspark."""
    if settings.delta_package:
        return settings.delta_package
    from importlib.metadata import version

    spark_minor = ".".join(version("pyspark").split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{version('delta-spark')}"


def spark_conf(settings: Settings, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Spark configuration shared by sessions built here and by spark-submit (SparkSubmitOperator)."""
    conf = {
        **DELTA_CONF,
        "spark.jars.packages": delta_package(settings),
        "spark.jars.ivy": str(settings.spark_ivy_dir),
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Delta rebuilds a table's state from its log in 50 partitions by default: on small tables and few cores
        # every read and commit paid for 50 tasks (a 30-row write took 9 s, 3 s with this).
        "spark.databricks.delta.snapshotPartitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": settings.spark_driver_memory,
        # Daily partitions are small; adaptive execution keeps shuffles from making many tiny files.
        "spark.sql.adaptive.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # toPandas / createDataFrame(pandas) through Arrow (report samples, driver-side scoring), not row by row.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    conf.update(overrides or {})
    return conf


def submit_env(settings: Settings) -> dict[str, str]:
    """Environment for a spark-submit process: the venv's Python on driver and workers, the bind address."""
    return {"PYSPARK_PYTHON": settings.spark_python, "SPARK_LOCAL_IP": settings.spark_local_ip}


def get_spark(
    app_name: str = "mlplatform",
    settings: Settings | None = None,
    master: str | None = None,
    overrides: dict[str, str] | None = None,
) -> SparkSession:
    """Build (or reuse) a SparkSession with Delta enabled.

    With ``spark_remote`` set (``MLP_SPARK_REMOTE=sc://...``) it is a Spark Connect client session: the server
    holds the JVM, the Delta jars and their configuration, so nothing starts here but a gRPC channel. Otherwise a
    classic session; under spark-submit the master and packages are already set by the launcher.
    """
    from pyspark.sql import SparkSession

    settings = settings or load()
    if settings.spark_remote and master is None:
        # Connect's own builder: the client needs no JVM here, and may live beside a classic session (the tests).
        from pyspark import SparkContext
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        if SparkContext._active_spark_context is None:
            # pyspark.sql.functions then build Connect columns, as after SparkSession.builder.remote(). A process
            # that also holds a classic session (the tests) keeps classic functions: use SQL strings there.
            os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
        session = ConnectSession.builder.remote(settings.spark_remote).appName(app_name).getOrCreate()
        # Only session-level SQL settings can be changed from a client; the server fixed the rest at its start.
        for key, value in (overrides or {}).items():
            if key.startswith("spark.sql.") or key.startswith("spark.databricks.delta."):
                session.conf.set(key, value)
        return session
    # The driver's Python must be the workers' Python too (venv, not the system interpreter).
    os.environ.setdefault("PYSPARK_PYTHON", settings.spark_python)
    os.environ.setdefault("SPARK_LOCAL_IP", settings.spark_local_ip)
    builder = SparkSession.builder.appName(app_name)
    if "SPARK_ENV_LOADED" not in os.environ and not os.environ.get("PYSPARK_SUBMIT_ARGS"):
        builder = builder.master(master or settings.spark_master)
    for key, value in spark_conf(settings, overrides).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def connect_server_argv(settings: Settings, port: int, extra_conf: dict[str, str] | None = None) -> list[str]:
    """``spark-submit`` of Spark's own Spark Connect server (its jar ships in the pyspark wheel) with the jobs'
    Delta packages and configuration (plus ``extra_conf``, e.g. fixed driver ports), bound to
    ``spark_local_ip:port``."""
    conf = {**spark_conf(settings), **(extra_conf or {})}
    packages = conf.pop("spark.jars.packages")
    conf["spark.connect.grpc.binding.address"] = settings.spark_local_ip
    conf["spark.connect.grpc.binding.port"] = str(port)
    # A client that died (an Airflow kill, a lost worker) leaves its running operations detached: interrupt them
    # after 30 s instead of Spark's default 5 minutes, so a killed task does not hold the cores the next one needs.
    # The server only notices the detach when an operation's response stream ends, every 2 minutes by default
    # (a live client re-attaches at once, in milliseconds): end it every 15 s.
    conf.setdefault("spark.connect.execute.manager.detachedTimeout", "30s")
    conf.setdefault("spark.connect.execute.manager.maintenanceInterval", "5s")
    conf.setdefault("spark.connect.execute.reattachable.senderMaxStreamDuration", "15s")
    # Warnings and the server's own lines, not every query plan (include/spark/log4j2-connect.properties).
    conf.setdefault("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{CONNECT_LOG4J}")
    argv = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "mlplatform-connect",
        "--master",
        settings.spark_master,
        "--packages",
        packages,
    ]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, "spark-internal"]


def connect_server_env(settings: Settings) -> dict[str, str]:
    """The server's environment: its Python workers (UDFs, mapInArrow) run the venv's Python and import ``jobs``."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **submit_env(settings), "PYTHONPATH": path}


def delta_history(spark: SparkSession, path: str, limit: int = 1) -> list[Any]:
    """The newest ``limit`` commits of the Delta table at ``path`` (rows of DESCRIBE HISTORY), [] if there is none.
    Through SQL, so it works on a classic and a Spark Connect session (Delta's Python ``DeltaTable`` API needs
    Delta's Connect plugin, not published for this Delta)."""
    from pyspark.errors import AnalysisException

    try:
        return spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT {int(limit)}").collect()
    except AnalysisException as exc:
        if (
            "DELTA_TABLE_ONLY_OPERATION" in str(exc)
            or "DELTA_MISSING_DELTA_TABLE" in str(exc)
            or "PATH_NOT_FOUND" in str(exc)
        ):
            return []
        raise


def is_delta_table(spark: SparkSession, path: str) -> bool:
    """Whether a Delta table exists at ``path`` (through SQL, on either session kind)."""
    return bool(delta_history(spark, path, 1))


def read_delta(spark: SparkSession, path: str) -> DataFrame | None:
    """The Delta table at ``path``, or None if there is none yet."""
    return spark.read.format("delta").load(path) if is_delta_table(spark, path) else None


def _column_ddl(schema: Any) -> str:
    return ", ".join(
        f"`{f.name}` {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}" for f in schema.fields
    )


def create_delta_table(
    spark: SparkSession,
    path: str,
    schema: Any,
    properties: dict[str, str] | None = None,
    partition_by: str | None = None,
) -> None:
    """``CREATE TABLE IF NOT EXISTS`` a Delta table at ``path`` with ``schema`` (a StructType) and table properties:
    SQL, so it works over Spark Connect too (Delta's ``DeltaTable.createIfNotExists`` builder does not)."""
    sql = f"CREATE TABLE IF NOT EXISTS delta.`{path}` ({_column_ddl(schema)}) USING DELTA"
    if partition_by:
        sql += f" PARTITIONED BY (`{partition_by}`)"
    if properties:
        sql += " TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in properties.items()) + ")"
    spark.sql(sql)


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The Delta table's properties (``DESCRIBE DETAIL``)."""
    row = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    return dict(row["properties"] or {}) if row else {}


def merge_into(spark: SparkSession, path: str, source: DataFrame, on: str, clauses: str) -> None:
    """``MERGE INTO delta.`path` t USING <source> s ON <on> <clauses>`` (``t`` the table, ``s`` the source): SQL
    over a temporary view of ``source``, which works on a classic and a Spark Connect session alike."""
    import uuid

    view = f"mlp_merge_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    try:
        spark.sql(f"MERGE INTO delta.`{path}` AS t USING {view} AS s ON {on} {clauses}")
    finally:
        spark.catalog.dropTempView(view)


def to_pandas(frame: DataFrame) -> Any:
    """``frame.toPandas()`` without what a Spark Connect client leaves in ``attrs`` (its plan's metrics and
    observations): pandas writes ``attrs`` into a parquet file's metadata as JSON, which they are not."""
    out = frame.toPandas()
    out.attrs.clear()
    return out


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no JVM, no SparkContext here)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def default_parallelism(spark: SparkSession) -> int:
    """Spark's default parallelism: the SparkContext's on a classic session; over Connect, which has none here,
    ``spark.default.parallelism`` if the server set it, else its shuffle partitions."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    value = spark.conf.get("spark.default.parallelism", None) or spark.conf.get("spark.sql.shuffle.partitions")
    return max(1, int(value))


# The model tables of the single-model lake layout (before every model had its own folder), and their names now.
LEGACY_MODEL_TABLES = {
    "gold/customer_features": "features",
    "gold/labels": "labels",
    "gold/predictions": "predictions",
    "ops/data_quality": "data_quality",
    "ops/drift_metrics": "drift_metrics",
    "ops/drift_windows": "drift_windows",
    "ops/drift_alerts": "drift_alerts",
    "ops/model_decisions": "decisions",
}


class LegacyLakeError(RuntimeError):
    """The lake still holds a model's tables in the single-model layout of an older version."""


def local_lake(settings: Settings) -> Path | None:
    """The lake's folder when it is on a local file system (None for object stores)."""
    root = settings.lake_root
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://"))


def legacy_tables(settings: Settings) -> list[str]:
    """The single-model layout's tables (and training sets) this lake still holds (a local lake; an object store's
    layout is not listed here: its operators migrate it by copying, see docs/operations.md)."""
    base = local_lake(settings)
    if base is None:
        return []
    found = [old for old in LEGACY_MODEL_TABLES if (base / old / "_delta_log").is_dir()]
    return found + (["training_sets"] if (base / "training_sets").is_dir() else [])


def require_model_layout(settings: Settings) -> None:
    """Refuse to run on a lake whose model tables are still in the old single-model layout: a job would silently
    start a new, empty table next to the old one (and lose the audit's history), so say how to move them."""
    old = legacy_tables(settings)
    if old:
        raise LegacyLakeError(
            f"the lake {settings.lake_root} holds model tables of an older, single-model layout ({', '.join(old)}); "
            "every model's tables now live under models/<model>/. Move them to the model they belong to with "
            "`python -m jobs.lake.layout --migrate --model <model>`, then run again."
        )


def run_job(name: str, work: Callable[[Any, Settings], T], overrides: Callable[[Settings], dict] | None = None) -> T:
    """A job's ``main``: log to stderr, start its Spark session, run ``work(spark, settings)``, always stop Spark.

    On a Spark Connect session, SIGTERM (Airflow killing the task, a timeout) first interrupts this session's
    operations on the server, so a killed task never keeps the cores the next task needs."""
    import signal

    cli.setup_logging()
    settings = load()
    require_model_layout(settings)
    spark = get_spark(name, settings=settings, overrides=overrides(settings) if overrides else None)
    previous = None
    if is_connect(spark):

        def interrupt(signum: int, frame: Any) -> None:
            log.warning("%s: signal %d, interrupting this session's Spark operations", name, signum)
            try:
                spark.interruptAll()
            finally:
                raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return work(spark, settings)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        spark.stop()


def write_window(frame: DataFrame, path: str, where: str, partition_by: str | None) -> tuple[int | None, dict]:
    """Atomically replace the rows matching ``where`` in a Delta table (creating it); return this write's own
    commit: its version and operation metrics (None and {} if it committed nothing).

    The commit is found by a unique ``userMetadata`` tag, not taken as the newest one: a concurrent OPTIMIZE or
    another job's write may land between the write and the read of the history."""
    import uuid

    spark = frame.sparkSession
    token = f"mlp-replace-{uuid.uuid4().hex}"
    writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", where)
    writer = writer.option("userMetadata", token)
    (writer.partitionBy(partition_by) if partition_by else writer).save(path)
    mine = next((row for row in delta_history(spark, path, 100) if row["userMetadata"] == token), None)
    # An empty frame over an empty window commits nothing: no commit of ours, nothing written.
    if mine is None:
        return None, {}
    return int(mine["version"]), dict(mine["operationMetrics"] or {})


def replace_window(frame: DataFrame, path: str, where: str, partition_by: str | None) -> int:
    """``write_window``; return the rows written."""
    return int(write_window(frame, path, where, partition_by)[1].get("numOutputRows", 0))


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--prefetch`` resolves the Delta jars into the Ivy cache and checks a Delta round trip; ``--serve`` runs
    a Spark Connect server with Delta in the foreground (replacing this process, so a signal reaches the JVM)."""
    parser = cli.parser("jobs.spark", main.__doc__)
    parser.add_argument("--prefetch", action="store_true", help="download Delta jars into the cache")
    parser.add_argument("--serve", action="store_true", help="run a Spark Connect server with Delta (foreground)")
    parser.add_argument("--port", type=int, default=None, help="the server's port (default MLP_SPARK_CONNECT_PORT)")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting of the server (repeatable)"
    )
    args = parser.parse_args(argv)
    cli.setup_logging()
    if args.serve:
        settings = load()
        port = args.port or settings.spark_connect_port
        bad = [item for item in args.conf if "=" not in item]
        if bad:
            parser.error(f"--conf takes KEY=VALUE, got {bad}")
        extra = dict(item.split("=", 1) for item in args.conf)
        log.info("Spark Connect server with %s on %s:%d", delta_package(settings), settings.spark_local_ip, port)
        argv_ = connect_server_argv(settings, port, extra)
        os.execve(argv_[0], argv_, connect_server_env(settings))
    if not args.prefetch:
        parser.print_help()
        return 0
    import tempfile

    settings = load()
    spark = get_spark("prefetch", settings=settings, master="local[1]")
    with tempfile.TemporaryDirectory() as tmp:
        spark.range(3).write.format("delta").save(f"{tmp}/t")
        rows = spark.read.format("delta").load(f"{tmp}/t").count()
    spark.stop()
    log.info("Delta %s ready in %s (round trip read %d rows)", delta_package(settings), settings.spark_ivy_dir, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
