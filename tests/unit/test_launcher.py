"""The warm job launcher (``jobs.launcher``): a job run in its forked child behaves as the same script run as a plain
``python`` process (argv, environment, working directory, PYTHONPATH, merged output, exit status, signals), starts
with the preloaded libraries already imported, and is stopped when its caller dies. A missing launcher never delays
or fails a job: it runs plainly and a launcher starts for the next one.

Real processes throughout (a launcher on a private socket per test, preloading small modules so it is ready fast).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobs import launcher

# A module nothing here imports by itself, so its presence in a child's sys.modules means the launcher preloaded it.
MARKER = "xml.dom.minidom"

JOB = textwrap.dedent(
    """
    import os, signal, sys, time

    import helper  # from PYTHONPATH

    mode = sys.argv[1]
    print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("PROBE"), "helper", helper.NAME)
    print("preloaded", "xml.dom.minidom" in sys.modules, "no-leak", os.environ.get("LAUNCHER_ONLY"))
    print("to stderr", file=sys.stderr, flush=True)
    if mode == "random":
        import numpy

        print("random", numpy.random.random())
    if mode == "raise":
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(2)  # left running, as pyspark's Connect client leaves its pool: exit must stop it
        pool.submit(print, "pool ran").result()
        raise RuntimeError("the job broke")
    if mode == "sleep":
        def stop(signum, frame):
            print("got", signum, flush=True)
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, stop)
        open(sys.argv[2], "w").write(str(os.getpid()))
        time.sleep(120)
    raise SystemExit(3)
    """
)


@pytest.fixture
def job(tmp_path: Path) -> dict:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.py").write_text("NAME = 'from-pythonpath'\n")
    script = tmp_path / "job.py"
    script.write_text(JOB)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LAUNCHER_ONLY"}
    env.update(PROBE="task-env", PYTHONPATH=str(tmp_path / "lib"))
    return {"script": str(script), "env": env, "cwd": str(work)}


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    where = launcher.paths(tmp_path / "launcher", preload=("numpy.random", MARKER), idle=60)
    # Only the launcher's own environment has this: a job must see its caller's environment, never the launcher's.
    monkeypatch.setenv("LAUNCHER_ONLY", "leaked")
    yield where
    launcher.stop(where)


def _ready(where, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not launcher.ready(where):
        assert time.monotonic() < deadline, f"the launcher was not ready in {timeout:.0f} s:\n{_log(where)}"
        time.sleep(0.2)


def _log(where) -> str:
    return where.log.read_text() if where.log.exists() else "(no log)"


def _run(where, job: dict, *args: str, warm: bool = True):
    process = launcher.popen(job["script"], list(args), job["env"], job["cwd"], warm=warm, where=where)
    with process:
        out = process.stdout.read()
    return process, out


def test_a_warm_child_runs_the_job_as_a_plain_process_would_with_the_libraries_already_imported(where, job) -> None:
    launcher.start(where)
    _ready(where)
    warm, warm_out = _run(where, job, "exit")
    plain, plain_out = _run(where, job, "exit", warm=False)

    assert getattr(warm, "warm", False) and not isinstance(plain, launcher.WarmJob)
    assert warm.returncode == plain.returncode == 3
    expected = f"argv ['exit'] cwd {job['cwd']} env task-env helper from-pythonpath"
    assert expected in warm_out and expected in plain_out
    assert "to stderr" in warm_out and "to stderr" in plain_out  # stderr merged into the one stream
    assert "preloaded True no-leak None" in warm_out, warm_out
    assert "preloaded False no-leak None" in plain_out


def test_an_uncaught_exception_exits_1_with_its_traceback_and_siblings_draw_their_own_random_numbers(
    where, job
) -> None:
    launcher.start(where)
    _ready(where)
    broken = launcher.popen(job["script"], ["raise"], job["env"], job["cwd"], where=where)
    out = broken.stdout.read()
    assert broken.wait(30) == 1, "a job that left a thread pool did not exit"
    broken.stdout.close()
    assert "pool ran" in out and "Traceback" in out and "RuntimeError: the job broke" in out
    assert "launcher.py" not in out and "runpy" not in out, "the traceback starts at the job's script"

    draws = set()
    for _ in range(2):
        process, out = _run(where, job, "random")
        assert process.warm and process.returncode == 3
        draws.add(next(line for line in out.splitlines() if line.startswith("random ")))
    assert len(draws) == 2, "two forked jobs repeated numpy's global random numbers"


def test_terminate_reaches_the_job_and_a_job_whose_caller_died_is_stopped(where, job, tmp_path: Path) -> None:
    launcher.start(where)
    _ready(where)
    pid_file = tmp_path / "sleeper.pid"
    process = launcher.popen(job["script"], ["sleep", str(pid_file)], job["env"], job["cwd"], where=where)
    with process:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            assert time.monotonic() < deadline, "the sleeping job never started"
            time.sleep(0.1)
        process.terminate()  # what on_kill does
        assert process.wait(30) == 143
        assert "got 15" in process.stdout.read()

    # A caller killed outright (SIGKILL: the task's process, the OOM killer) takes its job with it.
    orphan_pid = tmp_path / "orphan.pid"
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from jobs import launcher\n"
            f"where = launcher.paths(Path({str(where.socket.parent)!r}), ('numpy.random', {MARKER!r}), 60)\n"
            f"p = launcher.popen({job['script']!r}, ['sleep', {str(orphan_pid)!r}], {job['env']!r}, {job['cwd']!r}, "
            "where=where)\n"
            "assert p.warm\n"
            "time.sleep(120)\n",
        ]
    )
    deadline = time.monotonic() + 30
    while not orphan_pid.exists():
        assert time.monotonic() < deadline and caller.poll() is None, "the caller's job never started"
        time.sleep(0.1)
    child = int(orphan_pid.read_text())
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 20
    while _alive(child):
        assert time.monotonic() < deadline, f"the job of a dead caller still runs:\n{_log(where)}"
        time.sleep(0.2)
    assert "its caller went away; SIGTERM" in _log(where)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the launcher) is not running.
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_without_a_launcher_a_job_runs_plainly_and_one_starts_for_the_next_job(where, job) -> None:
    first, out = _run(where, job, "exit")
    assert not isinstance(first, launcher.WarmJob) and first.returncode == 3
    assert "preloaded False" in out
    _ready(where)
    second, out = _run(where, job, "exit")
    assert second.warm and second.returncode == 3 and "preloaded True" in out


def test_it_exits_when_idle_or_stopped_and_removes_its_socket(tmp_path: Path) -> None:
    idle = launcher.paths(tmp_path / "idle", preload=(MARKER,), idle=1)
    launcher.start(idle)
    _ready(idle)
    deadline = time.monotonic() + 30
    while idle.socket.exists():
        assert time.monotonic() < deadline, f"an idle launcher did not exit:\n{_log(idle)}"
        time.sleep(0.2)
    assert "idle for 1 s: exiting" in _log(idle)

    stopped = launcher.paths(tmp_path / "stopped", preload=(MARKER,), idle=60)
    launcher.start(stopped)
    _ready(stopped)
    pid = int(stopped.lock.read_text())
    assert launcher.stop(stopped)
    assert not stopped.socket.exists() and not _alive(pid)
    assert not launcher.stop(stopped), "stop() of a stopped launcher says none ran"


def test_only_the_owner_can_use_the_launchers_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="private"):
        launcher.paths(shared)
    where = launcher.paths(tmp_path / "private", preload=(MARKER,), idle=5)
    assert where.socket.parent.stat().st_mode & 0o777 == 0o700
    launcher.start(where)
    _ready(where)
    assert where.socket.stat().st_mode & 0o777 == 0o600
    launcher.stop(where)
