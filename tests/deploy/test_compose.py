"""The scale-out stack (no Docker engine here: docker-compose.yaml, .env.example and the Dockerfile are parsed and
checked for what an operator relies on)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict] = COMPOSE["services"]
AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
INIT = ("airflow-init", "minio-init", "mlflow-init")
REQUIRED = {"postgres", "minio", "mlflow", "spark-master", "spark-worker", "mailpit", *AIRFLOW, *INIT}
PLATFORM_IMAGE = {"mlflow", "mlflow-init", "spark-master", "spark-worker", "airflow-init", *AIRFLOW}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|_KEY_ID$", re.I)
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$${...}` is a literal `${...}` for the container's shell.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
REQUIRED_REFERENCE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")
MLFLOW_CLIENT = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
URI_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]+)@")


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _long_running() -> list[str]:
    return [name for name, svc in SERVICES.items() if str(svc.get("restart", "")) != "no"]


def test_every_required_service_exists_and_inits_run_once() -> None:
    assert set(SERVICES) >= REQUIRED, f"missing: {sorted(REQUIRED - set(SERVICES))}"
    for name in INIT:
        assert SERVICES[name]["restart"] == "no", f"{name} is a one-shot init service"
    assert set(INIT).isdisjoint(_long_running())


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name in _long_running():
        check = SERVICES[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name}: {check['test']}"


def test_dependencies_wait_for_health_or_completion() -> None:
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on without conditions starts before its dependencies work"
        for dep, spec in deps.items():
            want = "service_completed_successfully" if dep in INIT else "service_healthy"
            assert spec.get("condition") == want, f"{name} -> {dep}: {spec}"
    for name in (*AIRFLOW, "airflow-init"):
        assert "postgres" in SERVICES[name]["depends_on"], name
    for name in AIRFLOW:
        assert "airflow-init" in SERVICES[name]["depends_on"], f"{name} must wait for the migration"
    assert {"postgres", "minio-init"} <= set(SERVICES["mlflow"]["depends_on"])
    assert {"mlflow", "spark-master", "mailpit"} <= set(SERVICES["airflow-scheduler"]["depends_on"])
    assert "spark-master" in SERVICES["spark-worker"]["depends_on"]


def test_no_literal_secret_anywhere() -> None:
    """Secret-looking variables and passwords inside URIs are required references to .env (``${NAME:?...}``)."""
    checked = 0
    for name in SERVICES:
        for key, value in _env(name).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert REQUIRED_REFERENCE.match(value), f"{name}.{key} = {value!r} is not a ${{VAR:?...}} reference"
                checked += 1
            for password in URI_PASSWORD.findall(value):
                assert REQUIRED_REFERENCE.match(password), f"{name}.{key}: literal password in a URI"
                checked += 1
    assert checked >= 10, "the secrets were not found where expected"
    for var, operator, _ in REFERENCE.findall(COMPOSE_TEXT):
        if SECRET_NAME.search(var):
            assert operator == ":?", f"${{{var}}} must be required (:?), never defaulted"


def test_every_referenced_variable_is_documented_with_a_placeholder() -> None:
    documented = _env_example()
    referenced = {var for var, _, _ in REFERENCE.findall(COMPOSE_TEXT)}
    assert referenced, "no ${...} references found"
    assert referenced <= set(documented), f"not in .env.example: {sorted(referenced - set(documented))}"
    for var, value in documented.items():
        if SECRET_NAME.search(var) and not var.endswith("ACCESS_KEY"):  # an access key id names a user
            assert value == "change-me", f".env.example holds a value for {var}; use the change-me placeholder"
    assert ".env" in (REPO / ".gitignore").read_text().split(), ".env must stay out of git"


def test_placeholders_are_refused_at_start() -> None:
    """Every required secret is checked against the change-me placeholder by an init step that needs it."""
    init_script = (REPO / "deploy" / "compose" / "postgres-init.sh").read_text()
    refused = COMPOSE_TEXT + init_script
    assert refused.count("change-me") >= 3
    for var in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD"):
        assert var in init_script
    mounts = SERVICES["postgres"]["volumes"]
    assert any(m.startswith("./deploy/compose/postgres-init.sh:/docker-entrypoint-initdb.d/") for m in mounts)


def _settings_variables() -> set[str]:
    source = (REPO / "jobs" / "settings.py").read_text()
    return set(re.findall(r"_(?:env|csv)\(\s*\"([A-Z0-9_]+)\"", source))


def test_airflow_services_configure_the_platform_through_the_names_it_reads() -> None:
    from airflow.configuration import conf

    known = conf.configuration_description  # every [section] option Airflow documents (config.yml)
    read = _settings_variables()
    assert {"MLP_LAKE_ROOT", "MLFLOW_TRACKING_URI", "MLP_MLFLOW_UI_URL"} <= read, "settings parser broke"
    for name in (*AIRFLOW, "airflow-init"):
        env = _env(name)
        for key in env:
            if key in MLFLOW_CLIENT:
                continue  # read by MLflow's client itself (basic auth), not by jobs/settings.py
            if key.startswith(("MLP_", "MLFLOW_")) or key in {"SPARK_LOCAL_IP", "PYSPARK_PYTHON"}:
                assert key in read, f"{name}: {key} is not read by jobs/settings.py"
            elif key.startswith("AIRFLOW__"):
                section, option = key.removeprefix("AIRFLOW__").lower().split("__", 1)
                assert option in known.get(section, {}).get("options", {}), f"{name}: no Airflow [{section}] {option}"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["AIRFLOW__CORE__EXECUTOR"] in {"LocalExecutor", "CeleryExecutor"}
    for key in ("MLP_LAKE_ROOT", "MLP_REPORTS_ROOT", "MLP_MLFLOW_UI_URL", "MLP_REPORTS_URL", "MLP_SMTP_HOST"):
        assert key in _env("airflow-scheduler"), key


def test_connections_point_at_the_compose_services_the_code_uses() -> None:
    from jobs.settings import Settings

    env = _env("airflow-scheduler")
    conns = {
        k.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_")
    }
    tasks_source = (REPO / "plugins" / "mlplatform" / "tasks.py").read_text()
    assert 'conn_id="spark_default"' in tasks_source
    assert set(conns) == {"spark_connect_default", "spark_default", Settings.from_env().smtp_conn_id}
    assert conns["spark_default"]["host"] == "spark://spark-master:7077"
    # Spark tasks are clients of the spark-connect service: the connection names its host and the port it serves.
    assert env["MLP_SPARK_MODE"] == "${MLP_SPARK_MODE:-connect}"
    connect = conns["spark_connect_default"]
    assert connect["conn_type"] == "spark_connect"
    server = _env("spark-connect")
    assert (connect["host"], str(connect["port"])) == (server["SPARK_LOCAL_IP"], server["MLP_SPARK_CONNECT_PORT"])
    assert SERVICES["spark-connect"]["hostname"] == connect["host"]
    assert SERVICES["spark-connect"]["command"] == ["python", "-m", "jobs.spark", "--serve"]
    assert server["MLP_SPARK_MASTER"] == conns["spark_default"]["host"], "its executors run on the cluster"
    assert "ports" not in SERVICES["spark-connect"], "no authentication: the server stays on the compose network"
    assert "spark-connect" in SERVICES["airflow-scheduler"]["depends_on"]
    assert (conns["smtp_default"]["host"], conns["smtp_default"]["port"]) == ("mailpit", 1025)
    assert (env["MLP_SMTP_HOST"], env["MLP_SMTP_PORT"]) == ("mailpit", "1025")
    assert {"spark-master", "mailpit", "mlflow"} <= set(SERVICES)


def _mounts(service: str) -> dict[str, str]:
    """Container path -> source of each volume of ``service``."""
    out = {}
    for mount in SERVICES[service].get("volumes") or []:
        source, target, *_ = mount.split(":")
        out[target] = source
    return out


def test_lake_and_reports_are_shared_by_the_driver_and_the_executors() -> None:
    """Spark drivers (scheduler) and executors (worker) must see the lake at the same path on the same volume."""
    env = _env("airflow-scheduler")
    for key in ("MLP_LAKE_ROOT", "MLP_LANDING_ROOT", "MLP_REPORTS_ROOT", "MLP_SPARK_IVY_DIR"):
        path = env[key]
        assert not path.startswith(("s3a://", "s3://")), "the jobs do not configure S3 for Spark yet"
        for service in ("airflow-scheduler", "spark-connect", "spark-worker"):
            hits = [t for t in _mounts(service) if path == t or path.startswith(t.rstrip("/") + "/")]
            assert hits, f"{key}={path} is not on a volume of {service}"
            assert _mounts(service)[hits[0]] == _mounts("airflow-scheduler")[hits[0]] == "platform"
    assert _env("spark-worker")["MLP_LAKE_ROOT"] == env["MLP_LAKE_ROOT"]


def test_airflow_mounts_the_repository_layout_where_its_settings_look() -> None:
    for name in (*AIRFLOW, "airflow-init"):
        env, mounts = _env(name), _mounts(name)
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
        assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins"
        assert mounts["/opt/mlplatform/jobs"] == "./jobs" and mounts["/opt/mlplatform/include"] == "./include"
    for source in ("dags", "plugins", "jobs", "include"):
        assert (REPO / source).is_dir()


def test_ports_are_published_on_loopback_only() -> None:
    published = 0
    for name, svc in SERVICES.items():
        for port in svc.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published += 1
    assert published >= 5


def test_databases_and_object_store_keep_their_data_in_named_volumes() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for service, target in (("postgres", "/var/lib/postgresql/data"), ("minio", "/data")):
        source = _mounts(service)[target]
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", source) and source in declared, f"{service}: {source}"


def test_one_image_built_from_the_repository_dockerfile_and_nothing_installed_at_start() -> None:
    images = set()
    for name in PLATFORM_IMAGE:
        svc = SERVICES[name]
        build = svc.get("build") or {}
        assert build.get("context") == "." and build.get("target") == "platform", name
        assert (REPO / build.get("dockerfile", "Dockerfile")).is_file()
        images.add(svc["image"])
    assert len(images) == 1, f"one platform image, not {images}"
    for name, svc in SERVICES.items():
        started = json.dumps([svc.get("command"), svc.get("entrypoint"), svc.get("healthcheck")])
        assert not re.search(r"pip3? install|uv pip|apt-get", started), f"{name} installs packages when it starts"


def _stage(name: str) -> str:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if re.match(rf"FROM \S+ AS {name}$", x))
    end = next((i for i, x in enumerate(lines[start + 1 :], start + 1) if x.startswith("FROM ")), len(lines))
    return "\n".join(lines[start:end])


def test_platform_image_installs_the_locks_at_build_time_and_runs_as_non_root() -> None:
    stage = _stage("platform")
    install = next(x for x in stage.splitlines() if x.startswith("RUN ") and "-r requirements.lock" in x)
    assert "requirements-services.lock" in install
    assert "COPY requirements.lock deploy/requirements-services.lock" in stage
    user = re.findall(r"^USER (\S+)", stage, re.M)
    assert user and user[-1] not in {"0", "root"}
    assert "PASSWORD" not in stage.upper() and "SECRET" not in stage.upper()
    lock = (REPO / "deploy" / "requirements-services.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+$", lock, re.M)
    assert {"psycopg2-binary", "asyncpg", "boto3"} <= set(pins)
    main_lock = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "requirements.lock").read_text(), re.M))
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", lock, re.M):
        assert main_lock.get(name, version) == version, f"{name} disagrees with requirements.lock"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".platform"} <= set(ignored), "secrets and local data stay out of the build context"


@pytest.mark.parametrize("service", sorted(PLATFORM_IMAGE))
def test_platform_services_do_not_run_as_root(service: str) -> None:
    assert str(SERVICES[service].get("user", "50000")) not in {"0", "root"}
