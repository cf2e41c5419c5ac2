"""The promotion audit, each model's ``decisions`` table (under ``<lake>/models/<model>/``): append-only, one row per
phase of a decision.

A decision is recorded ``decided`` (with everything needed to carry it out: the target version, the champion it
was made against, the evaluation, as JSON) before any alias moves, then ``applied`` once the aliases say it
happened, or ``failed`` with the error. Nothing is updated or deleted: the table has ``delta.appendOnly``, so a
MERGE, UPDATE or DELETE is refused by Delta itself, and OPTIMIZE/VACUUM only ever drop files whose rows were
rewritten, never a row. Appends are blind, so concurrent writers never conflict on rows; a conflict on the
table's creation or metadata is retried.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.lake.lease import retry_conflicts
from jobs.settings import Settings
from jobs.spark import create_delta_table, is_delta_table, table_properties

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

AUDIT_TABLE = "decisions"  # <lake>/models/<model>/decisions
DECIDED, APPLIED, FAILED = "decided", "applied", "failed"
TERMINAL = (APPLIED, FAILED)
AUDIT_SCHEMA = (
    "decision_id string, model string, action string, mode string, applied boolean, candidate_version int, "
    "champion_before int, champion_after int, previous_champion_after int, gates_passed boolean, "
    "failed_gates string, gates_json string, candidate_metrics_json string, champion_metrics_json string, "
    "candidate_run_id string, champion_run_id string, evaluation_run_id string, evaluation_set string, "
    "triggered_by string, reason string, dag_id string, dag_run_id string, report string, decided_at timestamp, "
    "phase string, forced boolean, error string, decision_json string, recorded_at timestamp"
)
MOVES = ("promoted", "forced", "rolled_back")  # actions that move the champion alias


def path(settings: Settings, model: str) -> str:
    """Where ``model``'s audit table lives."""
    return settings.model_table_path(model, AUDIT_TABLE)


_READY: set[str] = set()  # tables this process already made sure of


def ensure(spark: SparkSession, settings: Settings, model: str) -> str:
    """Create the model's audit table (append-only) if needed; an older table gains the new columns and the
    property."""
    location = path(settings, model)
    if location in _READY and is_delta_table(spark, location):
        return location
    schema = spark.createDataFrame([], AUDIT_SCHEMA).schema

    def create() -> None:
        create_delta_table(spark, location, schema, {"delta.appendOnly": "true"})
        present = spark.read.format("delta").load(location).columns
        missing = [f for f in schema.fields if f.name not in present]
        if missing:  # a table from before phases: add the columns (old rows read them as null)
            columns = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in missing)
            spark.sql(f"ALTER TABLE delta.`{location}` ADD COLUMNS ({columns})")
        if table_properties(spark, location).get("delta.appendOnly") != "true":
            spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ('delta.appendOnly' = 'true')")

    retry_conflicts(create, what=f"create {model}'s decisions")
    _READY.add(location)
    return location


def row(decision: dict[str, Any], phase: str, error: str = "") -> dict[str, Any]:
    """The audit row for ``decision`` in ``phase`` (the whole decision rides along as JSON, for a retry)."""
    candidate, champion = decision.get("candidate") or {}, decision.get("champion") or {}
    return {
        "decision_id": decision["decision_id"],
        "model": decision["model"],
        "action": decision["action"],
        "mode": decision["mode"],
        "applied": phase == APPLIED,
        "candidate_version": candidate.get("version"),
        "champion_before": decision["champion_before"],
        "champion_after": decision["champion_after"],
        "previous_champion_after": decision["previous_champion_after"],
        "gates_passed": decision["gates_passed"],
        "failed_gates": ",".join(decision["failed_gates"]),
        "gates_json": json.dumps(decision["gates"]),
        "candidate_metrics_json": json.dumps(candidate.get("metrics") or {}),
        "champion_metrics_json": json.dumps(champion.get("metrics") or {}),
        "candidate_run_id": candidate.get("run_id"),
        "champion_run_id": champion.get("run_id"),
        "evaluation_run_id": decision.get("evaluation_run_id"),
        "evaluation_set": json.dumps(decision.get("evaluation_set") or {}),
        "triggered_by": decision["triggered_by"],
        "reason": decision["reason"],
        "dag_id": decision["dag_id"],
        "dag_run_id": decision["dag_run_id"],
        "report": decision.get("report"),
        "decided_at": datetime.fromisoformat(decision["decided_at"]),
        "phase": phase,
        "forced": bool(decision.get("forced")),
        "error": error or None,
        "decision_json": json.dumps(decision, default=str),
        "recorded_at": datetime.now(UTC),
    }


def append(spark: SparkSession, settings: Settings, record: dict[str, Any]) -> None:
    """Append one phase row (a blind append: it never conflicts with another writer's rows)."""
    location = ensure(spark, settings, record["model"])
    frame = spark.createDataFrame([record], AUDIT_SCHEMA)
    retry_conflicts(lambda: frame.write.format("delta").mode("append").save(location), what="audit append")


def read(spark: SparkSession, settings: Settings, model: str) -> list[dict[str, Any]]:
    """Every audit row of ``model``, oldest first (no table yet: none)."""
    from pyspark.sql import functions as F

    location = path(settings, model)
    if not is_delta_table(spark, location):
        return []
    frame = spark.read.format("delta").load(location).where(F.col("model") == model)
    if "recorded_at" in frame.columns:
        frame = frame.withColumn("_order", F.coalesce("recorded_at", "decided_at")).orderBy("_order").drop("_order")
    else:
        frame = frame.orderBy("decided_at")
    return [r.asDict() for r in frame.collect()]


def phase_of(record: dict[str, Any]) -> str:
    """A row's phase (rows from before phases existed: applied or decided by their ``applied`` flag)."""
    return record.get("phase") or (APPLIED if record.get("applied") else DECIDED)


def latest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest row of each decision, by decision id (rows oldest first, as ``read`` returns them)."""
    out: dict[str, dict[str, Any]] = {}
    for record in rows:
        out[record["decision_id"]] = record
    return out


def decision(record: dict[str, Any]) -> dict[str, Any] | None:
    """The decision a row carries (None for rows from before phases)."""
    return json.loads(record["decision_json"]) if record.get("decision_json") else None


def past_champions(rows: list[dict[str, Any]]) -> set[int]:
    """Every version the audit shows as champion at some point (before or after an applied decision)."""
    seen: set[int] = set()
    for record in rows:
        if phase_of(record) != APPLIED:
            continue
        for key in ("champion_before", "champion_after"):
            if record.get(key) is not None:
                seen.add(int(record[key]))
    return seen


def last_replaced(rows: list[dict[str, Any]], champion: int | None) -> int | None:
    """The champion that the latest applied move to ``champion`` replaced: where a rollback goes without an alias."""
    for record in reversed(rows):
        if (
            phase_of(record) == APPLIED
            and record.get("action") in MOVES
            and record.get("champion_after") == champion
            and record.get("champion_before") is not None
        ):
            return int(record["champion_before"])
    return None
