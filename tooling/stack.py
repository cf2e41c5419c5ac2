"""`make up` / `make down`: the embedded default's services on loopback, in the background, with logs and pid files.

* Airflow 3 standalone (api-server with the UI, scheduler, dag-processor, triggerer; SQLite, LocalExecutor) on
  :8080, with the simple auth manager's generated admin password printed;
* the MLflow UI on :5000 over the platform's tracking store;
* the loopback SMTP server on :8025 that keeps every message as a ``.eml`` file under ``.platform/mail``;
* the reports folder (drift, data quality, evaluation HTML) served read-only on :8000;
* with ``MLP_SPARK_MODE=connect``, the Spark Connect server (Spark's own, with the jobs' Delta packages) on :15002
  (``MLP_SPARK_CONNECT_PORT``): Airflow's Spark tasks are its thin clients, so no task starts a JVM of its own
  (the default, ``submit``, still runs a spark-submit per task).

Everything binds 127.0.0.1 and lives under ``$MLP_HOME/run`` (pid files) and ``$MLP_HOME/logs``. Laptop only: the
scale-out stack is docker-compose.yaml / the Helm values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jobs import launcher
from jobs.settings import REPO_ROOT, Settings, load

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    """Where each service listens (MLP_*_PORT overrides the defaults)."""

    airflow: int = 8080
    mlflow: int = 5000
    reports: int = 8000

    @classmethod
    def from_env(cls) -> Ports:
        """Ports from MLP_AIRFLOW_PORT, MLP_MLFLOW_PORT and MLP_REPORTS_PORT."""
        return cls(
            int(os.environ.get("MLP_AIRFLOW_PORT") or cls.airflow),
            int(os.environ.get("MLP_MLFLOW_PORT") or cls.mlflow),
            int(os.environ.get("MLP_REPORTS_PORT") or cls.reports),
        )


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def airflow_env(settings: Settings, ports: Ports) -> dict[str, str]:
    """The environment Airflow standalone runs with: loopback API, the repo's DAGs and plugins, one admin user."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # LocalExecutor forks this many workers up front (Airflow's default is 32); tasks here are Spark jobs.
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM") or str(max(4, os.cpu_count() or 2)),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(ports.airflow),
        "AIRFLOW__API__BASE_URL": f"http://{HOST}:{ports.airflow}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW_CONN_SMTP_DEFAULT": os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT") or settings.smtp_connection_json(),
        # connect: Spark tasks as clients of the stack's Spark Connect server; submit: a spark-submit each.
        "MLP_SPARK_MODE": settings.spark_mode,
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT": os.environ.get("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT")
        or connect_connection_json(settings),
        "MLP_MLFLOW_UI_URL": f"http://{HOST}:{ports.mlflow}",
        "MLP_REPORTS_URL": f"http://{HOST}:{ports.reports}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def connect_connection_json(settings: Settings) -> str:
    """The Spark provider's ``spark_connect`` connection to the stack's Spark Connect server."""
    return json.dumps(
        {"conn_type": "spark_connect", "host": settings.spark_local_ip, "port": settings.spark_connect_port}
    )


def services(settings: Settings, ports: Ports) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """name -> (command, environment, health URL or ``tcp://host:port``)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    found = {
        "mail": ([sys.executable, "-m", "tooling.mailsink"], env, f"tcp://{settings.smtp_host}:{settings.smtp_port}"),
        "mlflow": (
            [
                *(_bin("mlflow"), "ui", "--backend-store-uri", settings.mlflow_tracking_uri),
                *(
                    "--default-artifact-root",
                    settings.mlflow_artifact_root,
                    "--host",
                    HOST,
                    "--port",
                    str(ports.mlflow),
                ),
            ],
            env,
            f"http://{HOST}:{ports.mlflow}/health",
        ),
        "reports": (
            [sys.executable, "-m", "http.server", str(ports.reports), "--bind", HOST, "-d", str(settings.reports_root)],
            env,
            f"http://{HOST}:{ports.reports}/",
        ),
        "airflow": (
            [_bin("airflow"), "standalone"],
            airflow_env(settings, ports),
            f"http://{HOST}:{ports.airflow}/api/v2/monitor/health",
        ),
    }
    if settings.spark_mode != "connect":
        return found
    # Before Airflow, so its first Spark task finds the server.
    server = (
        [sys.executable, "-m", "jobs.spark", "--serve"],
        env,
        f"tcp://{settings.spark_local_ip}:{settings.spark_connect_port}",
    )
    return {**{k: v for k, v in found.items() if k != "airflow"}, "spark-connect": server, "airflow": found["airflow"]}


def task_services(settings: Settings) -> tuple[str, ...]:
    """What the DAGs' tasks need running: Airflow, and in connect mode the Spark Connect server (first)."""
    return ("spark-connect", "airflow") if settings.spark_mode == "connect" else ("airflow",)


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.home / "run" / f"{name}.pid"


def running(settings: Settings, name: str) -> int | None:
    """The pid of a service this module started, if it is still alive."""
    try:
        pid = int(_pid_file(settings, name).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _healthy(url: str) -> bool:
    if url.startswith("tcp://"):
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex((host, int(port))) == 0
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            if "/monitor/health" not in url:
                return response.status == 200
            health = json.loads(response.read())
            return all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")
            )
    except (OSError, ValueError):
        return False


def wait_healthy(url: str, timeout: float, pid: int | None = None) -> None:
    """Block until ``url`` answers healthy; fail early when the process behind it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(url):
            return
        if pid is not None:
            try:
                os.kill(pid, 0)
            except OSError:
                raise RuntimeError(f"the process behind {url} exited; see its log") from None
        time.sleep(2)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f} s")


def airflow_password(settings: Settings) -> str | None:
    """The admin password the simple auth manager generated (None until the API server wrote it)."""
    path = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
    try:
        return json.loads(path.read_text()).get("admin")
    except (OSError, ValueError):
        return None


class AirflowApi:
    """Airflow 3's REST API (``/api/v2``) as the admin user, with a JWT from ``/auth/token``."""

    TERMINAL = frozenset({"success", "failed"})

    def __init__(self, base: str, password: str) -> None:
        self.base, self.password = base.rstrip("/"), password
        self._token: str | None = None

    @classmethod
    def local(cls, settings: Settings, ports: Ports) -> AirflowApi:
        """The API of the Airflow ``make up`` (or ``make demo``) runs."""
        password = airflow_password(settings)
        if not password:
            raise RuntimeError(f"no generated admin password under {settings.airflow_home}; is Airflow up?")
        return cls(f"http://{HOST}:{ports.airflow}", password)

    def _call(self, method: str, path: str, body: dict | None = None, retry: bool = True) -> dict:
        if self._token is None:
            login = {"username": "admin", "password": self.password}
            self._token = self._request("POST", "/auth/token", login, None)["access_token"]
        try:
            return self._request(method, path, body, self._token)
        except urllib.error.HTTPError as error:
            if error.code == 401 and retry:  # the token expired
                self._token = None
                return self._call(method, path, body, retry=False)
            raise

    def _request(self, method: str, path: str, body: dict | None, token: str | None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise urllib.error.HTTPError(
                error.url, error.code, f"{method} {path}: {detail}", error.hdrs, None
            ) from None
        return json.loads(payload) if payload else {}

    def get(self, path: str) -> dict:
        """GET ``path`` (e.g. ``/api/v2/dags/training``)."""
        return self._call("GET", path)

    def post(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``path``."""
        return self._call("POST", path, body)

    def patch(self, path: str, body: dict) -> dict:
        """PATCH ``path`` with ``body``."""
        return self._call("PATCH", path, body)

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        """A healthy Airflow may not have parsed the DAG folder yet: wait until it serves ``dag_id``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get(f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)

    def ensure_pool(self, name: str, slots: int, description: str) -> None:
        """Create pool ``name`` unless it exists (the training DAG's ``gpu`` pool)."""
        try:
            self.get(f"/api/v2/pools/{name}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            self.post("/api/v2/pools", {"name": name, "slots": slots, "description": description})

    def set_paused(self, dag_id: str, paused: bool) -> bool:
        """Pause or unpause ``dag_id``; return whether it was paused before."""
        before = bool(self.get(f"/api/v2/dags/{dag_id}")["is_paused"])
        if before != paused:
            self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": paused})
        return before

    def run(self, dag_id: str, run_id: str) -> dict | None:
        """The DAG run, or None when it does not exist."""
        try:
            return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> dict:
        """Trigger ``dag_id`` now as run ``run_id`` with ``conf`` (validated against the DAG's Params)."""
        return self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task_id -> state of the run's task instances."""
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def wait_run(self, dag_id: str, run_id: str, timeout: float, poll: float = 2) -> str:
        """Wait until the run exists and ends; log each task's state changes as they happen; return its state."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str | None] = {}
        while True:
            run = self.run(dag_id, run_id)
            if run is not None:
                states = self.task_states(dag_id, run_id)
                for task_id, state in states.items():
                    if state != seen.get(task_id) and state not in (None, "scheduled", "queued"):
                        log.info("  %s/%s %s: %s", dag_id, run_id, task_id, state)
                seen = states
                if run["state"] in self.TERMINAL:
                    return run["state"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout:.0f} s (tasks: {seen})")
            time.sleep(poll)


def start(settings: Settings, ports: Ports, only: tuple[str, ...] = ()) -> dict[str, tuple[str, int]]:
    """Start each service not yet running, without waiting; return name -> (health URL, pid)."""
    for folder in (settings.home / "run", settings.home / "logs", settings.reports_root, settings.mail_root):
        folder.mkdir(parents=True, exist_ok=True)
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    started: dict[str, tuple[str, int]] = {}
    for name, (command, env, health) in services(settings, ports).items():
        if only and name not in only:
            continue
        pid = running(settings, name)
        if pid is None:
            if _healthy(health):
                raise RuntimeError(f"{name}: something else already answers on {health}; stop it or change the port")
            logfile = settings.home / "logs" / f"{name}.log"
            with logfile.open("ab") as out:
                process = subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
                )
            _pid_file(settings, name).write_text(str(process.pid))
            pid = process.pid
            log.info("%s started (pid %d), log %s", name, pid, logfile)
        started[name] = (health, pid)
    return started


def up(settings: Settings, ports: Ports, only: tuple[str, ...] = (), timeout: float = 300) -> dict[str, str]:
    """Start each service not yet running, wait until all are healthy; return name -> URL."""
    started = start(settings, ports, only)
    if "spark-connect" in started and settings.job_launcher == "warm":
        launcher.start()  # warms up (imports the jobs' libraries) while the services start; see jobs.launcher
    for name, (health, pid) in started.items():
        log.info("waiting for %s (%s)", name, health)
        wait_healthy(health, timeout, pid)
    if "airflow" in started:
        # Training tasks run in the `gpu` pool: one slot here, as many as GPUs in production.
        AirflowApi.local(settings, ports).ensure_pool("gpu", 1, "GPU training slots")
    return {name: health for name, (health, _) in started.items()}


def _tree(pid: int) -> list:
    """The process and every descendant (Airflow's scheduler and executor workers leave the process group)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def down(settings: Settings, grace: float = 30, only: tuple[str, ...] = ()) -> list[str]:
    """Stop the services this module started (all, or ``only``) and their descendants; SIGKILL after ``grace``."""
    import psutil

    stopped = []
    for name in ("airflow", "spark-connect", "mlflow", "reports", "mail"):
        if only and name not in only:
            continue
        pid = running(settings, name)
        if pid is not None:
            tree = _tree(pid)
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)
            for process in tree:
                with contextlib.suppress(psutil.Error):
                    process.terminate()
            _, alive = psutil.wait_procs(tree, timeout=grace)
            for process in alive:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs(alive, timeout=10)
            stopped.append(name)
        _pid_file(settings, name).unlink(missing_ok=True)
    if (not only or "spark-connect" in only) and launcher.stop():
        stopped.append("job-launcher")
    return stopped


def describe(settings: Settings, ports: Ports) -> str:
    """Where to look, for people."""
    password = airflow_password(settings)
    return "\n".join(
        [
            f"Airflow UI  : http://{HOST}:{ports.airflow}  user admin, password {password or '(not generated yet)'}"
            f"  (from {settings.airflow_home}/simple_auth_manager_passwords.json.generated)",
            f"MLflow UI   : http://{HOST}:{ports.mlflow}",
            f"Reports     : http://{HOST}:{ports.reports}/  (drift, quality, evaluation under {settings.reports_root})",
            f"Mail SMTP   : {settings.smtp_host}:{settings.smtp_port}; one .eml per message in {settings.mail_root}",
            f"Logs        : {settings.home / 'logs'}; stop everything with `make down`",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m tooling.stack up|down|status``."""
    parser = argparse.ArgumentParser(prog="python -m tooling.stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each service to be healthy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, ports = load(), Ports.from_env()
    if args.action == "down":
        log.info("stopped: %s", ", ".join(down(settings)) or "nothing was running")
        return 0
    if args.action == "up":
        up(settings, ports, timeout=args.timeout)
    for name, (_, _, health) in services(settings, ports).items():
        pid = running(settings, name)
        print(f"{name:13s}: {'up' if pid and _healthy(health) else 'down'}{f' (pid {pid})' if pid else ''}")
    print(describe(settings, ports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
