"""`make demo`: run what the platform has today on the real CDNOW data, then say what happened and where to look."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from jobs import reports
from jobs.config import load_model_config
from jobs.features import build, labels
from jobs.lake import clean, ingest
from jobs.ml import promotion, train, trainset
from jobs.quality import gate
from jobs.settings import load
from jobs.sources import cdnow

log = logging.getLogger("demo")
MODEL = "purchase_propensity"


def train_model(settings, versions: dict[str, int], run_id: str, reason: str, labels_end: date | None) -> dict:
    """The local training backend: exactly the command a Kubernetes GPU pod runs, then the same verification."""
    command = [sys.executable, "-m", "jobs.ml.train", "--model", MODEL, "--dag-run-id", run_id, "--reason", reason]
    command += ["--features-version", str(versions["features"]), "--labels-version", str(versions["labels"])]
    command += ["--as-of-end", labels_end.isoformat() if labels_end else ""]
    subprocess.run(command, check=True)
    return train.verify_training_run(settings, MODEL, run_id)


def promote(settings, run_id: str, reason: str, force_version: int | None = None) -> tuple[dict, dict | None]:
    """What the training DAG's evaluate_and_promote task submits (here without Airflow, so without its e-mail)."""
    command = [sys.executable, "-m", "jobs.ml.promotion", "auto", "--model", MODEL, "--dag-run-id", run_id]
    if force_version is not None:  # what the promote_model DAG's form does with force=true and a written reason
        command = [sys.executable, "-m", "jobs.ml.promotion", "promote", "--model", MODEL, "--dag-run-id", run_id]
        command += ["--version", str(force_version), "--force", "true"]
    command += ["--triggered-by", "make demo", "--reason", reason]
    # Its log streams to stderr as it goes; the last line of stdout is the decision's outline.
    result = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    outline = json.loads(result.stdout.strip().splitlines()[-1])
    return outline, reports.read_summary(reports.summary_path(settings, "evaluation", MODEL, run_id))


@dataclass
class Replay:
    """What the replayed nights did: one line per night, the alerts mailed, the retraining runs and their outcome."""

    nights: list[str] = field(default_factory=list)
    episodes: list[str] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    other_mails: list[str] = field(default_factory=list)
    retrains: list[str] = field(default_factory=list)
    retrain_ids: list[str] = field(default_factory=list)
    audited: dict[str, str] = field(default_factory=dict)
    airflow: str = ""
    sink: str = ""

    def lines(self) -> list[str]:
        """The summary's lines."""
        mailed = "; ".join(self.mails) or "none"
        return [
            f"airflow    : {self.airflow}",
            *(f"night      : {n}" for n in self.nights),
            f"alerts     : {len(self.episodes)} drift episode(s) {self.episodes}, {len(self.mails)} alert e-mail(s) "
            f"kept by the loopback SMTP server in {self.sink}: {mailed}",
            *(f"retraining : {r}" for r in self.retrains),
            *(f"audit      : models/<model>/decisions for {k}: {v}" for k, v in self.audited.items()),
            f"e-mails    : {len(self.mails) + len(self.other_mails)} in all; the others: "
            f"{'; '.join(self.other_mails) or 'none'}",
        ]

    def problems(self) -> list[str]:
        """Broken promises: one mail per episode, and every retraining ends in an audited decision."""
        out = []
        if len(self.mails) != len(self.episodes):
            out.append(f"{len(self.episodes)} drift episodes but {len(self.mails)} alert e-mails")
        missing = [r for r in self.retrain_ids if r not in self.audited]
        if missing:
            out.append(f"retraining runs without an audited promotion decision in models/<model>/decisions: {missing}")
        return out


def new_mails(folder: Path, seen: set[str]) -> list[str]:
    """Subjects of the messages kept in ``folder`` that are not in ``seen``, oldest first."""
    from email import message_from_bytes, policy

    paths = sorted((p for p in folder.glob("*.eml") if p.name not in seen), key=lambda p: p.stat().st_mtime)
    return [str(message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"]) for p in paths]


def fresh_run_id(api, dag_id: str, wanted: str) -> str:
    """``wanted``, or ``wanted__2``, ``__3``... when an earlier demo on this home already used it."""
    run_id, n = wanted, 1
    while api.run(dag_id, run_id) is not None:
        n += 1
        run_id = f"{wanted}__{n}"
    return run_id


def _task_logs(settings, dag_id: str, run_id: str) -> Path:
    """Where Airflow keeps the task logs of one run."""
    return settings.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"


def replay_nights(settings, nights: list[date], ports) -> Replay:
    """Each night through the Airflow scheduler: trigger `scoring` for it and wait, and for the training it starts."""
    from contextlib import nullcontext

    from jobs.monitoring import drift
    from tooling import stack
    from tooling.mailsink import MailSink

    replay = Replay(sink=str(settings.mail_root))
    settings.mail_root.mkdir(parents=True, exist_ok=True)
    seen = {p.name for p in settings.mail_root.glob("*.eml")}
    try:
        sink = MailSink()
        sink.__enter__()
    except OSError:  # `make up` already serves port smtp_port (and keeps mails in the same folder)
        log.info("an SMTP server already listens on %s:%d; sending there", settings.smtp_host, settings.smtp_port)
        sink = nullcontext()
    paused: dict[str, bool] = {}
    try:
        log.info("waiting for Airflow on 127.0.0.1:%d (log %s)", ports.airflow, settings.home / "logs" / "airflow.log")
        stack.up(settings, ports, only=("airflow",), timeout=600)
        api = stack.AirflowApi.local(settings, ports)
        for dag_id in ("scoring", "training"):
            api.wait_for_dag(dag_id, timeout=300)
            paused[dag_id] = api.set_paused(dag_id, False)
        runs = []
        for night in nights:
            run_id = fresh_run_id(api, "scoring", f"demo__{night.isoformat()}")
            log.info("night %s: triggering the scoring DAG as run %s", night, run_id)
            api.trigger("scoring", run_id, {"as_of_date": night.isoformat()})
            state = api.wait_run("scoring", run_id, timeout=1800)
            runs.append(f"scoring {run_id} {state}")
            if state != "success":
                logs = _task_logs(settings, "scoring", run_id)
                raise RuntimeError(f"scoring run {run_id} {state}; task logs in {logs}")
            summary = reports.read_summary(
                reports.summary_path(settings, "drift", MODEL, night), as_of_date=night.isoformat()
            )
            decision = summary["decision"]
            features = [c for c in summary["columns"] if c["column"] != drift.SCORE]
            replay.nights.append(
                f"{night} v{summary['model_version']} scored {summary['prediction']['current_rows']} customers; "
                f"{sum(c['drifted'] for c in features)}/{len(features)} features drifted, predictions "
                f"{'drifted' if summary['prediction']['drifted'] else 'stable'} -> "
                f"{'ALERT' if decision['alert'] else 'no mail'}: {decision['reason']}"
            )
            log.info("night %s: %s", night, replay.nights[-1])
            if decision["alert"]:
                replay.episodes.append(decision["episode_id"])
            if decision["alert"] and decision["retrain"]:
                retrain_id = f"drift__{night.isoformat()}"  # the scoring DAG's start_retraining names it so
                log.info("night %s: waiting for the training run %s the drift episode started", night, retrain_id)
                state = api.wait_run("training", retrain_id, timeout=3600)
                runs.append(f"training {retrain_id} {state}")
                replay.retrain_ids.append(retrain_id)
                replay.retrains.append(_retrained(settings, retrain_id, state))
        replay.airflow = (
            f"{len(runs)} DAG runs through the scheduler ({', '.join(runs)}); browse them with `make up`, "
            f"http://127.0.0.1:{ports.airflow}/dags/scoring; task logs under {settings.airflow_home}/logs"
        )
        for mail in new_mails(settings.mail_root, seen):
            (replay.mails if "] DRIFT " in mail else replay.other_mails).append(mail)
        replay.audited = _audited(settings, replay.retrain_ids)
    finally:
        with contextlib.suppress(Exception):  # leave the DAGs paused as they were
            for dag_id, was in paused.items():
                api.set_paused(dag_id, was)
        sink.__exit__(None, None, None)
    return replay


def _retrained(settings, run_id: str, state: str) -> str:
    """One line on a training run: the winner MLflow registered and the promotion decision on it."""
    if state != "success":
        return f"{run_id}: training DAG run {state}; task logs in {_task_logs(settings, 'training', run_id)}"
    trained = train.verify_training_run(settings, MODEL, run_id)
    decision = reports.read_summary(reports.summary_path(settings, "evaluation", MODEL, run_id))
    outcome = (
        f"{decision['action']}: {decision['summary']} [audit models/<model>/decisions {decision['decision_id']}]"
        if decision and "action" in decision
        else "no promotion decision"
    )
    return (
        f"{run_id}: {trained['winner']} v{trained['version']} (holdout ROC AUC {trained['holdout_roc_auc']:.3f}) "
        f"-> {outcome}"
    )


def _audited(settings, dag_run_ids: list[str]) -> dict[str, str]:
    """The decisions table rows of these training runs: action, applied, champion before and after, reason."""
    if not dag_run_ids:
        return {}
    from jobs.spark import get_spark

    spark = get_spark("demo-audit", settings=settings)
    try:
        rows = [r for r in promotion.decisions(spark, settings, MODEL) if r["dag_run_id"] in dag_run_ids]
    finally:
        spark.stop()
    return {
        r["dag_run_id"]: f"{r['action']} (applied {r['applied']}), champion v{r['champion_before']} -> "
        f"v{r['champion_after']}, reason '{r['reason']}'"
        for r in rows
    }


def main(argv: list[str] | None = None) -> int:
    """Replay CDNOW, then backfill bronze, silver, gold features and labels, then one incremental night."""
    parser = argparse.ArgumentParser(prog="python -m tooling.demo", description=main.__doc__)
    parser.add_argument("--start", type=date.fromisoformat, default=cdnow.FIRST_DAY)
    parser.add_argument("--end", type=date.fromisoformat, default=cdnow.LAST_DAY)
    parser.add_argument(
        "--go-live", type=date.fromisoformat, default=None, help="first scored night (default: 90 days before --end)"
    )
    parser.add_argument("--every", type=int, default=28, help="days between the replayed nights after go-live")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Their INFO lines (GX's decorator registry, aiosmtpd's per-command trace) would bury the demo's progress.
    for noisy in ("great_expectations", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load()
    from tooling import stack

    # `make` exports both connections; run by hand, they point at the same local Spark and loopback SMTP server.
    os.environ.setdefault("AIRFLOW_CONN_SMTP_DEFAULT", settings.smtp_connection_json())
    os.environ.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": "local[*]"}))
    ports = stack.Ports.from_env()
    # MLP_SPARK_MODE=connect, the default: one Spark Connect server for everything (the backfill here, every Airflow
    # task), so no job starts a JVM of its own. MLP_SPARK_MODE=submit runs a spark-submit per Airflow task.
    connect = settings.spark_mode == "connect"
    ours = tuple(name for name in stack.task_services(settings) if stack.running(settings, name) is None)
    if ours:  # Airflow starts while the backfill runs; the nights after go-live go through its scheduler
        log.info(
            "starting %s in the background (Airflow on 127.0.0.1:%d, for the nights)", ", ".join(ours), ports.airflow
        )
        started = stack.start(settings, ports, only=ours)
    try:
        if connect:
            if "spark-connect" in ours:
                health, pid = started["spark-connect"]
                stack.wait_healthy(health, 300, pid)
            os.environ["MLP_SPARK_REMOTE"] = f"sc://{settings.spark_local_ip}:{settings.spark_connect_port}"
            settings = load()
            log.info("Spark jobs run as clients of the Spark Connect server at %s", settings.spark_remote)
        return _demo(args, settings, ports)
    finally:
        if ours:
            log.info(
                "stopping what this demo started: %s (`make up` serves it again, with these runs)", ", ".join(ours)
            )
            stack.down(settings, only=ours)


def _demo(args: argparse.Namespace, settings, ports) -> int:
    """The demo's steps and summary."""
    config = load_model_config(MODEL)
    started = time.monotonic()
    timings: dict[str, float] = {}
    from jobs.lake import layout
    from jobs.spark import legacy_tables

    if legacy_tables(settings):  # a .platform from before the folder per model: keep its history, in the new place
        for old, new in layout.migrate(settings, MODEL):
            log.info("moved %s -> %s (a folder per model)", old, new)
    backfill_end = args.end - timedelta(days=1)
    # The platform "goes live" 90 days before the end of the data: its first model can only learn from labels that
    # had matured by then; the nights after it are scored, monitored and, when the cohort has drifted, retrained.
    go_live = args.go_live or args.end - timedelta(days=90)
    labels_end = go_live - timedelta(days=config.label.horizon_days + 1)
    nights = [go_live + timedelta(days=d) for d in range(0, (args.end - go_live).days + 1, args.every)]

    def step(name: str, fn, *a):
        t0 = time.monotonic()
        out = fn(*a)
        timings[name] = time.monotonic() - t0
        return out

    log.info("step 1/10: replaying CDNOW %s..%s into %s", args.start, args.end, settings.landing_root)
    replayed = step("replay", cdnow.replay, settings.landing_root, args.start, args.end)

    from jobs.spark import get_spark

    spark = get_spark("demo", settings=settings)
    try:
        log.info("step 2/10: ingest landing -> bronze (%s..%s, one Spark job)", args.start, backfill_end)
        step("ingest", ingest.ingest, spark, settings, args.start, backfill_end, "demo-backfill")
        log.info("step 3/10: clean bronze -> silver + quarantine")
        cleaned = step("clean", clean.clean, spark, settings, args.start, backfill_end, "demo-backfill")
        log.info("step 4/10: point-in-time features for every customer and day (backfill)")
        built = step(
            "features", build.build_features, spark, settings, config, args.start, backfill_end, "demo-backfill"
        )
        log.info("step 5/10: labels whose %d-day horizon has matured", config.label.horizon_days)
        step("labels", labels.build_labels, spark, settings, config, args.start, backfill_end, "demo")
        log.info("step 6/10: one nightly increment for %s, as the scheduler would run it", args.end)
        t0 = time.monotonic()
        ingest.ingest(spark, settings, args.end, args.end, "demo-nightly")
        nightly_clean = clean.clean(spark, settings, args.end, args.end, "demo-nightly")
        nightly = build.build_features(spark, settings, config, args.end, args.end, "demo-nightly")
        labels.build_labels(spark, settings, config, args.end, args.end, "demo-nightly")
        timings["nightly"] = time.monotonic() - t0
        log.info("step 7/10: data-quality gate (Great Expectations) on the night's bronze, silver and gold")
        verdict = step("quality_gate", gate.run_gate, spark, settings, config, args.end, args.end, "demo-nightly")
        log.info("%s", gate.describe(verdict))
        log.info(
            "step 8/10: training set at pinned Delta versions as of go-live %s (labels matured through %s), then "
            "XGBoost vs PyTorch, tracked in MLflow",
            go_live,
            labels_end,
        )
        versions = gate.validated_versions(settings, config.name)
        manifest = step(
            "training_set",
            trainset.build_training_set,
            spark,
            settings,
            config,
            None,
            labels_end,
            versions["features"],
            versions["labels"],
        )
        read = lambda path: spark.read.format("delta").load(path)  # noqa: E731
        silver_rows = read(settings.table_path(*clean.SILVER_TABLE)).count()
        gold = read(settings.model_table_path(MODEL, build.FEATURES_TABLE))
        gold_rows, gold_days = gold.count(), gold.select("as_of_date").distinct().count()
        label_rows = read(settings.model_table_path(MODEL, labels.LABELS_TABLE))
        positives = label_rows.where("label = 1").count()
        label_total = label_rows.count()
    finally:
        spark.stop()

    t0 = time.monotonic()
    trained = train_model(settings, versions, "demo", "make demo", labels_end)
    timings["train"] = time.monotonic() - t0
    log.info(
        "step 9/10: go-live: v%s judged by the promotion gates on the newest matured holdout, audited",
        trained["version"],
    )
    t0 = time.monotonic()
    # With no champion yet there is nothing to keep: the team takes the first model live by hand and on the record,
    # as the promote_model DAG's form allows (force with a written reason). It is "promoted" if it passes every gate
    # and "forced" with the failed gates in the audit if not (on CDNOW: calibration, because the early cohort buys
    # again more often than the later one the holdout holds). Every retrained challenger is gated against it.
    why = "go-live of the first model (make demo): no champion to keep yet; any failed gate is on the record"
    outline, decision = promote(settings, f"demo-golive-{int(time.time())}", why, trained["version"])
    timings["promotion"] = time.monotonic() - t0

    log.info(
        "step 10/10: the nights after go-live, every %d days from %s to %s, through the Airflow scheduler: score, "
        "monitor drift, alert, retrain",
        args.every,
        go_live,
        args.end,
    )
    t0 = time.monotonic()
    replay = replay_nights(settings, nights, ports)
    timings["nights"] = time.monotonic() - t0

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
                f"quality    : gate {'PASSED' if verdict.passed else 'FAILED'} for {args.end}: "
                f"{len(verdict.outcomes)} expectations, {len(verdict.critical_failures)} critical failures, "
                f"{len(verdict.warnings)} warnings; report {verdict.report}",
                f"training   : set {manifest['key']} rows {manifest['rows']} (features v{versions['features']}, "
                f"labels v{versions['labels']}); winner {trained['winner']} registered as {MODEL} version "
                f"{trained['version']} @challenger; holdout ROC AUC {trained['holdout_roc_auc']:.3f}, "
                f"PR AUC {trained['holdout_pr_auc']:.3f}, log loss {trained['holdout_log_loss']:.3f}, "
                f"Brier {trained['holdout_brier']:.3f}",
                f"promotion  : {decision['summary'] if decision else outline} "
                f"[{outline['action']}; audit {lake}/models/{MODEL}/decisions; "
                f"report {decision and decision['report']}]",
                *replay.lines(),
                f"mlflow     : {settings.mlflow_tracking_uri}; `make up` serves it (and Airflow, the mails and the "
                f"reports) on loopback: MLflow UI http://127.0.0.1:{ports.mlflow}",
                "timings    : " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()),
                f"wall time  : {time.monotonic() - started:.0f} s",
                f"where      : Delta tables under {lake}/(bronze|silver|quarantine|ops|gold); "
                f"reports under {settings.reports_root}",
                "",
                "The loop: landing -> bronze -> silver -> gold features + labels -> data-quality gate -> training"
                " -> gated promotion -> nightly scoring -> drift monitor -> one alert per episode -> retraining ->"
                " gated promotion (rollback: the rollback_model DAG or python -m jobs.ml.promotion rollback).",
            ]
        )
    )
    problems = replay.problems()
    for problem in problems:
        log.error("%s", problem)
    return 0 if ok and verdict.passed and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
