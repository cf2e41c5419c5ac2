"""Champion/challenger promotion: gates as a pure function, MLflow alias moves that are check-and-set, an audit
trail in Delta and on the model versions, and one-step rollback.

``should_promote(challenger, champion, gates, primary)`` returns every gate's result, so a rejection says which
gate failed and by how much; without a champion only the absolute gates apply. ``decide`` is the job around it:
both models scored on the same recent matured holdout (``jobs.ml.evaluation``), the verdict under the config's mode
(enabled, dry_run, disabled), an HTML report logged to MLflow, an ``ops/model_decisions`` row, and the alias move
``champion`` -> new version, ``previous_champion`` -> the old one, refused if the champion changed meanwhile.
``python -m jobs.ml.promotion auto|promote|rollback ...`` runs it under spark-submit from the DAGs.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import cli, reports
from jobs.config import ModelConfig, load_model_config
from jobs.ml.evaluation import evaluate_scores, evaluation_set, plots, score, write_report
from jobs.ml.gates import Evaluation, should_promote
from jobs.ml.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    PromotionError,
    StaleChampionError,
    aliases,
    experiment_id,
    model_version,
    move_champion,
)
from jobs.settings import Settings, load
from jobs.spark import run_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

AUDIT_TABLE = ("ops", "model_decisions")
AUDIT_SCHEMA = (
    "decision_id string, model string, action string, mode string, applied boolean, candidate_version int, "
    "champion_before int, champion_after int, previous_champion_after int, gates_passed boolean, "
    "failed_gates string, gates_json string, candidate_metrics_json string, champion_metrics_json string, "
    "candidate_run_id string, champion_run_id string, evaluation_run_id string, evaluation_set string, "
    "triggered_by string, reason string, dag_id string, dag_run_id string, report string, decided_at timestamp"
)


def latest_trainset(client: Any, model: str) -> str:
    """The training-set key of the newest version that has one: its holdout is the most recent matured data."""
    found = [
        (int(v.version), v.tags["trainset"])
        for v in client.search_model_versions(f"name = '{model}'")
        if v.tags.get("trainset")
    ]
    if not found:
        raise PromotionError(f"{model}: no registered version names a training set; train one first")
    return max(found)[1]


def _side(client: Any, config: ModelConfig, version: int, frame: Any, report: dict) -> tuple[Evaluation, dict]:
    """Score one registered version on the evaluation set; its Evaluation and a JSON-friendly description."""
    registered = model_version(client, config.name, version)
    scores = score(f"models:/{config.name}/{version}", frame)
    evaluation = evaluate_scores(frame, scores, config)
    report["scores"][f"v{version}"] = scores
    return evaluation, {
        "version": version,
        "run_id": registered.run_id,
        "family": registered.tags.get("family", ""),
        "metrics": evaluation.metrics,
        "slices": evaluation.slices,
        "score_mean": evaluation.score_mean,
        "score_std": evaluation.score_std,
        "positive_rate": evaluation.positive_rate,
    }


def audit_row(decision: dict[str, Any], applied: bool) -> dict[str, Any]:
    """The ops/model_decisions row for ``decision``."""
    candidate, champion = decision.get("candidate") or {}, decision.get("champion") or {}
    return {
        "decision_id": decision["decision_id"],
        "model": decision["model"],
        "action": decision["action"],
        "mode": decision["mode"],
        "applied": applied,
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
    }


def write_audit(spark: SparkSession, settings: Settings, row: dict[str, Any]) -> None:
    """Upsert one decision into ops/model_decisions (MERGE on decision_id: a retried task replaces its own row)."""
    from delta.tables import DeltaTable

    path = settings.table_path(*AUDIT_TABLE)
    frame = spark.createDataFrame([row], AUDIT_SCHEMA)
    DeltaTable.createIfNotExists(spark).location(path).addColumns(frame.schema).execute()
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(frame.alias("s"), "t.decision_id = s.decision_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def read_audit(spark: SparkSession, settings: Settings, model: str) -> list[dict[str, Any]]:
    """Every decision recorded for ``model``, oldest first."""
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(settings.table_path(*AUDIT_TABLE)).where(F.col("model") == model)
    return [r.asDict() for r in frame.orderBy("decided_at").collect()]


def _tag_versions(client: Any, decision: dict[str, Any]) -> None:
    """The decision on the MLflow versions themselves, so the registry UI tells the story without the audit table."""
    model, action = decision["model"], decision["action"]
    stamp = {
        "mlp.decision_id": decision["decision_id"],
        "mlp.decided_at": decision["decided_at"],
        "mlp.decided_by": decision["triggered_by"],
        "mlp.decision_reason": decision["reason"][:4000],
    }
    candidate = (decision.get("candidate") or {}).get("version")
    if candidate is not None:
        tags = {
            **stamp,
            "mlp.decision": action,
            "mlp.failed_gates": ",".join(decision["failed_gates"]) or "none",
            "mlp.evaluation_run": decision.get("evaluation_run_id") or "",
        }
        for key, value in tags.items():
            client.set_model_version_tag(model, str(candidate), key, value)
    before = decision["champion_before"]
    if decision["applied"] and before is not None and before != candidate:
        client.set_model_version_tag(model, str(before), "mlp.replaced_by", f"v{candidate} ({action})")
        client.set_model_version_tag(model, str(before), "mlp.replaced_decision_id", decision["decision_id"])


def _log_evaluation(decision: dict[str, Any], figures_dir: Path, experiment_id: str) -> str:
    """An MLflow run holding the evaluation: metrics of both sides, the HTML report and the decision JSON."""
    import mlflow

    candidate, champion = decision.get("candidate") or {}, decision.get("champion") or {}
    title = f"evaluate v{candidate.get('version')} vs " + (f"v{champion['version']}" if champion else "no champion")
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=title,
        tags={
            "mlp.role": "evaluation",
            "mlp.model": decision["model"],
            "mlp.dag_run_id": decision["dag_run_id"],
            "mlp.decision_id": decision["decision_id"],
            "mlp.action": decision["action"],
        },
    ) as run:
        for side, data in (("candidate", candidate), ("champion", champion)):
            metrics = {f"{side}_{k}": v for k, v in (data.get("metrics") or {}).items()}
            if metrics:
                mlflow.log_metrics(metrics)
        mlflow.log_params({"candidate_version": candidate.get("version"), "champion_version": champion.get("version")})
        mlflow.log_artifacts(str(figures_dir), "evaluation")
        return run.info.run_id


def _summary(decision: dict[str, Any]) -> str:
    """One sentence a person reads first in the e-mail and the report."""
    m = decision["primary_metric"]
    cand, champ = decision.get("candidate") or {}, decision.get("champion") or {}
    versus = ""
    if cand.get("metrics") and m in cand["metrics"]:
        versus = f" ({m} {cand['metrics'][m]:.4f}"
        versus += f" vs champion v{champ['version']} {champ['metrics'][m]:.4f})" if champ.get("metrics") else ")"
    failed = ", ".join(decision["failed_gates"])
    action = decision["action"]
    return {
        "promoted": f"v{cand.get('version')} is the new champion{versus}; it passed every gate.",
        "forced": f"v{cand.get('version')} was FORCED to champion{versus} despite failed gates ({failed or 'none'}).",
        "rejected": f"v{cand.get('version')} was not promoted{versus}: failed {failed}. The champion is unchanged.",
        "rolled_back": f"Rolled back: champion v{decision['champion_before']} -> v{decision['champion_after']}.",
        "dry_run": f"Dry run: v{cand.get('version')} would "
        + ("be promoted" if decision["gates_passed"] else f"not be promoted (failed {failed})")
        + f"{versus}; no alias moved.",
        "skipped": f"Nothing to decide: {decision['reason']}",
    }[action]


def decide(
    spark: SparkSession,
    settings: Settings,
    config: ModelConfig,
    *,
    kind: str,
    version: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    reason: str = "",
    triggered_by: str = "manual",
    dag_id: str = "",
    dag_run_id: str = "manual",
    client: Any = None,
) -> dict[str, Any]:
    """Evaluate, decide, audit and (unless dry-run, disabled or rejected) move the aliases; return the decision.

    ``kind``: ``auto`` (the challenger after training, under the config's mode), ``promote`` (a given version; a
    failed gate is final unless ``force`` with a written reason) or ``rollback`` (to ``version``, default
    ``previous_champion``). The audit row is written before the alias moves (``applied`` false) and updated once the
    move is verified, so no alias ever moves without a record; a retried task replaces its own row.
    """
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    if kind not in {"auto", "promote", "rollback"}:
        raise ValueError(f"kind must be auto, promote or rollback, not {kind!r}")
    gates_config = config.promotion
    reason = reason.strip()
    if (kind == "rollback" or force) and len(reason) < gates_config.force_reason_min_chars:
        raise PromotionError(
            f"a {'rollback' if kind == 'rollback' else 'forced promotion'} needs a written reason of at least "
            f"{gates_config.force_reason_min_chars} characters (got {reason!r})"
        )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = client or MlflowClient()
    model = config.name
    before = aliases(client, model)
    champion_before = before.get(CHAMPION)
    mode = gates_config.mode if kind == "auto" else ("dry_run" if dry_run else "enabled")
    decision: dict[str, Any] = {
        "decision_id": f"{model}/{dag_run_id}/{kind}",
        "model": model,
        "kind": kind,
        "mode": mode,
        "primary_metric": config.training.primary_metric,
        "champion_before": champion_before,
        "champion_after": champion_before,
        "previous_champion_after": before.get(PREVIOUS_CHAMPION),
        "gates": [],
        "gates_passed": False,
        "failed_gates": [],
        "candidate": None,
        "champion": None,
        "triggered_by": triggered_by,
        "reason": reason,
        "dag_id": dag_id,
        "dag_run_id": dag_run_id,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "applied": False,
        "report": None,
        "evaluation_run_id": None,
    }
    out_dir = reports.report_dir(settings, "evaluation", model, dag_run_id)
    out_dir.mkdir(parents=True, exist_ok=True)

    if kind == "auto":
        candidate = before.get(CHALLENGER)
        if mode == "disabled" or candidate is None or candidate == champion_before:
            why = (
                "promotion.mode is disabled"
                if mode == "disabled"
                else "no challenger version"
                if candidate is None
                else f"challenger v{candidate} is already the champion"
            )
            decision.update(action="skipped", reason=f"{why}" + (f" ({reason})" if reason else ""))
            decision["candidate"] = {"version": candidate} if candidate is not None else None
            return _finish(spark, settings, client, decision, out_dir, figures=[], move=None)
    elif kind == "promote":
        if version is None:
            raise PromotionError("promote needs a version")
        candidate = version
        if candidate == champion_before:
            raise PromotionError(f"{model} v{candidate} is already the champion")
    else:
        candidate = version if version is not None else before.get(PREVIOUS_CHAMPION)
        if candidate is None:
            raise PromotionError(f"{model} has no previous_champion to roll back to; name a version")
        if candidate == champion_before:
            raise PromotionError(f"{model} v{candidate} is already the champion; nothing to roll back")
    model_version(client, model, candidate)  # fails clearly on a version that does not exist

    # Both sides on the same, most recent matured holdout.
    report: dict[str, Any] = {"scores": {}}
    figures: list = []
    try:
        key = latest_trainset(client, model)
        manifest, frame = evaluation_set(settings, config, key)
        decision["evaluation_set"] = {
            "key": key,
            "holdout": manifest["split"]["holdout"],
            "rows": len(frame),
            "checksum": manifest["checksum"],
            "versions": manifest["versions"],
        }
        cand_eval, decision["candidate"] = _side(client, config, candidate, frame, report)
        champ_eval = None
        if champion_before is not None:
            champ_eval, decision["champion"] = _side(client, config, champion_before, frame, report)
        verdict = should_promote(cand_eval, champ_eval, gates_config, config.training.primary_metric)
        decision["gates"] = [g.__dict__ for g in verdict.gates]
        decision["gates_passed"] = verdict.promote
        decision["failed_gates"] = verdict.failed
        evaluations = {f"candidate v{candidate}": cand_eval}
        scored = {f"candidate v{candidate}": report["scores"][f"v{candidate}"]}
        if champ_eval is not None:
            evaluations[f"champion v{champion_before}"] = champ_eval
            scored[f"champion v{champion_before}"] = report["scores"][f"v{champion_before}"]
        figures = plots(frame["label"].to_numpy(np.int64), scored, evaluations, config.training.primary_metric)
    except Exception:
        if kind != "rollback":
            raise
        # A rollback is the emergency path: it goes ahead without an evaluation, and the audit says so.
        log.exception("rollback of %s: evaluation failed; rolling back without metrics", model)
        decision["candidate"] = decision["candidate"] or {"version": candidate}

    if kind == "rollback":
        decision["action"] = "rolled_back"
        move = candidate
    elif mode == "dry_run":
        decision["action"], move = "dry_run", None
    elif decision["gates_passed"]:
        decision["action"], move = "promoted", candidate
    elif kind == "promote" and force:
        decision["action"], move = "forced", candidate
    else:
        decision["action"], move = "rejected", None
    return _finish(spark, settings, client, decision, out_dir, figures=figures, move=move)


def _finish(
    spark: SparkSession,
    settings: Settings,
    client: Any,
    decision: dict[str, Any],
    out_dir: Path,
    figures: list,
    move: int | None,
) -> dict[str, Any]:
    """Report, MLflow evaluation run, audit row (pending), alias move, audit row (applied), version tags."""
    model = decision["model"]
    if move is not None:
        decision["champion_after"] = move
        decision["previous_champion_after"] = decision["champion_before"]
    decision["summary"] = _summary(decision)
    decision_file = out_dir / reports.SUMMARY_FILES["evaluation"]
    if decision["action"] != "skipped":
        decision["report"] = reports.file_uri(write_report(out_dir / "index.html", decision, figures))
        reports.write_summary(decision_file, decision)
        decision["evaluation_run_id"] = _log_evaluation(decision, out_dir, experiment_id(settings, model))
    write_audit(spark, settings, audit_row(decision, applied=move is None))
    if move is not None:
        after = move_champion(
            client, model, move, decision["champion_before"], settings.home / "locks"
        )  # raises StaleChampionError: the pending row stays applied=false and the task fails
        decision["previous_champion_after"] = after.get(PREVIOUS_CHAMPION)
        decision["applied"] = True
        write_audit(spark, settings, audit_row(decision, applied=True))
    else:
        decision["applied"] = decision["action"] in {"rejected", "dry_run", "skipped"}
    _tag_versions(client, decision)
    reports.write_summary(decision_file, decision)
    log.info("%s: %s", model, decision["summary"])
    return decision


def main(argv: list[str] | None = None) -> int:
    """CLI: ``auto|promote|rollback --model M [--version N] [--force] [--dry-run] --reason TEXT ...``.

    Exit 0 with the decision as JSON on the last line; exit 3 when a manual promotion was rejected by its gates and
    2 when the request cannot be carried out (both final: asking again gives the same answer; decision.json says
    why); exit 1 on any other failure, a stale champion included (a retry re-evaluates against the new one).
    """
    parser = cli.parser("jobs.ml.promotion", "evaluate, promote, roll back")
    parser.add_argument("kind", choices=("auto", "promote", "rollback"))
    cli.add_model(parser)
    parser.add_argument("--version", default="", help="version to promote or roll back to ('' = default)")
    parser.add_argument("--force", default="false", help="true: promote despite failed gates (needs --reason)")
    parser.add_argument("--dry-run", default="false", help="true: decide and audit, move nothing")
    parser.add_argument("--reason", default="")
    parser.add_argument("--triggered-by", default="manual")
    parser.add_argument("--dag-id", default="")
    parser.add_argument("--dag-run-id", default="manual")
    args = parser.parse_args(argv)
    config = load_model_config(args.model)
    truthy = {"true", "1", "yes"}

    def work(spark: SparkSession, settings: Settings) -> dict[str, Any]:
        return decide(
            spark,
            settings,
            config,
            kind=args.kind,
            version=int(args.version) if str(args.version).strip() not in {"", "None"} else None,
            force=args.force.lower() in truthy,
            dry_run=args.dry_run.lower() in truthy,
            reason=args.reason,
            triggered_by=args.triggered_by,
            dag_id=args.dag_id,
            dag_run_id=args.dag_run_id,
        )

    try:
        decision = run_job("promotion", work)
    except StaleChampionError:
        raise  # worth a retry: it re-evaluates against the champion that is there now
    except PromotionError as exc:
        # Asking again would fail the same way (no such version, no reason given): say so for the operator.
        log.error("%s", exc)
        error = {"dag_run_id": args.dag_run_id, "kind": args.kind, "model": config.name, "error": str(exc)}
        reports.write_summary(reports.summary_path(load(), "evaluation", config.name, args.dag_run_id), error)
        return 2
    print(json.dumps({k: decision[k] for k in ("decision_id", "action", "champion_before", "champion_after")}))
    if args.kind == "promote" and decision["action"] == "rejected":
        log.error("rejected: %s", decision["summary"])
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
