"""MLflow runs its basic-auth app in compose and on Kubernetes, with every credential from a secret, and the platform's
tasks and training pods log in through the same secret (no Docker or cluster here: the files are parsed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yaml").read_text()
SERVICES: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)["services"]
VALUES: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "helm" / "airflow-values.yaml").read_text())
MLFLOW_K8S = list(yaml.safe_load_all((REPO / "deploy" / "helm" / "mlflow.yaml").read_text()))
POD = yaml.safe_load((REPO / "include" / "pod_templates" / "training.yaml").read_text())
CLIENT = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
REQUIRED_REFERENCE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")


def _server_command(container: list[str] | str) -> str:
    return " ".join(container) if isinstance(container, list) else container


def test_compose_mlflow_runs_the_basic_auth_app_with_its_secrets_from_env() -> None:
    mlflow = SERVICES["mlflow"]
    command = _server_command(mlflow["command"])
    assert "mlflow server --app-name basic-auth" in command
    env = mlflow["environment"]
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert REQUIRED_REFERENCE.match(env[key]), f"{key} must be a required .env reference, got {env[key]!r}"
    assert (
        env["MLFLOW_AUTH_DATABASE_URI"].startswith("postgresql://")
        and "/mlflow_auth" in env["MLFLOW_AUTH_DATABASE_URI"]
    )
    assert "$$MLFLOW_AUTH_DATABASE_URI" in command and env["MLFLOW_AUTH_CONFIG_PATH"] in COMPOSE_TEXT
    assert "change-me" in command, "the server refuses the .env.example placeholders"
    init = (REPO / "deploy" / "compose" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE mlflow_auth OWNER mlflow" in init, "users and permissions outlive the container"


def test_compose_tasks_log_in_as_the_platform_user_that_mlflow_init_creates() -> None:
    init = SERVICES["mlflow-init"]
    assert init["restart"] == "no" and init["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert "create_user" in init["command"][0] and "update_user_password" in init["command"][0]
    assert init["environment"]["MLFLOW_PLATFORM_PASSWORD"] == "${MLFLOW_PLATFORM_PASSWORD:?set it in .env}"
    for name in ("airflow-scheduler", "airflow-apiserver", "airflow-dag-processor", "airflow-triggerer"):
        env = SERVICES[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"] == init["environment"]["MLFLOW_PLATFORM_USER"], name
        assert env["MLFLOW_TRACKING_PASSWORD"] == init["environment"]["MLFLOW_PLATFORM_PASSWORD"], name
    deps = SERVICES["airflow-scheduler"]["depends_on"]
    assert deps["mlflow-init"]["condition"] == "service_completed_successfully", "tasks run in the scheduler"


def test_env_example_has_placeholders_only_for_the_mlflow_secrets() -> None:
    pairs = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    for key in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SECRET_KEY", "MLFLOW_PLATFORM_PASSWORD"):
        assert pairs[key] == "change-me", key


def _container(kind: str) -> dict[str, Any]:
    doc = next(d for d in MLFLOW_K8S if d["kind"] == kind)
    return doc["spec"]["template"]["spec"]["containers"][0]


def test_kubernetes_mlflow_runs_the_basic_auth_app_with_secret_refs_only() -> None:
    container = _container("Deployment")
    assert "mlflow server --app-name basic-auth" in _server_command(container["args"])
    assert "$$(dirname" in container["args"][0], "Kubernetes expands $(...) in args: the shell's $( is escaped"
    env = {e["name"]: e for e in container["env"]}
    for key in (
        "MLFLOW_BACKEND_STORE_URI",
        "MLFLOW_AUTH_DATABASE_URI",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert "value" not in env[key] and env[key]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-server", key
    policy = next(d for d in MLFLOW_K8S if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mlflow"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_airflow_pods_and_training_pods_read_the_same_mlflow_secret() -> None:
    secrets = {s["envName"]: (s["secretName"], s["secretKey"]) for s in VALUES["secret"]}
    template = {e["name"]: e for e in POD["spec"]["containers"][0]["env"]}
    for name in CLIENT:
        assert name not in {e["name"] for e in VALUES["env"]}, f"{name} as a plain value"
        ref = template[name]["valueFrom"]["secretKeyRef"]
        assert secrets[name] == (ref["name"], ref["key"]) and ref["name"] == "mlflow-credentials", name
        assert not ref.get("optional"), "the server requires a login: a missing Secret must stop the pod"


def test_no_password_literal_in_any_deployment_file() -> None:
    """Nothing meant for more than a laptop holds a password: no URI with one, no value for a secret-looking name."""
    secret_name = re.compile(r"PASSWORD|SECRET|_KEY$|_KEY_ID$", re.I)
    uri_password = re.compile(r"://[^/:@\s$]+:([^@\s]+)@")
    files = [REPO / "deploy" / "helm" / n for n in ("airflow-values.yaml", "mlflow.yaml")]
    files += [REPO / "include" / "pod_templates" / "training.yaml"]
    for path in files:
        text = path.read_text()
        assert not uri_password.search(text), f"{path.name}: a URI with a password"
        for doc in yaml.safe_load_all(text):
            for item in _env_items(doc):
                if secret_name.search(item.get("name", "")):
                    assert "value" not in item, f"{path.name}: {item['name']} has a literal value"
    for password in uri_password.findall(COMPOSE_TEXT):
        assert REQUIRED_REFERENCE.match(password), f"compose: a literal password in a URI: {password}"
    assert "password1234" not in COMPOSE_TEXT + "".join(p.read_text() for p in files), "MLflow's old default"


def _env_items(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, dict))
            else:
                yield from _env_items(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_items(value)


def test_the_platform_image_can_run_the_auth_app() -> None:
    services = (REPO / "deploy" / "requirements-services.txt").read_text()
    assert re.search(r"^Flask-WTF==\S+", services, re.M), "mlflow[auth] needs Flask-WTF in the platform image"
