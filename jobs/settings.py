"""The one place that reads the environment: every path, URI and switch of the platform."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _csv(name: str, default: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in _env(name, default).split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Platform settings; build with ``Settings.from_env()`` (or ``load()``)."""

    home: Path
    lake_root: str
    landing_root: Path
    reports_root: Path
    mail_root: Path
    outbox_root: Path
    airflow_home: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    spark_master: str
    spark_python: str
    spark_local_ip: str
    spark_ivy_dir: Path
    spark_driver_memory: str
    spark_shuffle_partitions: int
    delta_package: str
    training_backend: str
    training_image: str
    training_pod_template: Path
    kubernetes_namespace: str
    smtp_host: str
    smtp_port: int
    smtp_sender: str
    smtp_conn_id: str
    alert_recipients: tuple[str, ...]
    models_dir: Path
    # What a browser opens from a task's extra links (the MLflow UI, served reports); not what the containers use.
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    reports_url: str = ""  # empty: reports are linked as file:// URIs of reports_root
    # A date with at most this many rows is scored by the driver's copy of the model, not spark_udf (0: never).
    score_driver_max_rows: int = 500_000
    # A Spark Connect server (sc://host:port): jobs run as its thin clients instead of starting a JVM each (empty:
    # a classic session, local or under spark-submit). Its own port when this platform starts one (jobs.spark --serve).
    spark_remote: str = ""
    spark_connect_port: int = 15002
    # How the DAGs' Spark tasks run: "connect" (a thin client process of the long-running Spark Connect server that
    # the Airflow connection `spark_connect_default` names) or "submit" (a spark-submit, a JVM per task, for clusters
    # where no Connect server runs).
    spark_mode: str = "connect"
    # Connect-mode jobs start in a child forked by a warm launcher that has imported the heavy libraries once
    # (jobs.launcher); "off" starts each job as a plain Python process.
    job_launcher: str = "warm"

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``MLP_*`` variables, falling back to a self-contained local layout under ``.platform/``."""
        home = Path(_env("MLP_HOME", str(REPO_ROOT / ".platform"))).resolve()
        backend = _env("MLP_TRAINING_BACKEND", "local")
        spark_mode = _env("MLP_SPARK_MODE", "connect")
        if spark_mode not in {"submit", "connect"}:
            raise ValueError(f"MLP_SPARK_MODE must be 'submit' or 'connect', got {spark_mode!r}")
        job_launcher = _env("MLP_JOB_LAUNCHER", "warm")
        if job_launcher not in {"warm", "off"}:
            raise ValueError(f"MLP_JOB_LAUNCHER must be 'warm' or 'off', got {job_launcher!r}")
        if backend not in {"local", "kubernetes"}:
            raise ValueError(f"MLP_TRAINING_BACKEND must be 'local' or 'kubernetes', got {backend!r}")
        return cls(
            home=home,
            lake_root=_env("MLP_LAKE_ROOT", str(home / "lake")),
            landing_root=Path(_env("MLP_LANDING_ROOT", str(home / "landing"))),
            reports_root=Path(_env("MLP_REPORTS_ROOT", str(home / "reports"))),
            mail_root=Path(_env("MLP_MAIL_ROOT", str(home / "mail"))),
            # Team e-mails wait here until the SMTP server accepted them (jobs.notify.outbox); shared like reports.
            outbox_root=Path(_env("MLP_OUTBOX_ROOT", str(home / "outbox"))),
            airflow_home=Path(_env("AIRFLOW_HOME", str(home / "airflow"))),
            mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"),
            mlflow_artifact_root=_env("MLP_MLFLOW_ARTIFACT_ROOT", str(home / "mlflow" / "artifacts")),
            spark_master=_env("MLP_SPARK_MASTER", "local[*]"),
            spark_python=_env("PYSPARK_PYTHON", sys.executable),
            # Local mode and loopback clusters bind here; a real cluster sets the driver's routable address.
            spark_local_ip=_env("SPARK_LOCAL_IP", "127.0.0.1"),
            # Outside the checkout so a fresh clone on the same machine reuses the downloaded Delta jars.
            spark_ivy_dir=Path(_env("MLP_SPARK_IVY_DIR", str(Path.home() / ".cache" / "mlplatform" / "ivy"))),
            spark_driver_memory=_env("MLP_SPARK_DRIVER_MEMORY", "4g"),
            spark_shuffle_partitions=int(_env("MLP_SPARK_SHUFFLE_PARTITIONS", "8")),
            delta_package=_env("MLP_DELTA_PACKAGE", ""),  # empty: derived from the installed delta-spark
            spark_remote=_env("MLP_SPARK_REMOTE", ""),
            spark_connect_port=int(_env("MLP_SPARK_CONNECT_PORT", "15002")),
            spark_mode=spark_mode,
            job_launcher=job_launcher,
            training_backend=backend,
            # The image built from the Dockerfile's `training` stage; pin a digest in production.
            training_image=_env("MLP_TRAINING_IMAGE", "mlplatform-training:latest"),
            training_pod_template=Path(
                _env("MLP_TRAINING_POD_TEMPLATE", str(REPO_ROOT / "include" / "pod_templates" / "training.yaml"))
            ),
            kubernetes_namespace=_env("MLP_K8S_NAMESPACE", "ml-platform"),
            smtp_host=_env("MLP_SMTP_HOST", "127.0.0.1"),
            smtp_port=int(_env("MLP_SMTP_PORT", "8025")),
            smtp_sender=_env("MLP_SMTP_SENDER", "ml-platform@localhost"),
            # Airflow's SMTP provider sends through this connection (AIRFLOW_CONN_SMTP_DEFAULT, or the metadata DB).
            smtp_conn_id=_env("MLP_SMTP_CONN_ID", "smtp_default"),
            alert_recipients=_csv("MLP_ALERT_RECIPIENTS", "ml-team@localhost"),
            models_dir=Path(_env("MLP_MODELS_DIR", str(REPO_ROOT / "include" / "models"))),
            mlflow_ui_url=_env("MLP_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
            reports_url=_env("MLP_REPORTS_URL", ""),
            score_driver_max_rows=int(_env("MLP_SCORE_DRIVER_MAX_ROWS", "500000")),
        )

    def smtp_connection_json(self) -> str:
        """The ``smtp_default`` connection for the local SMTP server on loopback (no TLS, no login)."""
        import json

        return json.dumps(
            {
                "conn_type": "smtp",
                "host": self.smtp_host,
                "port": self.smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": self.smtp_sender, "timeout": 10},
            }
        )

    def table_path(self, layer: str, name: str) -> str:
        """Location of a Delta table, e.g. ``table_path("bronze", "transactions")``."""
        return f"{self.lake_root.rstrip('/')}/{layer}/{name}"

    def model_root(self, model: str) -> str:
        """The folder that holds everything one model owns (``<lake>/models/<model>``): a folder per model, not a
        partition of shared tables, so each model's tables have their own schema, Delta log, retention and
        concurrency (one model's writes never conflict with, nor can a wrong predicate touch, another's)."""
        return f"{self.lake_root.rstrip('/')}/models/{model}"

    def model_table_path(self, model: str, name: str) -> str:
        """Location of one of ``model``'s own Delta tables, e.g. ``model_table_path("<model>", "features")``."""
        return f"{self.model_root(model)}/{name}"


def load() -> Settings:
    """Settings for this process (read fresh each call so tests can change the environment)."""
    return Settings.from_env()
