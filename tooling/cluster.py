"""A Spark standalone cluster on loopback, started from the pyspark pip install (no Spark distribution needed).

The scale-out path in one machine: ``standalone_cluster()`` starts a master and N workers as separate JVMs,
waits until every worker has registered, yields the ``spark://`` URL and stops the JVMs again (process groups,
also on error). The cluster integration test uses it with one worker, the benchmark with two;
``python -m tooling.cluster up`` starts one by hand and keeps it running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from jobs.settings import load

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# Heap of the master and worker daemons themselves (executors get theirs from the worker's --memory).
DAEMON_MEMORY = "512m"
# Environment that belongs to the calling Python's own Spark driver and must not leak into the daemons.
_DRIVER_ENV = ("SPARK_ENV_LOADED", "PYSPARK_SUBMIT_ARGS", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")


class ClusterError(RuntimeError):
    """The standalone cluster did not come up; the message carries the tail of the daemon logs."""


def spark_home() -> Path:
    """SPARK_HOME of the installed pyspark (its package folder holds bin/ and jars/)."""
    from pyspark.find_spark_home import _find_spark_home

    home = Path(_find_spark_home())
    if not (home / "bin" / "spark-class").exists():
        raise ClusterError(f"no bin/spark-class under SPARK_HOME {home}; is pyspark installed completely?")
    return home


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now (the OS picks it; a tiny race with other processes remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def daemon_env(log_dir: Path, python: str | None = None) -> dict[str, str]:
    """Environment for the master and worker JVMs: loopback, the venv's Python, logs and work under log_dir."""
    env = {k: v for k, v in os.environ.items() if k not in _DRIVER_ENV}
    env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_LOCAL_HOSTNAME": HOST,
            "PYSPARK_PYTHON": python or load().spark_python,
            "SPARK_LOG_DIR": str(log_dir),
            "SPARK_WORKER_DIR": str(log_dir / "work"),
            "SPARK_DAEMON_MEMORY": os.environ.get("SPARK_DAEMON_MEMORY", DAEMON_MEMORY),
        }
    )
    return env


def master_state(ui_url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The master's JSON status page (workers, applications, cores, memory)."""
    with urllib.request.urlopen(f"{ui_url.rstrip('/')}/json/", timeout=timeout) as response:
        return json.loads(response.read().decode())


def app_dirs(log_dir: Path) -> list[Path]:
    """Per-application folders the workers created (executor stdout/stderr): proof that executors ran there."""
    return sorted(Path(log_dir).glob("worker-*/work/app-*"))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"--- {path}: (no log)"
    return f"--- {path} (last {min(lines, len(text))} lines):\n" + "\n".join(text[-lines:])


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Terminate the daemon's whole process group (spark-class execs java; java may have children)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    log.warning("process group %d did not exit after SIGKILL", proc.pid)


@contextmanager
def _daemon(name: str, args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    spark_class = Path(env["SPARK_HOME"]) / "bin" / "spark-class"
    with open(log_path, "ab") as out:
        # A new session makes the daemon a process-group leader, so stopping it takes its children along.
        proc = subprocess.Popen(
            [str(spark_class), *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    log.info("started %s (pid %d), log %s", name, proc.pid, log_path)
    try:
        yield proc
    finally:
        _stop(proc)
        log.info("stopped %s (pid %d, exit %s)", name, proc.pid, proc.returncode)


def _wait_ready(
    ui_url: str, workers: int, procs: dict[str, subprocess.Popen], logs: list[Path], timeout: float
) -> dict[str, Any]:
    """Poll the master's JSON until ``workers`` workers are alive; fail fast if a daemon exits."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    last_error = "master web UI not reachable yet"
    while time.monotonic() < deadline:
        dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        if dead:
            raise ClusterError(
                f"Spark standalone daemon(s) exited during start-up {dead}\n" + "\n".join(_tail(p) for p in logs)
            )
        try:
            state = master_state(ui_url, timeout=2.0)
            alive = int(state.get("aliveworkers", 0))
            if alive >= workers:
                return state
            last_error = f"{alive}/{workers} workers registered"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_error = f"master web UI {ui_url}/json/ not answering: {exc}"
        time.sleep(0.5)
    raise ClusterError(
        f"Spark standalone cluster not ready after {timeout:.0f}s ({last_error})\n" + "\n".join(_tail(p) for p in logs)
    )


@contextmanager
def standalone_cluster(
    workers: int = 1,
    cores: int = 1,
    memory: str = "1g",
    log_dir: str | Path | None = None,
    timeout: float = 120.0,
) -> Iterator[str]:
    """Start a master and ``workers`` workers (``cores`` and ``memory`` each) on loopback; yield the master URL.

    Daemon logs and the workers' work folders go under ``log_dir`` (a temp folder removed afterwards if None).
    Everything started is stopped on exit, also when start-up or the body fails.
    """
    if workers < 1 or cores < 1:
        raise ValueError(f"need at least one worker and one core, got workers={workers} cores={cores}")
    with ExitStack() as stack:
        if log_dir is None:
            root = Path(tempfile.mkdtemp(prefix="mlp-spark-cluster-"))
            stack.callback(shutil.rmtree, root, ignore_errors=True)
        else:
            root = Path(log_dir)
            root.mkdir(parents=True, exist_ok=True)
        port, ui_port = free_port(), free_port()
        master_url, ui_url = f"spark://{HOST}:{port}", f"http://{HOST}:{ui_port}"
        procs: dict[str, subprocess.Popen] = {}
        logs: list[Path] = []

        master_log = root / "master.log"
        logs.append(master_log)
        procs["master"] = stack.enter_context(
            _daemon(
                "master",
                [MASTER_CLASS, "--host", HOST, "--port", str(port), "--webui-port", str(ui_port)],
                daemon_env(root),
                master_log,
            )
        )
        for i in range(1, workers + 1):
            worker_root = root / f"worker-{i}"
            (worker_root / "work").mkdir(parents=True, exist_ok=True)
            args = [WORKER_CLASS, master_url, "--host", HOST, "--cores", str(cores), "--memory", memory]
            args += ["--webui-port", str(free_port()), "--work-dir", str(worker_root / "work")]
            worker_log = worker_root / "worker.log"
            logs.append(worker_log)
            procs[f"worker-{i}"] = stack.enter_context(
                _daemon(f"worker-{i}", args, daemon_env(worker_root), worker_log)
            )
        state = _wait_ready(ui_url, workers, procs, logs, timeout)
        log.info(
            "Spark standalone cluster %s ready: %s workers, %s cores, UI %s",
            master_url,
            state.get("aliveworkers"),
            state.get("cores"),
            ui_url,
        )
        yield master_url


def main(argv: list[str] | None = None) -> int:
    """CLI: ``up [--workers N] [--cores C] [--memory M] [--log-dir DIR]`` runs a loopback cluster until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tooling.cluster", description="Spark standalone on loopback")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a master and workers, print the master URL, block until Ctrl-C")
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--cores", type=int, default=1, help="cores per worker")
    up.add_argument("--memory", default="1g", help="executor memory per worker, e.g. 1g")
    up.add_argument("--log-dir", type=Path, default=None, help="default: <MLP_HOME>/spark-cluster")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the workers to register")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # SIGTERM (e.g. from a supervisor) unwinds like Ctrl-C so the daemons are stopped, not orphaned.
    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    log_dir = args.log_dir or load().home / "spark-cluster"
    try:
        with standalone_cluster(args.workers, args.cores, args.memory, log_dir, args.timeout) as url:
            print(url, flush=True)
            print(f"logs under {log_dir}; Ctrl-C stops the cluster", file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except ClusterError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
