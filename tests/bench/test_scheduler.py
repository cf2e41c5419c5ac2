"""The scheduler benchmark's pure parts: medians, a night's task and gap timings, the empty day, the history."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bench import report, scheduler
from jobs.lake import ingest
from jobs.sources import landing

TRIGGERED = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC)


def _ti(task_id: str, start: str, end: str, duration: float) -> dict:
    return {
        "task_id": task_id,
        "state": "success",
        "try_number": 1,
        "start_date": f"2026-01-02T03:{start}Z",
        "end_date": f"2026-01-02T03:{end}Z",
        "duration": duration,
        "scheduled_when": None,
        "queued_when": None,
    }


RUN = {
    "state": "success",
    "queued_at": "2026-01-02T03:00:00.100000Z",
    "start_date": "2026-01-02T03:00:01Z",
    "end_date": "2026-01-02T03:01:05Z",
}
# Out of order on purpose: the API does not sort by start.
TIS = [_ti("clean", "00:30", "00:50", 20.0), _ti("ingest", "00:04", "00:28", 24.0), _ti("gate", "00:52", "01:03", 11.0)]


def test_median_by_key_takes_each_key_over_the_samples_that_have_it() -> None:
    samples = [{"a.py": 1.0, "b.py": 5.0}, {"a.py": 3.0, "b.py": 4.0}, {"a.py": 2.0}]
    assert scheduler.median_by_key(samples) == {"a.py": 2.0, "b.py": 4.5}


def test_night_timings_orders_tasks_and_measures_every_gap() -> None:
    timings = scheduler.night_timings(TRIGGERED, RUN, TIS)
    assert list(timings["tasks"]) == ["ingest", "clean", "gate"]
    assert timings["gaps"] == {
        "trigger->ingest": 4.0,
        "ingest->clean": 2.0,
        "clean->gate": 2.0,
        "gate->run_end": 2.0,
    }
    assert timings["total_seconds"] == 65.0 and timings["task_seconds"] == 55.0
    assert timings["scheduling_gaps_seconds"] == 10.0
    assert timings["run_queued_to_running"] == 0.9
    assert scheduler.night_stages(timings) == {
        "task.ingest": {"seconds": 24.0},
        "task.clean": {"seconds": 20.0},
        "task.gate": {"seconds": 11.0},
        "scheduling_gaps": {"seconds": 10.0},
        "total": {"seconds": 65.0},
    }


def test_night_timings_tolerates_tasks_that_never_started() -> None:
    waiting = {**_ti("labels", "", "", 0.0), "start_date": None, "end_date": None, "duration": None}
    timings = scheduler.night_timings(TRIGGERED, {**RUN, "end_date": None}, [*TIS, waiting])
    assert list(timings["tasks"])[-1] == "labels" and timings["tasks"]["labels"] is None
    assert timings["total_seconds"] is None and timings["gaps"]["gate->labels"] is None


def test_the_empty_day_is_complete_header_only_and_ingest_accepts_it(tmp_path) -> None:
    day = date(1997, 1, 31)
    folder = scheduler.write_empty_day(tmp_path, day)
    assert (folder / "part-00000.csv").read_text() == landing.HEADER + "\n"
    assert landing.is_complete(folder)
    assert ingest.day_folders(tmp_path, day, day) == [folder]


def test_dag_files_are_the_dag_folder() -> None:
    names = [p.name for p in scheduler.dag_files()]
    assert "feature_pipeline.py" in names and all(not n.startswith("_") for n in names)


def test_rowless_results_get_a_readme_row_and_a_bar_plot(tmp_path) -> None:
    parse = {"repeats": 3, "isolated": {"a.py": 0.2, "b.py": 0.05}, "isolated_sum": 0.25, "folder_total": 4.1}
    night = {"state": "success", "day": "1997-01-31", **scheduler.night_timings(TRIGGERED, RUN, TIS)}
    submit = {**night, "total_seconds": 130.0}
    out = {"parse": {**parse, "samples": [parse]}, "nights": {"connect": night, "submit": submit}, "wall_seconds": 3}
    entries = scheduler.record(out, {"lake_days": 30}, root=tmp_path)
    assert [e["benchmark"] for e in entries] == ["dag-parse", "empty-night", "empty-night-submit"]
    assert [e["params"].get("spark_mode") for e in entries] == [None, "connect", "submit"]
    assert entries[0]["rows"] is None and "samples" not in entries[0]["result"]
    assert entries[0]["stages"] == {
        "a.py": {"seconds": 0.2},
        "b.py": {"seconds": 0.05},
        "total": {"seconds": 0.25},
        "folder_cold": {"seconds": 4.1},
    }
    assert entries[1]["ratios"] == {"gaps/total": 0.15, "submit/connect": 2.0}
    assert entries[2]["ratios"] == {"gaps/total": 0.08}
    readme = (tmp_path / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| empty-night"))
    assert "| empty-night |  | task.ingest 24.00<br>" in row and "total 65.00" in row
    assert any(line.startswith("| empty-night-submit |") for line in readme.splitlines())
    for name in ("dag-parse", "empty-night", "empty-night-submit"):
        assert f"![{name}]({name}.png)" in readme
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_failed_night_is_not_recorded(tmp_path) -> None:
    parse = {"repeats": 1, "isolated": {"a.py": 0.2}, "isolated_sum": 0.2, "folder_total": 3.0}
    night = {"state": "success", "day": "1997-01-31", **scheduler.night_timings(TRIGGERED, RUN, TIS)}
    nights = {"connect": {"state": "failed"}, "submit": night}
    entries = scheduler.record({"parse": parse, "nights": nights, "wall_seconds": 1.0}, {}, tmp_path)
    assert [e["benchmark"] for e in entries] == ["dag-parse", "empty-night-submit"]
    assert "submit/connect" not in entries[1]["ratios"]
    assert len(report.history(tmp_path)) == 2


def test_processor_durations_reads_the_dag_processors_stats_tables() -> None:
    log = "\n".join(
        [
            "dag-processor | Bundle       File Path            PID    Current Duration      # DAGs    # Errors  Last "
            "Duration    Last Run At",
            "dag-processor | dags-folder  training.py                                  0           0",
            "dag-processor | dags-folder  training.py                                  1           0  1.81s    "
            "2026-11-23T20:44:54",
            "dag-processor | dags-folder  scoring.py           4711   0.50s            1           0  1.17s    "
            "2026-11-23T20:44:56",
            "scheduler  | dags-folder  scoring.py  1  0  9.00s  2026-11-23T20:44:56",
            "dag-processor | dags-folder  training.py                                  1           0  0.79s    "
            "2026-11-23T20:45:25",
            "dag-processor | dags-folder  training.py                                  1           0  0.60s    "
            "2026-11-23T20:45:55",
        ]
    )
    assert scheduler.processor_durations(log) == {"scoring.py": 1.17, "training.py": 0.79}


def test_scoring_nights_are_recorded_beside_the_empty_nights(tmp_path) -> None:
    parse = {"repeats": 1, "isolated": {"a.py": 0.2}, "isolated_sum": 0.2, "folder_total": 3.0}
    night = {"state": "success", "day": "1998-04-01", **scheduler.night_timings(TRIGGERED, RUN, TIS)}
    scoring = {"connect": night, "submit": {**night, "total_seconds": 195.0}}
    out = {"parse": parse, "scoring": scoring, "wall_seconds": 1}
    entries = scheduler.record(out, {}, tmp_path)
    assert [e["benchmark"] for e in entries] == ["dag-parse", "scoring-night", "scoring-night-submit"]
    assert entries[1]["params"]["dag"] == scheduler.SCORING and entries[1]["ratios"]["submit/connect"] == 3.0


def test_each_mode_warms_then_measures_and_reads_after_its_run(monkeypatch) -> None:
    ran: list[tuple] = []

    def night(settings, ports, day, timeout, mode, dag_id, tag=""):
        ran.append((mode, day, tag))
        return {"day": day.isoformat(), "state": "success", "total_seconds": 10.0 + len(ran), "tasks": {}}

    monkeypatch.setattr(scheduler, "_start", lambda settings, ports, mode: mode)
    monkeypatch.setattr(scheduler, "_night", night)
    monkeypatch.setattr(scheduler, "_stop", lambda settings: [])
    days = [date(1997, 2, 1), date(1997, 2, 2)]
    plan = {"connect": days, "submit": [date(1997, 2, 3)]}
    nights = scheduler.nights_per_mode(
        "connect", None, ("connect", "submit"), plan, 60, "dag", lambda s, d: {"seen": len(ran)}
    )
    assert ran == [("connect", days[0], "_cold"), ("connect", days[1], ""), ("submit", date(1997, 2, 3), "")]
    assert nights["connect"]["cold"]["total_seconds"] == 11.0 and nights["connect"]["total_seconds"] == 12.0
    assert nights["connect"]["seen"] == 2 and nights["submit"]["seen"] == 3, "read after the measured run"
    assert "cold" not in nights["submit"] and nights["submit"]["leftover_processes"] == []
