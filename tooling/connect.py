"""The platform's Spark Connect server on loopback, for `make up`, `make demo` and the tests: ``python -m jobs.spark
--serve`` (Spark's own Connect server with the jobs' Delta packages and configuration) in its own process group,
ready once its log says so, stopped with its whole group after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.settings import REPO_ROOT


class ConnectServerError(RuntimeError):
    """The server exited or did not come up in time (the message holds its log's tail)."""


READY = "Spark Connect server started"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start(port: int, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the server (its own session, so a stop reaches the JVM and its Python workers)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.spark", "--serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(server: subprocess.Popen, log_path: Path, timeout_s: float = 300) -> None:
    """Block until the server's log says it serves; fail with the log's tail if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while READY not in log_path.read_text(errors="replace"):
        if server.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {server.returncode}" if server.returncode is not None else "not ready in time"
            raise ConnectServerError(f"the Spark Connect server {state}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(server: subprocess.Popen, timeout_s: float = 60) -> None:
    """SIGTERM the server's process group; SIGKILL it if it has not exited in ``timeout_s``."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=timeout_s)


@contextmanager
def serve(port: int, log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A running server for the block; yields its ``sc://127.0.0.1:port`` URL."""
    server = start(port, log_path, env)
    try:
        wait_ready(server, log_path)
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop(server)
