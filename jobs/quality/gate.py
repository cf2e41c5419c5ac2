"""Data-quality gate: Great Expectations 1.x suites on the window's bronze, volume, silver and gold Spark frames.

The suites live in ``include/expectations/<dataset>.yaml`` with a severity per expectation. A run validates the
run's window (landing dates for bronze/volume/silver, as-of dates for gold) through one GX checkpoint per dataset
on the Spark DataFrames themselves (GX computes the metrics in Spark; nothing is collected to pandas), writes one
row per expectation to ``models/<model>/data_quality``, builds GX Data Docs plus a ``summary.json`` under
``reports/quality/<model>/<start>_<end>/``, and fails (exit 1) when any critical expectation failed, so the
tasks downstream of the gate (training, scoring) never see the data.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobs import cli, reports
from jobs.config import ModelConfig, feature_columns, load_model_config, source_first_date
from jobs.features import build, labels
from jobs.lake import clean, ingest
from jobs.settings import REPO_ROOT, Settings
from jobs.spark import is_delta_table, replace_window, run_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SUITES_DIR = REPO_ROOT / "include" / "expectations"
DATASETS: tuple[str, ...] = ("bronze", "volume", "silver", "gold")
QUALITY_TABLE = "data_quality"  # <lake>/models/<model>/data_quality: one row per expectation per gate run
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectationSpec(_Strict):
    """One expectation of a suite file."""

    type: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "warning"]
    only_if: Literal["history", "warm"] | None = None
    notes: str = ""


class SuiteSpec(_Strict):
    """A suite file: the dataset it validates, its parameters and its expectations."""

    dataset: Literal["bronze", "volume", "silver", "gold"]
    parameters: dict[str, float | int] = Field(default_factory=dict)
    expectations: tuple[ExpectationSpec, ...] = ()
    per_feature: tuple[ExpectationSpec, ...] = ()
    per_window_pair: tuple[ExpectationSpec, ...] = ()


class QualityGateFailed(RuntimeError):
    """At least one critical expectation failed; the message names them."""


@dataclass
class Outcome:
    """The result of one expectation in one run (one row of models/<model>/data_quality)."""

    dataset: str
    expectation: str
    column: str
    severity: str
    success: bool
    observed: str
    expected: str
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    notes: str = ""
    kwargs: str = ""


@dataclass
class GateResult:
    """What one gate run found, where its report is, and whether it passed."""

    model: str
    start: str
    end: str
    run_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: str = ""
    summary_path: str = ""
    seconds: float = 0.0
    # The Delta versions of gold features and labels this run validated: what training and scoring may use.
    versions: dict[str, int | None] = field(default_factory=dict)

    @property
    def critical_failures(self) -> list[Outcome]:
        """Failed critical expectations: any of these fails the gate."""
        return [o for o in self.outcomes if o.severity == "critical" and not o.success]

    @property
    def warnings(self) -> list[Outcome]:
        """Failed warning-level expectations: recorded, the run goes on."""
        return [o for o in self.outcomes if o.severity == "warning" and not o.success]

    @property
    def passed(self) -> bool:
        """True when no critical expectation failed."""
        return not self.critical_failures

    def to_json(self) -> dict[str, Any]:
        """The summary file's content (what the failure email is built from)."""
        return {
            "model": self.model,
            "start": self.start,
            "end": self.end,
            "run_id": self.run_id,
            "passed": self.passed,
            "evaluated": len(self.outcomes),
            "critical_failures": [asdict(o) for o in self.critical_failures],
            "warnings": [asdict(o) for o in self.warnings],
            "skipped": self.skipped,
            "report": self.report,
            "seconds": self.seconds,
            "versions": self.versions,
        }


def load_suite(dataset: str, suites_dir: Path = SUITES_DIR) -> SuiteSpec:
    """Load and validate ``<suites_dir>/<dataset>.yaml``; every expectation type must exist in GX."""
    import great_expectations as gx

    path = suites_dir / f"{dataset}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"expectation suite not found: {path}")
    try:
        suite = SuiteSpec.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if suite.dataset != dataset:
        raise ValueError(f"{path}: dataset {suite.dataset!r} must equal the file name {dataset!r}")
    for spec in (*suite.expectations, *suite.per_feature, *suite.per_window_pair):
        if not hasattr(gx.expectations, _class_name(spec.type)):
            raise ValueError(f"{path}: {spec.type} is not a Great Expectations 1.x expectation")
    return suite


def _class_name(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))


def _fill(value: Any, values: dict[str, Any]) -> Any:
    """Replace ``{name}`` placeholders; a string that is exactly one placeholder takes the value's own type."""
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return values[whole.group(1)]
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)


def expand(suite: SuiteSpec, config: ModelConfig, values: dict[str, Any]) -> list[ExpectationSpec]:
    """The suite's concrete expectations for this model and run (templates expanded, placeholders filled)."""
    specs = list(suite.expectations)
    for feature in feature_columns(config):
        specs += [_with(spec, {"feature": feature}) for spec in suite.per_feature]
    suffixes = [f"{w}d" for w in config.features.windows_days] + ["all"]
    for short, long in itertools.pairwise(suffixes):
        specs += [_with(spec, {"short": short, "long": long}) for spec in suite.per_window_pair]
    return [s.model_copy(update={"kwargs": _fill(s.kwargs, values)}) for s in specs]


def _with(spec: ExpectationSpec, names: dict[str, str]) -> ExpectationSpec:
    kwargs = {
        k: _PLACEHOLDER.sub(lambda m: names.get(m.group(1), m.group(0)), v) if isinstance(v, str) else v
        for k, v in spec.kwargs.items()
    }
    return spec.model_copy(update={"kwargs": kwargs})


def window_dates(start: date, end: date) -> list[str]:
    """Every date of the window as ISO strings."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def volume_band(history: list[int], suite: SuiteSpec) -> tuple[float, float] | None:
    """(min, max) daily rows from the trailing history's median, or None with too little history."""
    p = suite.parameters
    if len(history) < int(p.get("min_history_days", 7)):
        return None
    median = statistics.median(history)
    return float(p.get("band_low", 0.2)) * median, float(p.get("band_high", 5.0)) * median


def _read(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    try:
        return reader.load(path)
    except Exception as exc:
        if "is not a Delta table" in str(exc) or "PATH_NOT_FOUND" in str(exc):
            raise FileNotFoundError(f"{path} does not exist; run the stages before the gate") from exc
        raise


def datasets(
    spark: SparkSession,
    settings: Settings,
    model: str,
    start: date,
    end: date,
    suite: SuiteSpec,
    gold_version: int | None = None,
) -> tuple[dict[str, DataFrame], list[int]]:
    """The four frames the suites validate for the window (the model's features at ``gold_version``: the version
    the gate records as validated), and the trailing daily volumes before it."""
    from pyspark.sql import functions as F

    landing = (F.col("landing_date") >= F.lit(start)) & (F.col("landing_date") <= F.lit(end))
    recon = _read(spark, settings.table_path(*clean.RECONCILIATION_TABLE))
    volume = recon.where(landing).select(
        "landing_date",
        "landed",
        "accepted",
        "duplicates",
        "quarantined",
        (F.col("quarantined") / F.greatest(F.col("landed"), F.lit(1))).alias("quarantine_share"),
        (F.col("duplicates") / F.greatest(F.col("landed"), F.lit(1))).alias("duplicate_share"),
    )
    history_days = int(suite.parameters.get("history_days", 28))
    history = [
        int(r.landed)
        for r in recon.where(
            (F.col("landing_date") < F.lit(start)) & (F.col("landing_date") >= F.lit(start - timedelta(history_days)))
        )
        .select("landed")
        .collect()
    ]
    frames = {
        "bronze": _read(spark, settings.table_path(*ingest.BRONZE_TABLE)).where(landing),
        "volume": volume,
        "silver": _read(spark, settings.table_path(*clean.SILVER_TABLE)).where(landing),
        "gold": _read(spark, settings.model_table_path(model, build.FEATURES_TABLE), gold_version).where(
            (F.col("as_of_date") >= F.lit(start)) & (F.col("as_of_date") <= F.lit(end))
        ),
    }
    return frames, history


def _expected(kwargs: dict[str, Any]) -> str:
    """A short human reading of what an expectation asked for."""
    shown = {k: v for k, v in kwargs.items() if k not in {"column", "batch_id", "condition_parser", "result_format"}}
    if "value_set" in shown and isinstance(shown["value_set"], list) and len(shown["value_set"]) > 6:
        values = shown["value_set"]
        shown["value_set"] = f"{len(values)} values {values[0]}..{values[-1]}"
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "-"


def _observed(result: dict[str, Any], exception: dict[str, Any] | None) -> str:
    if exception and exception.get("raised_exception"):
        return f"error: {str(exception.get('exception_message'))[:300]}"
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, list) and len(value) > 6:
            return f"{len(value)} values {value[0]}..{value[-1]}"
        if isinstance(value, dict) and "details" not in value:
            return json.dumps(value, default=str)[:300]
        return str(value)
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list") or []
        shown = f"; e.g. {json.dumps(sample[:3], default=str)}" if sample else ""
        return f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected{shown}"
    return json.dumps(result, default=str)[:300]


def expectation_column(kwargs: dict[str, Any]) -> str:
    """The column (or comma-joined columns) an expectation is about, "" for a table-level one."""
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_list" in kwargs:
        return ",".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return ""


def validate(
    frames: dict[str, DataFrame], specs: dict[str, list[ExpectationSpec]], docs_dir: Path, run_name: str
) -> list[Outcome]:
    """Run one GX checkpoint per dataset on its Spark frame; build Data Docs into ``docs_dir``."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    context.add_data_docs_site(
        site_name="quality",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_spark(name="lake")
    outcomes: list[Outcome] = []
    for dataset, dataset_specs in specs.items():
        if not dataset_specs:
            continue
        batch = source.add_dataframe_asset(name=dataset).add_batch_definition_whole_dataframe(f"{dataset}-window")
        suite = context.suites.add(gx.ExpectationSuite(name=dataset))
        notes = {}
        for i, spec in enumerate(dataset_specs):
            cls = getattr(gx.expectations, _class_name(spec.type))
            suite.add_expectation(
                cls(**spec.kwargs, severity=spec.severity, notes=spec.notes or None, meta={"index": i})
            )
            notes[i] = spec.notes
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=dataset, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"gate-{dataset}",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["quality"])],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
            )
        )
        started = time.perf_counter()
        result = checkpoint.run(
            batch_parameters={"dataframe": frames[dataset]}, run_id=RunIdentifier(run_name=run_name)
        )
        log.info("gate %s: %d expectations in %.1fs", dataset, len(dataset_specs), time.perf_counter() - started)
        for validation in result.run_results.values():
            for r in validation.results:
                config = r.expectation_config
                kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
                outcomes.append(
                    Outcome(
                        dataset=dataset,
                        expectation=config.type,
                        column=expectation_column(kwargs),
                        severity=str(getattr(config.severity, "value", config.severity)),
                        success=bool(r.success),
                        observed=_observed(r.result or {}, r.exception_info),
                        expected=_expected(kwargs),
                        unexpected_count=(r.result or {}).get("unexpected_count"),
                        unexpected_percent=(r.result or {}).get("unexpected_percent"),
                        notes=notes.get((config.meta or {}).get("index"), ""),
                        kwargs=json.dumps(kwargs, default=str, sort_keys=True),
                    )
                )
    return outcomes


def plan(
    suites: dict[str, SuiteSpec], config: ModelConfig, start: date, end: date, history: list[int]
) -> tuple[dict[str, list[ExpectationSpec]], list[str]]:
    """The concrete expectations per dataset for this run, and those skipped because their condition is unmet."""
    warmup_end = config.source.first_date + timedelta(days=int(suites["gold"].parameters.get("warmup_days", 30)))
    band = volume_band(history, suites["volume"])
    values: dict[str, Any] = {
        **{k: v for suite in suites.values() for k, v in suite.parameters.items()},
        "start": start.isoformat(),
        "end": end.isoformat(),
        "first_date": source_first_date(config.source.table).isoformat(),  # what clean accepts into silver
        "window_dates": window_dates(start, end),
        "warmup_end": warmup_end.isoformat(),
        "band_min": band[0] if band else None,
        "band_max": band[1] if band else None,
    }
    conditions = {"history": band is not None, "warm": end >= warmup_end}
    specs: dict[str, list[ExpectationSpec]] = {}
    skipped: list[str] = []
    for name, suite in suites.items():
        specs[name] = []
        for spec in expand(suite, config, values):
            if spec.only_if and not conditions[spec.only_if]:
                skipped.append(f"{name}: {spec.type}({expectation_column(spec.kwargs)}) needs {spec.only_if}")
            else:
                specs[name].append(spec)
    return specs, skipped


def run_gate(
    spark: SparkSession,
    settings: Settings,
    config: ModelConfig,
    start: date,
    end: date,
    run_id: str,
    suites_dir: Path = SUITES_DIR,
) -> GateResult:
    """Validate the window, persist the outcomes and the report; the caller decides what a failure does."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    started = time.perf_counter()
    suites = {name: load_suite(name, suites_dir) for name in DATASETS}
    versions = table_versions(spark, settings, config.name)
    frames, history = datasets(spark, settings, config.name, start, end, suites["volume"], versions["features"])
    specs, skipped = plan(suites, config, start, end, history)
    result = GateResult(
        model=config.name, start=start.isoformat(), end=end.isoformat(), run_id=run_id, versions=versions
    )
    result.skipped = skipped
    if skipped:
        log.info("not checked this run (condition not met): %s", skipped)

    out = reports.report_dir(settings, "quality", config.name, start, end)
    docs = out / "docs"
    shutil.rmtree(docs, ignore_errors=True)  # a re-run of the window replaces its report
    gold = frames["gold"].persist()
    try:
        frames["gold"] = gold
        result.outcomes = validate(frames, specs, docs, run_id)
    finally:
        gold.unpersist()
    earlier = unresolved_failures(spark, settings, config.name, start, end)
    result.outcomes.append(
        Outcome(
            dataset="history",
            expectation="earlier_windows_passed",
            column="window",
            severity="critical",
            success=not earlier,
            observed=", ".join(earlier) or "none failed",
            expected="every earlier window's latest gate run passed",
            notes="a failed window's rows are in the lake: fix its data and re-run its feature pipeline first",
        )
    )
    result.report = reports.file_uri(docs / "index.html")
    result.seconds = round(time.perf_counter() - started, 1)
    result.summary_path = str(reports.write_summary(out / reports.SUMMARY_FILES["quality"], result.to_json()))
    _persist(spark, settings, result)
    return result


def table_versions(spark: SparkSession, settings: Settings, model: str) -> dict[str, int | None]:
    """The current Delta versions of ``model``'s features and labels (None: no such table yet)."""
    from jobs.spark import delta_history

    found: dict[str, int | None] = {}
    for name, table in (("features", build.FEATURES_TABLE), ("labels", labels.LABELS_TABLE)):
        newest = delta_history(spark, settings.model_table_path(model, table), 1)
        found[name] = int(newest[0]["version"]) if newest else None
    return found


def unresolved_failures(spark: SparkSession, settings: Settings, model: str, start: date, end: date) -> list[str]:
    """Earlier windows whose latest gate run failed a critical expectation and that no later passing run covered:
    their rows are in the lake, so no later window may publish (it would train and score on them unnoticed)."""
    from pyspark.sql import functions as F

    path = settings.model_table_path(model, QUALITY_TABLE)
    if not is_delta_table(spark, path):
        return []
    runs = (
        spark.read.format("delta")
        .load(path)
        .where(
            (F.col("model") == model) & ~((F.col("window_start") == F.lit(start)) & (F.col("window_end") == F.lit(end)))
        )
        .where(F.col("window_start") < F.lit(start))
        .groupBy("window_start", "window_end")
        .agg(
            F.max(F.when((F.col("severity") == "critical") & ~F.col("success"), 1).otherwise(0)).alias("failed"),
            F.max("validated_at").alias("at"),
        )
        .collect()
    )
    passed = [r for r in runs if not r.failed]
    return [
        f"{r.window_start}..{r.window_end}"
        for r in sorted(runs, key=lambda r: r.window_start)
        if r.failed
        and not any(p.window_start <= r.window_start and p.window_end >= r.window_end and p.at > r.at for p in passed)
    ]


def validated_versions(settings: Settings, model: str) -> dict[str, int | None]:
    """The gold versions the newest passing gate run validated (latest window end): the only versions training may
    pin. No Spark: read from the gate summaries. Raises when no window has passed the gate."""
    best = None
    for path in sorted((settings.reports_root / "quality" / model).glob(f"*/{reports.SUMMARY_FILES['quality']}")):
        summary = reports.read_summary(path)
        versions = (summary or {}).get("versions") or {}
        if not summary or not summary.get("passed") or versions.get("features") is None:
            continue
        rank = (summary["end"], path.stat().st_mtime)
        if best is None or rank > best[0]:
            best = (rank, versions)
    if best is None:
        raise FileNotFoundError(
            f"no window of {model} has passed the data-quality gate with recorded versions: run the feature pipeline"
        )
    labels_version = best[1].get("labels")
    return {"features": int(best[1]["features"]), "labels": None if labels_version is None else int(labels_version)}


def _persist(spark: SparkSession, settings: Settings, result: GateResult) -> int:
    """Replace the window's rows in the model's data_quality table (one row per expectation)."""
    schema = (
        "model string, window_start date, window_end date, run_id string, dataset string, expectation string, "
        "column string, severity string, success boolean, observed string, expected string, "
        "unexpected_count long, unexpected_percent double, notes string, kwargs string, report string, "
        "validated_at timestamp"
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            result.model,
            date.fromisoformat(result.start),
            date.fromisoformat(result.end),
            result.run_id,
            o.dataset,
            o.expectation,
            o.column,
            o.severity,
            o.success,
            o.observed,
            o.expected,
            None if o.unexpected_count is None else int(o.unexpected_count),
            None if o.unexpected_percent is None else float(o.unexpected_percent),
            o.notes,
            o.kwargs,
            result.report,
            now,
        )
        for o in result.outcomes
    ]
    frame = spark.createDataFrame(rows, schema)
    where = f"model = '{result.model}' AND window_start = '{result.start}' AND window_end = '{result.end}'"
    return replace_window(frame, settings.model_table_path(result.model, QUALITY_TABLE), where, None)


def describe(result: GateResult) -> str:
    """A plain-text table of the failures for logs and exceptions."""
    lines = [
        f"data-quality gate for {result.model} {result.start}..{result.end}: "
        f"{'PASSED' if result.passed else 'FAILED'} ({len(result.outcomes)} expectations, "
        f"{len(result.critical_failures)} critical failures, {len(result.warnings)} warnings, {result.seconds}s)"
    ]
    for o in [*result.critical_failures, *result.warnings]:
        lines.append(
            f"  [{o.severity}] {o.dataset}.{o.expectation}({o.column}): observed {o.observed}; expected {o.expected}"
        )
    lines.append(f"  report: {result.report}")
    return "\n".join(lines)


def enforce(result: GateResult) -> None:
    """Raise QualityGateFailed naming every failed critical expectation; warnings only log."""
    for o in result.warnings:
        log.warning("data-quality warning: %s.%s(%s) observed %s", o.dataset, o.expectation, o.column, o.observed)
    if not result.passed:
        names = ", ".join(f"{o.dataset}.{o.expectation}({o.column})" for o in result.critical_failures)
        raise QualityGateFailed(f"critical expectations failed: {names}; report {result.report}")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--model NAME --start D [--end D] --run-id ID``; exit 1 when a critical expectation failed."""
    parser = cli.parser("jobs.quality.gate", "data-quality gate (GX 1.x)")
    cli.add_model(parser)
    cli.add_window(parser)
    args = parser.parse_args(argv)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    config = load_model_config(args.model)
    result = run_job(
        "quality",
        lambda spark, settings: run_gate(spark, settings, config, *cli.window(args), args.run_id),
    )
    log.info("%s", describe(result))
    log.info("Data Docs: %s  summary: %s", result.report, result.summary_path)
    enforce(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
