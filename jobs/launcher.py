"""A warm launcher of job processes: one long-lived process per interpreter that has imported the heavy client
libraries once (pandas, pyarrow, pyspark's Connect client, MLflow, Great Expectations, Evidently, scikit-learn and
the model families' libraries) and forks a child per job. A Spark Connect task then starts its job in well under a
second instead of paying 3-20 s of imports every time.

- **Fresh code per job.** Only third-party libraries are preloaded; the child imports ``jobs`` itself, so an edited
  job runs as edited. A reinstalled library is picked up by the next launcher (``idle`` seconds after the last job).
- **The job sees what a plain process would.** The child gets the caller's environment, working directory, argv and
  output pipe (passed over the socket), runs the script as ``python <script> <args>`` would (``runpy``, as
  ``__main__``), and exits the same way; the launcher reports its pid, then its exit status (negative: killed by that
  signal, as in ``subprocess``).
- **Never in the way.** ``popen`` connects to this interpreter's launcher; when none is ready it starts one in the
  background and runs the job as a plain subprocess, so a cold launcher never delays a task and a broken one never
  fails it (``MLP_JOB_LAUNCHER=off`` turns it off).
- **Kills reach the job.** ``terminate()`` and ``kill()`` are forwarded to the child; when the caller goes away (its
  task process was killed), the child gets SIGTERM (a job interrupts its Spark operations) and SIGKILL 30 s later.
- **Private.** The socket lives in a 0700 folder of the user's own, and peers of another user are refused
  (``SO_PEERCRED``). The launcher exits after ``idle`` seconds without jobs; ``stop()`` ends it at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# What the jobs import that is slow to import; whatever is not installed is skipped.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "yaml",
    "jinja2",
    "pyspark.sql.connect.session",
    "pyspark.sql.functions",
    "sklearn.metrics",
    "mlflow",
    "mlflow.pyfunc",
    "great_expectations",
    "evidently",
    "evidently.presets",
    "xgboost",
    "torch",
)
IDLE_S = 900.0  # a launcher with no job for this long exits
KILL_GRACE_S = 30.0  # SIGTERM, then SIGKILL this much later, when a job's caller went away
HEADER_MAX = 32


@dataclass(frozen=True)
class Paths:
    """One launcher: its socket, lock (holding its pid) and log, what it preloads and when it exits."""

    socket: Path
    lock: Path
    log: Path
    preload: tuple[str, ...] = PRELOAD
    idle: float = IDLE_S


def paths(folder: Path | None = None, preload: tuple[str, ...] = PRELOAD, idle: float = IDLE_S) -> Paths:
    """This interpreter's launcher (in ``folder``, by default a private folder of the user's in the temporary
    directory): keyed by the interpreter, its version, the preload list and this file, so a new virtual environment
    or a changed launcher never talks to an old one."""
    exe = os.path.realpath(sys.executable)
    key = hashlib.sha256("\0".join([exe, sys.version, *preload, Path(__file__).read_text()]).encode()).hexdigest()
    folder = folder or Path(tempfile.gettempdir()) / f"mlp-launcher-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise PermissionError(f"{folder} must be owned by uid {os.getuid()} and private (0700)")
    key = key[:16]
    return Paths(folder / f"{key}.sock", folder / f"{key}.lock", folder / f"{key}.log", tuple(preload), idle)


# --- the caller's side ------------------------------------------------------------------------------------------


class WarmJob:
    """A job running in a launcher's child, with the part of ``subprocess.Popen`` that callers use: ``stdout`` (text
    lines), ``pid``, ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``, and the context manager."""

    warm = True

    def __init__(self, control: socket.socket, stdout: Any, pid: int) -> None:
        self._control = control
        self._pending = b""
        self.stdout = stdout
        self.pid = pid
        self.returncode: int | None = None

    def _read(self, timeout: float | None) -> None:
        """Read the launcher's messages until the exit status arrives or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                message = json.loads(line)
                if "exit" in message:
                    self.returncode = int(message["exit"])
                    return
            # No deadline: block; a deadline passed: one non-blocking read (what poll() does).
            self._control.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            try:
                chunk = self._control.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            if not chunk:  # the launcher died without reporting: the job's status is unknown
                log.error("the job launcher went away while job %d ran; its exit status is unknown", self.pid)
                self.returncode = 255
                return
            self._pending += chunk

    def poll(self) -> int | None:
        self._read(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"job {self.pid}", timeout or 0.0)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            # If the launcher is gone, so is the job's way to be signalled, and wait() says so.
            with contextlib.suppress(OSError):
                self._control.sendall(json.dumps({"signal": int(signum)}).encode() + b"\n")

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> WarmJob:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.stdout.close()
            self.wait()
        finally:
            self._control.close()


def _connect(where: Paths) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(5)
        client.connect(str(where.socket))
        return client
    except OSError:
        client.close()
        return None


def _starting(where: Paths) -> bool:
    """Whether a launcher holds the lock (it is alive: warming up or serving)."""
    import fcntl

    with open(where.lock, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def start(where: Paths | None = None) -> None:
    """Start this interpreter's launcher in the background, unless one is alive already."""
    where = where or paths()
    if _starting(where):
        return
    with open(where.log, "ab") as out:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobs.launcher",
                "--serve",
                f"--dir={where.socket.parent}",
                f"--idle={where.idle}",
                f"--preload={','.join(where.preload)}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # not in the task's process group: a kill of the task leaves it serving others
            close_fds=True,
        )


def ready(where: Paths | None = None) -> bool:
    """Whether this interpreter's launcher answers (it binds its socket only once its libraries are imported)."""
    client = _connect(where or paths())
    if client is None:
        return False
    client.close()
    return True


def stop(where: Paths | None = None, timeout: float = 60.0) -> bool:
    """SIGTERM this interpreter's launcher (it lets running jobs finish) and wait for it; True if one ran."""
    where = where or paths()
    try:
        pid = int(where.lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if not pid or not _starting(where):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while _starting(where) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def popen(
    script: str,
    args: list[str],
    env: dict[str, str],
    cwd: str | None = None,
    warm: bool = True,
    where: Paths | None = None,
) -> Any:
    """Run ``python <script> <args>`` with ``env`` and ``cwd``, its stdout and stderr merged into ``.stdout``: in a
    warm launcher's child when one is ready (a ``WarmJob``), else as a plain ``subprocess.Popen`` (and a launcher is
    started in the background for the next job, when ``warm``)."""
    cwd = cwd or os.getcwd()
    if warm:
        try:
            job = _warm(where or paths(), script, args, env, cwd)
        except OSError as error:  # a full disk, a missing /tmp: run plainly, and say why
            log.warning("job launcher unavailable (%s); running a plain process", error)
            job = None
        if job is not None:
            return job
    return subprocess.Popen(
        [sys.executable, script, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _warm(where: Paths, script: str, args: list[str], env: dict[str, str], cwd: str) -> WarmJob | None:
    control = _connect(where)
    if control is None:
        start(where)
        return None
    read_end, write_end = os.pipe()
    try:
        payload = json.dumps({"argv": [script, *args], "env": env, "cwd": cwd}).encode()
        control.settimeout(30)
        socket.send_fds(control, [b"%d\n" % len(payload)], [write_end])
        control.sendall(payload)
        os.close(write_end)
        write_end = -1
        line = b""
        while not line.endswith(b"\n"):
            chunk = control.recv(1)
            if not chunk:
                raise ConnectionError("the job launcher closed the connection before starting the job")
            line += chunk
        started = json.loads(line)
        if "error" in started:
            raise ConnectionError(f"the job launcher refused the job: {started['error']}")
    except (OSError, ValueError) as error:
        log.warning("job launcher did not start the job (%s); running a plain process", error)
        control.close()
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        return None
    return WarmJob(control, open(read_end, encoding="utf-8", errors="replace"), int(started["pid"]))


# --- the launcher's side ----------------------------------------------------------------------------------------


@dataclass
class Child:
    """What a forked child runs once it has left the launcher's loop."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    out: int


@dataclass
class Running:
    conn: socket.socket
    pid: int
    kill_at: float | None = None


def preload(names: tuple[str, ...]) -> list[str]:
    """Import ``names``; return those that could not be imported."""
    import importlib

    missing = []
    for name in names:
        started = time.monotonic()
        try:
            importlib.import_module(name)
        except Exception as error:  # not installed, or broken: its jobs import it themselves and say why
            missing.append(name)
            log.info("not preloaded: %s (%s)", name, error)
        else:
            log.info("preloaded %s in %.1f s", name, time.monotonic() - started)
    return missing


def _read_request(conn: socket.socket) -> tuple[dict, int]:
    conn.settimeout(10)
    data, fds, _, _ = socket.recv_fds(conn, HEADER_MAX, 1)
    if not data and not fds:
        raise EOFError  # a readiness probe: connected, then closed
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise ValueError("a request carries exactly one output pipe")
    while b"\n" not in data:
        chunk = conn.recv(HEADER_MAX)
        if not chunk:
            raise ValueError("truncated request")
        data += chunk
    header, payload = data.split(b"\n", 1)
    size = int(header)
    while len(payload) < size:
        chunk = conn.recv(min(1 << 20, size - len(payload)))
        if not chunk:
            raise ValueError("truncated request")
        payload += chunk
    request = json.loads(payload)
    if not (isinstance(request.get("argv"), list) and request["argv"] and isinstance(request.get("env"), dict)):
        raise ValueError("a request needs argv (script first) and env")
    return request, fds[0]


def _same_user(conn: socket.socket) -> bool:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # not Linux: the 0700 folder is the guard
        return True
    import struct

    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid == os.getuid()


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.settimeout(5)
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the caller is gone; its job was signalled when that was seen


def serve(where: Paths) -> Child | None:
    """Preload, then serve until ``where.idle`` seconds pass without a job, or SIGTERM. Returns None in the
    launcher when it is done, and a ``Child`` in each forked child (which then runs its job and exits)."""
    import fcntl
    import selectors

    lock = open(where.lock, "a+")  # noqa: SIM115 - held (locked) for the launcher's whole life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("a launcher is already running for %s", where.socket)
        lock.close()
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    started = time.monotonic()
    missing = preload(where.preload)
    log.info("preloaded in %.1f s (skipped: %s)", time.monotonic() - started, ", ".join(missing) or "none")
    import gc

    gc.collect()
    gc.freeze()  # the preloaded heap is never collected, so a child's collections do not copy its pages

    stopping: list[int] = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))

    where.socket.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous_umask = os.umask(0o177)
    try:
        listener.bind(str(where.socket))
    finally:
        os.umask(previous_umask)
    listener.listen(64)
    inode = where.socket.stat().st_ino
    log.info("serving on %s (idle exit after %.0f s)", where.socket, where.idle)

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    running: dict[int, Running] = {}
    last_busy = time.monotonic()

    def leave_for_child(request: dict, out: int) -> Child:
        """In a fresh child: drop every handle of the launcher's, restore default signals."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        selector.close()
        listener.close()
        for job in running.values():
            job.conn.close()
        os.close(wake_r)
        os.close(wake_w)
        lock.close()  # else the launcher's lock outlives it while this job runs
        return Child(request["argv"], request["env"], request.get("cwd") or "/", out)

    while True:
        if stopping and listener.fileno() >= 0:
            selector.unregister(listener)
            listener.close()
            log.info("SIGTERM: no new jobs; waiting for %d running", len(running))
        if stopping and not running:
            break
        if not running and time.monotonic() - last_busy > where.idle:
            log.info("idle for %.0f s: exiting", where.idle)
            break
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            elif key.fileobj is listener:
                conn, _ = listener.accept()
                if not _same_user(conn):
                    log.warning("refused a connection from another user")
                    conn.close()
                    continue
                try:
                    request, out = _read_request(conn)
                except EOFError:
                    conn.close()
                    continue
                except (OSError, ValueError) as error:
                    log.warning("bad request: %s", error)
                    _send(conn, {"error": str(error)})
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    conn.close()
                    return leave_for_child(request, out)
                os.close(out)
                _send(conn, {"pid": pid})
                conn.setblocking(False)
                running[pid] = Running(conn, pid)
                selector.register(conn, selectors.EVENT_READ, pid)
                log.info("job %d: %s", pid, " ".join(request["argv"])[:300])
            else:  # a caller's message, or its going away
                job = running.get(key.data)
                if job is None:
                    continue
                try:
                    data = job.conn.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(job.conn)
                    if job.kill_at is None:
                        log.warning("job %d: its caller went away; SIGTERM", job.pid)
                        _signal(job.pid, signal.SIGTERM)
                        job.kill_at = time.monotonic() + KILL_GRACE_S
                    continue
                for line in data.splitlines():
                    try:
                        signum = int(json.loads(line)["signal"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    log.info("job %d: signal %d from its caller", job.pid, signum)
                    _signal(job.pid, signum)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job = running.pop(pid, None)
            if job is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.info("job %d exited with %d", pid, code)
            _send(job.conn, {"exit": code})
            if job.kill_at is None:
                selector.unregister(job.conn)
            job.conn.close()
            last_busy = time.monotonic()
        now = time.monotonic()
        for job in running.values():
            if job.kill_at is not None and now > job.kill_at:
                log.warning("job %d: still running %.0f s after SIGTERM; SIGKILL", job.pid, KILL_GRACE_S)
                _signal(job.pid, signal.SIGKILL)
                job.kill_at = now + KILL_GRACE_S
        if running:
            last_busy = now

    try:
        if where.socket.stat().st_ino == inode:
            where.socket.unlink()
    except FileNotFoundError:
        pass
    lock.close()
    return None


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def run_child(child: Child) -> None:
    """In a forked child: become the job's process (stdio, directory, environment, argv), then run the script as
    ``__main__``; its exit (return, SystemExit, exception) is this process's exit."""
    import runpy
    import traceback

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(child.out, 1)
    os.dup2(child.out, 2)
    os.close(child.out)
    sys.stdout.reconfigure(line_buffering=True)
    os.chdir(child.cwd)
    os.environ.clear()
    os.environ.update(child.env)
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    if "numpy.random" in sys.modules:  # a forked child would otherwise repeat its siblings' global random numbers
        sys.modules["numpy.random"].seed()
    script = os.path.abspath(child.argv[0])
    extra = [p for p in child.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:1] = [os.path.dirname(script), *[p for p in extra if p not in sys.path]]
    sys.argv = [script, *child.argv[1:]]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        code = _exit_code(done.code)
    except BaseException as error:  # what the interpreter prints for an uncaught exception, and its exit status
        frames = error.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename != script:
            frames = frames.tb_next  # from the script's own frame on, as `python <script>` prints it
        traceback.print_exception(type(error), error, frames or error.__traceback__)
        code = 1
    _finish(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(code: int) -> None:
    """Exit as the interpreter would (non-daemon threads joined, atexit handlers run, stdio flushed) but without
    tearing down every preloaded module: that teardown touched the whole inherited heap and took ~3 s per job."""
    import atexit
    import threading

    # What the interpreter's own exit does first: run threading's exit hooks (concurrent.futures tells its pools'
    # workers to stop there, as pyspark's Connect client relies on), then join the non-daemon threads.
    threading._shutdown()
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--serve`` runs this interpreter's launcher in the foreground; ``--stop`` ends it; ``--status``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m jobs.launcher", description=main.__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--serve", action="store_true", help="preload, then fork a child per job until idle")
    what.add_argument("--stop", action="store_true", help="stop this interpreter's launcher")
    what.add_argument("--status", action="store_true", help="say whether it is ready")
    parser.add_argument("--idle", type=float, default=IDLE_S, help="seconds without jobs before it exits")
    parser.add_argument("--dir", type=Path, default=None, help="its folder (default: a private temporary one)")
    parser.add_argument("--preload", default=",".join(PRELOAD), help="comma-separated modules to import first")
    args = parser.parse_args(argv)
    where = paths(args.dir, tuple(n for n in args.preload.split(",") if n), args.idle)
    if args.stop:
        print("stopped" if stop(where) else "not running")
        return 0
    if args.status:
        print("ready" if ready(where) else ("starting" if _starting(where) else "not running"), where.socket)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s launcher[%(process)d]: %(message)s")
    child = serve(where)
    if child is not None:
        run_child(child)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
