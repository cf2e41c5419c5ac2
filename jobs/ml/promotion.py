"""Champion/challenger promotion: gates as a pure function, check-and-set MLflow alias moves, an append-only
audit in Delta and on the model versions, one-step rollback, and decisions that survive retries and crashes.

``should_promote(challenger, champion, gates, primary)`` returns every gate's result, so a rejection says which
gate failed and by how much; without a champion only the absolute gates apply. ``decide`` is the job around it:
both models scored on the same, most recent matured holdout (``jobs.ml.evaluation``), the verdict under the
config's mode (enabled, dry_run, disabled), an HTML report logged to MLflow, then the audit and the alias move:

1. the whole decision holds the model's promotion lease (``jobs.lake.lease``), so the training DAG's automatic
   step, ``promote_model`` and ``rollback_model`` for one model never interleave;
2. the decision is recorded ``decided`` in the model's ``decisions`` table (``jobs.ml.audit``: the target version and
   the champion it was made against) before any alias moves;
3. ``champion`` -> target and ``previous_champion`` -> the old champion, check-and-set against that champion;
4. ``applied`` (or ``failed``) is appended; version tags and the decision file follow, all safe to repeat.

A retried task has the same decision id (``<model>/<dag_run_id>/<kind>``) and finishes what its first try
recorded: it never re-decides, so a rollback retried after its move does not move the champion back.
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
from jobs.lake import lease
from jobs.ml import audit, trainset
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


def latest_trainset(settings: Settings, config: ModelConfig, client: Any) -> str:
    """The training set whose holdout ends latest (the most recent matured labels) among the training sets the
    model's versions name; a tie goes to the newer version. A backfilled version's older holdout never wins."""
    newest: dict[str, int] = {}
    for v in client.search_model_versions(f"name = '{config.name}'"):
        if v.tags.get("trainset"):
            newest[v.tags["trainset"]] = max(newest.get(v.tags["trainset"], 0), int(v.version))
    found = []
    for key, version in newest.items():
        manifest = trainset.read_manifest(trainset.set_path(settings, config, key))
        if manifest is None:
            log.warning("%s v%s names training set %s, which is gone; not an evaluation set", config.name, version, key)
            continue
        found.append((str(manifest["split"]["holdout"][1]), version, key))
    if not found:
        raise PromotionError(f"{config.name}: no registered version names a training set; train one first")
    return max(found)[2]


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


def read_audit(spark: SparkSession, settings: Settings, model: str) -> list[dict[str, Any]]:
    """Every audit row of ``model`` (one per phase of each decision), oldest first."""
    return audit.read(spark, settings, model)


def decisions(spark: SparkSession, settings: Settings, model: str) -> list[dict[str, Any]]:
    """Each decision of ``model`` once, as its newest audit row (its outcome), oldest decision first."""
    rows = audit.read(spark, settings, model)
    order = list(dict.fromkeys(r["decision_id"] for r in rows))
    newest = audit.latest(rows)
    return [newest[d] for d in order]


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
        "rolled_back": f"Rolled back: champion v{decision['champion_before']} -> v{decision['champion_after']}"
        + (" (FORCED: that version was never champion)." if decision.get("forced") else "."),
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
    lease_wait_s: float = 3600.0,
) -> dict[str, Any]:
    """Evaluate, decide, audit and (unless dry-run, disabled or rejected) move the aliases; return the decision.

    ``kind``: ``auto`` (the challenger after training, under the config's mode), ``promote`` (a given version; a
    failed gate is final unless ``force`` with a written reason) or ``rollback`` (to ``version``, default
    ``previous_champion``; a version the audit never saw as champion only when forced with a reason).

    The decision id is ``<model>/<dag_run_id>/<kind>``, so a retried task finds its own decision: the whole
    decision runs under the model's promotion lease (another decision for the model waits, then decides against
    the champion that is there by then); it is recorded ``decided`` (target and expected champion) before any alias
    moves, and a retry carries out that recorded decision instead of deciding anew.
    """
    import mlflow
    from mlflow import MlflowClient

    if kind not in {"auto", "promote", "rollback"}:
        raise ValueError(f"kind must be auto, promote or rollback, not {kind!r}")
    reason = reason.strip()
    minimum = config.promotion.force_reason_min_chars
    if (kind == "rollback" or force) and len(reason) < minimum:
        raise PromotionError(
            f"a {'rollback' if kind == 'rollback' else 'forced promotion'} needs a written reason of at least "
            f"{minimum} characters (got {reason!r})"
        )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = client or MlflowClient()
    model = config.name
    decision_id = f"{model}/{dag_run_id}/{kind}"
    out_dir = reports.report_dir(settings, "evaluation", model, dag_run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    audit.ensure(spark, settings, model)
    with lease.held(spark, settings, f"promotion/{model}", decision_id, wait_s=lease_wait_s):
        rows = audit.read(spark, settings, model)
        if recover(spark, settings, client, rows, skip=decision_id):
            rows = audit.read(spark, settings, model)
        mine = audit.latest(rows).get(decision_id)
        recorded = audit.decision(mine) if mine is not None else None
        if recorded is not None:
            phase = audit.phase_of(mine)
            log.info("%s: resuming decision %s, recorded %s (%s)", model, decision_id, phase, recorded["action"])
            if phase == audit.FAILED:
                _write_outcome(out_dir, recorded)
                raise StaleChampionError(recorded.get("error") or f"decision {decision_id} failed")
            if phase == audit.APPLIED:
                return _conclude(client, recorded, out_dir)
            return _carry_out(spark, settings, client, recorded, out_dir)
        decision, figures = _evaluate_and_decide(
            settings,
            config,
            client,
            rows,
            decision_id=decision_id,
            kind=kind,
            version=version,
            force=force,
            dry_run=dry_run,
            reason=reason,
            triggered_by=triggered_by,
            dag_id=dag_id,
            dag_run_id=dag_run_id,
        )
        decision["summary"] = _summary(decision)
        if decision["action"] != "skipped":
            decision["report"] = reports.file_uri(write_report(out_dir / "index.html", decision, figures))
            decision["evaluation_run_id"] = _log_evaluation(decision, out_dir, experiment_id(settings, model))
        audit.append(spark, settings, audit.row(decision, audit.DECIDED))
        _write_outcome(out_dir, decision)
        return _carry_out(spark, settings, client, decision, out_dir)


def _evaluate_and_decide(
    settings: Settings,
    config: ModelConfig,
    client: Any,
    rows: list[dict[str, Any]],
    *,
    decision_id: str,
    kind: str,
    version: int | None,
    force: bool,
    dry_run: bool,
    reason: str,
    triggered_by: str,
    dag_id: str,
    dag_run_id: str,
) -> tuple[dict[str, Any], list]:
    """A new decision: the candidate, both sides on the newest matured holdout, the gates' verdict, the target."""
    import numpy as np

    gates_config = config.promotion
    model = config.name
    before = aliases(client, model)
    champion_before = before.get(CHAMPION)
    mode = gates_config.mode if kind == "auto" else ("dry_run" if dry_run else "enabled")
    decision: dict[str, Any] = {
        "decision_id": decision_id,
        "model": model,
        "kind": kind,
        "mode": mode,
        "primary_metric": config.training.primary_metric,
        "champion_before": champion_before,
        "champion_after": champion_before,
        "previous_champion_after": before.get(PREVIOUS_CHAMPION),
        "move": None,
        "forced": bool(force),
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
        "phase": audit.DECIDED,
        "applied": False,
        "report": None,
        "evaluation_run_id": None,
    }
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
            return decision, []
    elif kind == "promote":
        if version is None:
            raise PromotionError("promote needs a version")
        candidate = version
        if candidate == champion_before:
            raise PromotionError(f"{model} v{candidate} is already the champion")
    else:
        past = audit.past_champions(rows)
        if version is None:
            # The alias, else the audit: a crash between the two alias moves may have removed previous_champion.
            candidate = before.get(PREVIOUS_CHAMPION) or audit.last_replaced(rows, champion_before)
            if candidate is None:
                raise PromotionError(f"{model} has no previous_champion to roll back to; name a version")
        else:
            candidate = version
            if candidate not in past and not force:
                raise PromotionError(
                    f"{model} v{candidate} was never champion (models/<model>/decisions knows "
                    f"{sorted(past) or 'none'}); roll back to it only with force and a reason"
                )
        decision["forced"] = bool(force) and candidate not in past
        if candidate == champion_before:
            raise PromotionError(f"{model} v{candidate} is already the champion; nothing to roll back")
    model_version(client, model, candidate)  # fails clearly on a version that does not exist

    # Both sides on the same, most recent matured holdout.
    report: dict[str, Any] = {"scores": {}}
    figures: list = []
    try:
        key = latest_trainset(settings, config, client)
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
        decision["action"], move = "rolled_back", candidate
    elif mode == "dry_run":
        decision["action"], move = "dry_run", None
    elif decision["gates_passed"]:
        decision["action"], move = "promoted", candidate
    elif kind == "promote" and force:
        decision["action"], move = "forced", candidate
    else:
        decision["action"], move = "rejected", None
    if kind != "rollback":
        decision["forced"] = decision["action"] == "forced"
    if move is not None:
        decision.update(move=move, champion_after=move, previous_champion_after=champion_before)
    return decision, figures


def _write_outcome(out_dir: Path, decision: dict[str, Any]) -> None:
    """The decision file the operator, the links and the mail read: always what the audit holds now."""
    reports.write_summary(out_dir / reports.SUMMARY_FILES["evaluation"], decision)


def _carry_out(
    spark: SparkSession, settings: Settings, client: Any, decision: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Move the aliases a recorded decision names (check-and-set; a no-op when a crashed try already moved them),
    record it ``applied`` (or ``failed``), then tag the versions and rewrite the decision file."""
    model, move = decision["model"], decision.get("move")
    if move is not None:
        try:
            after = move_champion(client, model, move, decision["champion_before"])
        except StaleChampionError as exc:
            decision.update(phase=audit.FAILED, applied=False, error=str(exc))
            decision["summary"] = f"NOT applied: {exc} (decided: {_summary(decision)})"
            audit.append(spark, settings, audit.row(decision, audit.FAILED, str(exc)))
            _write_outcome(out_dir, decision)
            raise
        decision["previous_champion_after"] = after.get(PREVIOUS_CHAMPION)
    decision.update(phase=audit.APPLIED, applied=True)
    audit.append(spark, settings, audit.row(decision, audit.APPLIED))
    return _conclude(client, decision, out_dir)


def _conclude(client: Any, decision: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The steps after an applied decision, each safe to repeat: version tags and the decision file."""
    _tag_versions(client, decision)
    _write_outcome(out_dir, decision)
    log.info("%s: %s", decision["model"], decision["summary"])
    return decision


def recover(spark: SparkSession, settings: Settings, client: Any, rows: list[dict[str, Any]], skip: str = "") -> int:
    """Close decisions a crashed task left ``decided`` (the caller holds the model's lease): ``applied`` when the
    aliases show the move happened (or nothing was to move), else ``failed`` as abandoned; never moves an alias.
    Returns how many it closed."""
    closed = 0
    for decision_id, record in audit.latest(rows).items():
        if decision_id == skip or audit.phase_of(record) != audit.DECIDED:
            continue
        decision = audit.decision(record)
        if decision is None:
            continue
        move = decision.get("move")
        champion = aliases(client, decision["model"]).get(CHAMPION)
        if move is None or champion == move:
            decision.update(phase=audit.APPLIED, applied=True)
            audit.append(spark, settings, audit.row(decision, audit.APPLIED))
            log.warning(
                "%s: decision %s was carried out but not recorded; recorded applied", decision["model"], decision_id
            )
        else:
            error = f"abandoned: recorded decided, never applied (champion is v{champion}, not v{move})"
            decision.update(phase=audit.FAILED, applied=False, error=error)
            audit.append(spark, settings, audit.row(decision, audit.FAILED, error))
            log.warning("%s: decision %s %s", decision["model"], decision_id, error)
        closed += 1
    return closed


def main(argv: list[str] | None = None) -> int:
    """CLI: ``auto|promote|rollback --model M [--version N] [--force] [--dry-run] --reason TEXT ...``.

    Exit 0 with the decision as JSON on the last line; exit 3 when a manual promotion was rejected by its gates and
    2 when the request cannot be carried out, 4 when the recorded decision could not be applied because the champion
    was moved outside it (all final: asking again gives the same answer; decision.json says why); exit 1 on any
    other failure, which a retry resumes: it carries out the decision this run recorded, or decides if none was.
    """
    parser = cli.parser("jobs.ml.promotion", "evaluate, promote, roll back")
    parser.add_argument("kind", choices=("auto", "promote", "rollback"))
    cli.add_model(parser)
    parser.add_argument("--version", default="", help="version to promote or roll back to ('' = default)")
    parser.add_argument(
        "--force",
        default="false",
        help="true: promote despite failed gates, or roll back to a never-champion version (needs --reason)",
    )
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
    except StaleChampionError as exc:
        log.error("%s", exc)  # audited as failed, and decision.json says so: a retry would find the same
        return 4
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
