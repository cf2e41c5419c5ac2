"""Benchmark the orchestration overhead: DAG parse time per file, and a nightly feature run on an empty day.

``dag-parse``: Airflow's own DagBag and its per-file stats (``dagbag_stats``), in a fresh interpreter per repeat.
Each file is parsed alone in a fork of a process that has loaded Airflow's plugins and the ``airflow.*`` modules the
file names, which is how the dag-processor parses a file (every ``min_file_process_interval``); ``total`` is their
sum. ``folder_cold`` is one DagBag over the whole folder with nothing loaded (``airflow dags test``, the CLI, the DAG
integrity test). Medians over the repeats; any import error fails the benchmark.

``empty-night``: in a temp MLP_HOME with Airflow standalone on free loopback ports, a small lake is built in a
child process (CDNOW replay of the first ``--days`` days, then the ingest, clean, features and labels backfill as
``make demo`` does it), then one more day lands with a header-only file and ``_SUCCESS`` (the landing contract's
"no purchases today"). The ``feature_pipeline`` DAG is unpaused and triggered through the REST API as the
scheduled run of that day would be (logical date and data interval = the day, no Params), and timed from the
trigger to success: each task's duration and the scheduling gaps between them, from the task instances' own
timestamps. Cron runs are switched off (``[scheduler] use_job_schedule``) so only that run exists. The data-quality
gate fails a day without purchases by design (freshness; the volume band once there is history) and mails the team,
so the run ends failed at the gate: that is the expected outcome, recorded as ``gate_stopped``. Any other task that
fails or goes up for retry ends the wait (its log's tail is printed): the night is then not recorded and the exit
status is 1. The night runs once per Spark mode (``--modes``, default both, in the same run on the same lake):
``connect``, the default, with the tasks as clients of one Spark Connect server started with Airflow, recorded as
``empty-night``; ``submit``, a spark-submit (a JVM) per task, recorded beside it as ``empty-night-submit``. Each
mode gets its own Airflow (and server), stopped after; the temp home is deleted at the end. All append to
docs/benchmarks/history.jsonl (rows do not apply).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import report
from jobs.settings import REPO_ROOT
from jobs.sources import cdnow, landing
from tooling.cluster import free_port

log = logging.getLogger("bench.scheduler")

DAG_FOLDER = REPO_ROOT / "dags"
PIPELINE = "feature_pipeline"
MODEL = "purchase_propensity"
FAILING = frozenset({"up_for_retry", "failed", "upstream_failed"})
# A day without purchases fails the data-quality gate by design (freshness, volume): the run ends there, failed.
GATE = "quality_gate"
SCORING = "scoring"
# A row of the dag-processor's "DAG File Processing Stats" table: the file, ..., Last Duration, Last Run At.
PROCESSOR_ROW = re.compile(r"^dag-processor \|\s+\S+\s+(\S+\.py)\s.*\s(\d+(?:\.\d+)?)s\s+\d{4}-\d\d-\d\dT\S+\s*$", re.M)
SCRUBBED = ("MLP_LAKE_ROOT", "MLP_LANDING_ROOT", "MLP_REPORTS_ROOT", "MLP_MAIL_ROOT", "MLFLOW_TRACKING_URI")


def dag_files(folder: Path = DAG_FOLDER) -> list[Path]:
    """The DAG files Airflow would parse (one DAG per file; ``_``-prefixed helpers are not DAG files)."""
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def median_by_key(samples: list[dict[str, float]]) -> dict[str, float]:
    """Per key, the median over the samples that have it."""
    keys = dict.fromkeys(key for sample in samples for key in sample)
    return {key: statistics.median(s[key] for s in samples if key in s) for key in keys}


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return round((later - earlier).total_seconds(), 3) if later and earlier else None


def night_timings(triggered: datetime, run: dict[str, Any], task_instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Trigger-to-end, each task's duration, and the gaps: trigger to first task, task to task, last task to end."""
    tis = sorted(task_instances, key=lambda ti: _at(ti["start_date"]) or datetime.max.replace(tzinfo=UTC))
    tasks, gaps, detail = {}, {}, {}
    previous, previous_end = "trigger", triggered
    for ti in tis:
        start, end = _at(ti["start_date"]), _at(ti["end_date"])
        tasks[ti["task_id"]] = ti.get("duration") or _seconds(end, start)
        gaps[f"{previous}->{ti['task_id']}"] = _seconds(start, previous_end)
        detail[ti["task_id"]] = {
            "state": ti["state"],
            "try_number": ti.get("try_number"),
            "scheduled_after_previous": _seconds(_at(ti.get("scheduled_when")), previous_end),
            "queued_after_scheduled": _seconds(_at(ti.get("queued_when")), _at(ti.get("scheduled_when"))),
            "started_after_queued": _seconds(start, _at(ti.get("queued_when"))),
        }
        previous, previous_end = ti["task_id"], end
    run_end = _at(run.get("end_date"))
    gaps[f"{previous}->run_end"] = _seconds(run_end, previous_end)
    known = [g for g in gaps.values() if g is not None]
    return {
        "state": run.get("state"),
        "total_seconds": _seconds(run_end, triggered),
        "run_queued_to_running": _seconds(_at(run.get("start_date")), _at(run.get("queued_at"))),
        "tasks": tasks,
        "gaps": gaps,
        "scheduling_gaps_seconds": round(sum(known), 3),
        "task_seconds": round(sum(s for s in tasks.values() if s is not None), 3),
        "detail": detail,
    }


def night_stages(timings: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """The history's stages: one per task, the scheduling gaps summed, and trigger-to-success (and the cold
    server's first night, where there was one)."""
    stages: dict[str, dict[str, float | None]] = {
        f"task.{task}": {"seconds": seconds} for task, seconds in timings["tasks"].items()
    }
    stages["scheduling_gaps"] = {"seconds": timings["scheduling_gaps_seconds"]}
    stages["total"] = {"seconds": timings["total_seconds"]}
    if (timings.get("cold") or {}).get("total_seconds") is not None:
        stages["cold_server_total"] = {"seconds": timings["cold"]["total_seconds"]}
    return stages


def parse_stages(parse: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """The history's stages: each file as the dag-processor parses it, their sum, and the folder parsed cold."""
    stages: dict[str, dict[str, float | None]] = {
        name: {"seconds": round(seconds, 4)} for name, seconds in parse["isolated"].items()
    }
    stages["total"] = {"seconds": round(parse["isolated_sum"], 4)}
    stages["folder_cold"] = {"seconds": round(parse["folder_total"], 4)}
    return stages


def processor_durations(log_text: str) -> dict[str, float]:
    """Per DAG file, the median "Last Duration" over the stats tables Airflow's dag-processor logged."""
    seen: dict[str, list[float]] = {}
    for name, seconds in PROCESSOR_ROW.findall(log_text):
        seen.setdefault(name, []).append(float(seconds))
    return {name: statistics.median(values) for name, values in sorted(seen.items())}


def write_empty_day(landing_root: Path, day: date) -> Path:
    """Land ``day`` as the source reports a day without purchases: a header-only file, then ``_SUCCESS``."""
    folder = landing.day_dir(landing_root, day)
    landing.write_atomic(folder / "part-00000.csv", [landing.HEADER])
    landing.mark_complete(folder)
    return folder


def _child(*args: str) -> dict[str, Any]:
    """Run ``python -m bench.scheduler --child ...`` and return the JSON it prints last."""
    from bench import harness  # here, not at the top: the parse child's cold import time must not include it

    return harness.run_child("bench.scheduler", "--child", *args)


def isolate(home: Path) -> tuple[Any, Any]:
    """Point this process (and everything it starts) at ``home`` and free loopback ports; (settings, ports)."""
    from jobs.settings import load
    from tooling import stack

    for name in SCRUBBED:
        os.environ.pop(name, None)
    os.environ.update(
        {
            "MLP_HOME": str(home),
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Only the triggered run: no cron run for the latest interval when the DAG is unpaused.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # Nothing listens there: a failure mail must not reach a `make up` mail folder.
            "MLP_SMTP_PORT": str(free_port()),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    os.environ.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": "local[*]"}))
    settings = load()
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = settings.smtp_connection_json()
    return settings, stack.Ports(airflow=free_port(), mlflow=free_port(), reports=free_port())


def _parse_file(path: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    return {"seconds": bag.dagbag_stats[0].duration.total_seconds(), "import_errors": bag.import_errors}


def _parse_folder(folder: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    return {
        "files": {Path(s.file).name: s.duration.total_seconds() for s in bag.dagbag_stats},
        "import_errors": bag.import_errors,
        "dags": len(bag.dags),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
    }


def _in_fork(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a fresh fork of this process, so what it imports is not kept here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(fn, *args).result()


def parse_child(folder: Path) -> dict[str, Any]:
    """One repeat in this fresh interpreter: the folder cold, then each file as the dag-processor parses it."""
    import importlib

    started = time.perf_counter()
    import airflow.sdk  # noqa: F401
    from airflow import plugins_manager
    from airflow.utils.file import iter_airflow_imports

    out: dict[str, Any] = {"airflow_import_seconds": round(time.perf_counter() - started, 3)}
    # What `airflow dags test`, the CLI and the DAG integrity test pay: one DagBag, nothing of the platform loaded.
    cold = _in_fork(_parse_folder, str(folder))
    out["folder"], out["folder_total"] = cold["files"], sum(cold["files"].values())
    out["dags"], out["tasks"] = cold["dags"], cold["tasks"]
    errors = dict(cold["import_errors"])
    # The dag-processor's manager has loaded the plugins (ours import the Spark provider) and pre-imports the
    # airflow modules each file names; then it forks one process per file, every min_file_process_interval.
    started = time.perf_counter()
    plugins_manager.ensure_plugins_loaded()
    out["plugins_seconds"] = round(time.perf_counter() - started, 3)
    out["isolated"] = {}
    for path in dag_files(folder):
        for module in iter_airflow_imports(str(path)):
            importlib.import_module(module)
        parsed = _in_fork(_parse_file, str(path))
        out["isolated"][path.name] = parsed["seconds"]
        errors.update(parsed["import_errors"])
    out["import_errors"] = errors
    return out


def measure_parse(repeats: int) -> dict[str, Any]:
    """``repeats`` fresh interpreters; medians per file (alone and in the folder) and of the total."""
    samples = []
    for n in range(repeats):
        samples.append(_child("parse"))
        log.info("parse %d/%d: folder total %.3f s", n + 1, repeats, samples[-1]["folder_total"])
    return {
        "repeats": repeats,
        "isolated": median_by_key([s["isolated"] for s in samples]),
        "folder": median_by_key([s["folder"] for s in samples]),
        "folder_total": statistics.median(s["folder_total"] for s in samples),
        "isolated_sum": statistics.median(sum(s["isolated"].values()) for s in samples),
        "plugins_seconds": statistics.median(s["plugins_seconds"] for s in samples),
        "airflow_import_seconds": statistics.median(s["airflow_import_seconds"] for s in samples),
        "dags": samples[-1]["dags"],
        "tasks": samples[-1]["tasks"],
        "import_errors": {k: v for s in samples for k, v in s["import_errors"].items()},
        "samples": samples,
    }


def lake_child(days: int) -> dict[str, Any]:
    """Replay CDNOW's first ``days`` days and backfill bronze, silver, gold features and labels over them."""
    from jobs.config import load_model_config
    from jobs.features import build, labels
    from jobs.lake import clean, ingest
    from jobs.settings import load
    from jobs.spark import get_spark

    settings, config = load(), load_model_config(MODEL)
    start, end = cdnow.FIRST_DAY, cdnow.FIRST_DAY + timedelta(days=days - 1)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    replayed = cdnow.replay(settings.landing_root, start, end)
    timings["replay"] = round(time.perf_counter() - began, 1)
    spark = get_spark("bench-scheduler", settings=settings)
    try:
        for name, work in (
            ("ingest", lambda: ingest.ingest(spark, settings, start, end, "bench-backfill")),
            ("clean", lambda: clean.clean(spark, settings, start, end, "bench-backfill")),
            ("features", lambda: build.build_features(spark, settings, config, start, end, "bench-backfill")),
            ("labels", lambda: labels.build_labels(spark, settings, config, start, end, "bench-backfill")),
        ):
            began = time.perf_counter()
            work()
            timings[name] = round(time.perf_counter() - began, 1)
            log.info("lake %s..%s: %s in %.1f s", start, end, name, timings[name])
    finally:
        spark.stop()
    return {"start": start.isoformat(), "end": end.isoformat(), "rows": replayed.rows, "seconds": timings}


def _tail(settings: Any, run_id: str, task_id: str, lines: int = 30, dag_id: str = PIPELINE) -> str:
    """The end of the newest attempt's log of a task, for the console."""
    folder = settings.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    logs = sorted(folder.glob("attempt=*.log"), key=lambda p: p.stat().st_mtime)
    return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else f"(no log in {folder})"


def wait_night(api: Any, settings: Any, run_id: str, timeout: float, dag_id: str = PIPELINE) -> dict[str, Any]:
    """Poll the run until it ends; stop at the first failed or retried task (a retry is no longer the overhead)."""
    deadline, seen = time.monotonic() + timeout, {}
    base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    while time.monotonic() < deadline:
        run = api.get(base)
        states = {ti["task_id"]: ti["state"] for ti in api.get(f"{base}/taskInstances")["task_instances"]}
        for task_id, state in states.items():
            if state != seen.get(task_id):
                log.info("  %s %s: %s", run_id, task_id, state)
        seen = states
        broken = [task for task, state in states.items() if state in FAILING and task != GATE]
        if broken:
            tail = _tail(settings, run_id, broken[0], dag_id=dag_id)
            log.error("%s %s; its log ends:\n%s", broken[0], states[broken[0]], tail)
            return {**run, "state": f"{run['state']} ({broken[0]} {states[broken[0]]})"}
        if run["state"] in api.TERMINAL:
            return run
        time.sleep(2)
    raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout:.0f} s (tasks: {seen})")


def _tree(pid: int | None) -> list:
    import psutil

    try:
        root = psutil.Process(pid) if pid else None
        return [root, *root.children(recursive=True)] if root else []
    except psutil.Error:
        return []


def _leftovers(processes: list) -> list[str]:
    import psutil

    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            continue
    return alive


def measure_night(settings: Any, ports: Any, days: int, timeout: float, modes: tuple[str, ...]) -> dict[str, Any]:
    """Build the lake, land empty days, and run the feature pipeline for one of them through the scheduler per Spark
    mode (``connect``: tasks are clients of one Spark Connect server; ``submit``: a spark-submit each), each mode with
    its own Airflow (and server) started for it and stopped after, and its own day (Airflow keeps one run per
    logical date). In connect mode a first empty day warms the fresh server (its first Delta queries load and compile
    what every later night reuses) and is reported as ``cold``; the next day is the night measured, as a server that
    has run for a while serves it. ``{mode: night}``."""
    plan, next_day = {}, cdnow.FIRST_DAY + timedelta(days=days)
    for mode in modes:
        count = 2 if mode == "connect" else 1
        plan[mode] = [next_day + timedelta(days=k) for k in range(count)]
        next_day += timedelta(days=count)
    # The first mode's services start while the lake is built; its night waits for both.
    started = _start(settings, ports, modes[0])
    try:
        log.info("building the lake: CDNOW %s + %d days (child process, its own Spark)", cdnow.FIRST_DAY, days)
        lake = _child("lake", "--days", str(days))
        for day in (d for mode_days in plan.values() for d in mode_days):
            folder = write_empty_day(settings.landing_root, day)
            log.info("empty day %s landed in %s (header only + %s)", day, folder, landing.SUCCESS_MARKER)
    except BaseException:
        _stop(started)
        raise
    return nights_per_mode(started, ports, modes, plan, timeout, PIPELINE, lambda s, day: {"lake": lake})


def nights_per_mode(
    settings: Any, ports: Any, modes: tuple[str, ...], plan: dict[str, list[date]], timeout: float, dag_id: str, more
) -> dict[str, Any]:
    """Per mode, with its services started (the first mode's already are) and stopped after: ``dag_id`` for each
    day of ``plan[mode]``; all but the last warm a fresh Connect server and are reported as ``cold``; ``more(settings,
    day)`` adds to the measured night's result. ``{mode: night}``."""
    nights: dict[str, Any] = {}
    for n, mode in enumerate(modes):
        if n:
            settings = _start(settings, ports, mode)
        try:
            *warmups, day = plan[mode]
            cold = [_night(settings, ports, warm, timeout, mode, dag_id, tag="_cold") for warm in warmups]
            nights[mode] = _night(settings, ports, day, timeout, mode, dag_id)
            nights[mode].update(more(settings, day))  # after the run: it may read what the run wrote
            if cold:
                nights[mode]["cold"] = {k: cold[0].get(k) for k in ("day", "state", "total_seconds", "tasks")}
        except Exception as exc:
            log.exception("the %s night in %s mode did not run", dag_id, mode)
            nights[mode] = {"state": f"error: {exc}", "day": plan[mode][-1].isoformat(), "spark_mode": mode}
        finally:
            nights[mode]["leftover_processes"] = _stop(settings)
    return nights


def _start(settings: Any, ports: Any, mode: str) -> Any:
    """Airflow (and in connect mode the Connect server) for ``mode``, started in the background; the new settings."""
    from jobs.settings import load
    from tooling import stack

    os.environ["MLP_SPARK_MODE"] = mode
    settings = load()
    log.info("starting %s for the %s-mode night", ", ".join(stack.task_services(settings)), mode)
    stack.start(settings, ports, only=stack.task_services(settings))
    return settings


def _stop(settings: Any) -> list[str]:
    """Stop what the tasks of ``settings``' Spark mode ran on; any of its processes still alive after."""
    from tooling import stack

    services = stack.task_services(settings)
    processes = [p for name in services for p in _tree(stack.running(settings, name))]
    log.info("stopping %s (%d processes)", ", ".join(services), len(processes))
    stack.down(settings, only=services)
    left = _leftovers(processes)
    if left:
        log.error("still running after stopping %s: %s", ", ".join(services), left)
    return left


def _night(
    settings: Any, ports: Any, day: date, timeout: float, mode: str, dag_id: str = PIPELINE, tag: str = ""
) -> dict[str, Any]:
    """Wait for the stack, trigger ``dag_id`` for ``day`` (the feature pipeline as its scheduled run would be, the
    scoring DAG with the day as its ``as_of_date``), time it to the end."""
    from tooling import stack

    result: dict[str, Any] = {"day": day.isoformat(), "airflow_port": ports.airflow, "spark_mode": mode}
    log.info("waiting for %s on 127.0.0.1 (logs %s)", ", ".join(stack.task_services(settings)), settings.home / "logs")
    began = time.perf_counter()
    stack.up(settings, ports, only=stack.task_services(settings), timeout=600)
    api = stack.AirflowApi.local(settings, ports)
    api.wait_for_dag(dag_id, timeout=300)
    result["airflow_ready_seconds"] = round(time.perf_counter() - began, 1)
    api.set_paused(dag_id, False)
    run_id = f"bench_{mode}{tag}__{dag_id}__{day.isoformat()}"
    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    body: dict[str, Any] = {"dag_run_id": run_id, "logical_date": None, "conf": {"as_of_date": day.isoformat()}}
    if dag_id == PIPELINE:
        body = {
            "dag_run_id": run_id,
            "logical_date": logical.isoformat(),
            "data_interval_start": logical.isoformat(),
            "data_interval_end": (logical + timedelta(days=1)).isoformat(),
            "conf": {},
        }
    log.info("triggering %s for %s as run %s (%s mode)", dag_id, day, run_id, mode)
    triggered = datetime.now(UTC)
    api.post(f"/api/v2/dags/{dag_id}/dagRuns", body)
    run = wait_night(api, settings, run_id, timeout, dag_id)
    tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    result.update(night_timings(triggered, run, tis))
    result["state"] = run["state"]
    result["gate_stopped"] = run["state"] == "failed" and any(
        ti["task_id"] == GATE and ti["state"] == "failed" for ti in tis
    )
    if result["gate_stopped"]:
        log.info("the gate stopped the empty day, as designed; its log ends:\n%s", _tail(settings, run_id, GATE))
    log.info("%s mode: %s trigger to end %s s; tasks %s", mode, dag_id, result["total_seconds"], result["tasks"])
    result["task_logs"] = str(settings.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}")
    # Airflow's own measure of each file's parse (a forked process each, every min_file_process_interval).
    parsed = processor_durations((settings.home / "logs" / "airflow.log").read_text(errors="replace"))
    result["dag_processor_last_duration"] = parsed
    result["dag_processor_pass_seconds"] = round(sum(parsed.values()), 2)
    return result


def measure_scoring(source: Path, settings: Any, ports: Any, night: date, timeout: float, modes: tuple[str, ...]):
    """Score ``night`` again through the scheduler once per Spark mode, on a copy of a home ``make demo`` built
    (its lake and MLflow store: gold features, the champion, its training set and the drift history): the nightly
    scoring DAG (score every customer, monitor drift) as a quiet night runs it (a re-run reproduces the night's
    drift decision). In connect mode the fresh server's first run of it is reported as ``cold``. ``{mode: night}``."""
    missing = [name for name in ("lake", "mlflow") if not (source / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"{source} has no {' or '.join(missing)}: run `make demo` first (or pass --demo-home)")
    for name in ("lake", "mlflow"):
        began = time.perf_counter()
        shutil.copytree(source / name, settings.home / name, symlinks=True)
        log.info("copied %s/%s in %.1f s", source, name, time.perf_counter() - began)
    plan = {mode: [night, night] if mode == "connect" else [night] for mode in modes}
    settings = _start(settings, ports, modes[0])
    return nights_per_mode(settings, ports, modes, plan, timeout, SCORING, _drift_decision)


def _drift_decision(settings: Any, night: date) -> dict[str, Any]:
    """The night's drift decision, from the summary the drift job wrote (a quiet night: no alert)."""
    from jobs import reports

    summary = reports.read_summary(reports.summary_path(settings, "drift", MODEL, night), as_of_date=night.isoformat())
    found = (summary or {}).get("decision") or {}
    decision = {k: found.get(k) for k in ("alert", "retrain", "reason")}
    log.info("drift decision for %s: %s", night, decision)
    return {"drift_decision": decision}


def run(
    repeats: int,
    night: bool,
    days: int,
    timeout: float,
    keep: bool,
    modes: tuple[str, ...],
    scoring: tuple[Path, date] | None = None,
) -> dict[str, Any]:
    """The measurements, each in a temp home that is deleted afterwards (unless ``keep``)."""
    homes = [Path(tempfile.mkdtemp(prefix="bench-scheduler-"))]
    began = time.perf_counter()
    out: dict[str, Any] = {"home": str(homes[0])}
    try:
        settings, ports = isolate(homes[0])
        log.info("temp home %s; Airflow on 127.0.0.1:%d", homes[0], ports.airflow)
        out["parse"] = measure_parse(repeats)
        if night:
            try:
                out["nights"] = measure_night(settings, ports, days, timeout, modes)
            except Exception as exc:
                log.exception("the empty nights did not run")
                out["nights"] = {mode: {"state": f"error: {exc}", "spark_mode": mode} for mode in modes}
        if scoring:
            homes.append(Path(tempfile.mkdtemp(prefix="bench-scoring-")))
            settings, ports = isolate(homes[-1])
            log.info("scoring night %s on a copy of %s in %s", scoring[1], scoring[0], homes[-1])
            try:
                out["scoring"] = measure_scoring(scoring[0], settings, ports, scoring[1], timeout, modes)
            except Exception as exc:
                log.exception("the scoring nights did not run")
                out["scoring"] = {mode: {"state": f"error: {exc}", "spark_mode": mode} for mode in modes}
    finally:
        out["wall_seconds"] = round(time.perf_counter() - began, 1)
        for home in homes:
            if keep:
                log.info("kept %s", home)
            else:
                shutil.rmtree(home, ignore_errors=True)
    return out


def _ran(night: dict[str, Any]) -> bool:
    return night.get("state") == "success" or bool(night.get("gate_stopped"))


def record(out: dict[str, Any], params: dict[str, Any], root: Path = report.RESULTS_DIR) -> list[dict[str, Any]]:
    """Append dag-parse and each night that ran to the history (rows do not apply): ``empty-night`` and
    ``scoring-night`` are the default (connect) mode's, ``...-submit`` the spark-submit mode's of the same run."""
    parse = {k: v for k, v in out["parse"].items() if k != "samples"}
    entries = [report.record("dag-parse", {"repeats": parse["repeats"]}, parse, stages=parse_stages(parse), root=root)]
    for name, dag_id, key in (("empty-night", PIPELINE, "nights"), ("scoring-night", SCORING, "scoring")):
        nights = out.get(key) or {}
        for mode, night in nights.items():
            if not _ran(night):
                continue
            ratios = {"gaps/total": round(night["scheduling_gaps_seconds"] / night["total_seconds"], 2)}
            other = nights.get("submit") if mode == "connect" else None
            if other and _ran(other):
                ratios["submit/connect"] = round(other["total_seconds"] / night["total_seconds"], 2)
            entries.append(
                report.record(
                    name if mode == "connect" else f"{name}-{mode}",
                    {**params, "dag": dag_id, "day": night["day"], "spark_mode": mode},
                    {**night, "wall_seconds": out["wall_seconds"]},
                    stages=night_stages(night),
                    ratios=ratios,
                    root=root,
                )
            )
    return entries


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.scheduler [--no-record] [--skip-night] [--skip-scoring] [--modes connect,submit]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters that parse the DAG folder")
    parser.add_argument("--skip-night", action="store_true", help="no empty night (with --skip-scoring: parse only)")
    parser.add_argument("--days", type=int, default=30, help="CDNOW days in the lake before the empty night")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the night's run")
    parser.add_argument("--keep", action="store_true", help="keep the temp home (Airflow logs, lake)")
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    parser.add_argument(
        "--modes", default="connect,submit", help="Spark modes whose nights run, in order (connect, submit)"
    )
    parser.add_argument(
        "--scoring-night",
        type=date.fromisoformat,
        default=date(1998, 4, 1),
        help="the CDNOW night the scoring DAG scores again on a copy of --demo-home (default: the demo's first)",
    )
    parser.add_argument(
        "--demo-home", type=Path, default=REPO_ROOT / ".platform", help="a home `make demo` built (lake, MLflow)"
    )
    parser.add_argument("--skip-scoring", action="store_true", help="no scoring night")
    parser.add_argument("--child", choices=("parse", "lake"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.child:
        child = parse_child(DAG_FOLDER) if args.child == "parse" else lake_child(args.days)
        print(json.dumps(child, default=str), flush=True)
        return 0
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes or set(modes) - {"connect", "submit"}:
        parser.error(f"--modes takes connect and/or submit, got {args.modes!r}")
    scoring = None
    if not args.skip_scoring:
        if (args.demo_home / "lake").is_dir():
            scoring = (args.demo_home.resolve(), args.scoring_night)
        else:
            log.warning("no scoring night: %s has no lake; run `make demo` first", args.demo_home)
    out = run(args.repeats, not args.skip_night, args.days, args.timeout, args.keep, modes, scoring)
    shown = {**out, "parse": {k: v for k, v in out["parse"].items() if k != "samples"}}
    print(json.dumps(shown, indent=2, default=str))
    if not args.no_record:
        record(out, {"lake_days": args.days, "model": MODEL})
    nights = [*(out.get("nights") or {}).values(), *(out.get("scoring") or {}).values()]
    ok = not out["parse"]["import_errors"] and all(_ran(n) and not n.get("leftover_processes") for n in nights)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
