"""Helm values for the official Airflow chart (no cluster here: the values, the GPU pod template and the deployment
notes are parsed and checked against each other and against what the code reads)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "deploy" / "helm"
VALUES: dict[str, Any] = yaml.safe_load((HELM / "airflow-values.yaml").read_text())
NOTES = (HELM / "README.md").read_text()
POD = yaml.safe_load((REPO / "include" / "pod_templates" / "training.yaml").read_text())
# Chart keys that hold a credential in plain text when set (the values must use the *SecretName keys instead).
PLAINTEXT_KEYS = {
    "pass",
    "password",
    "postgresPassword",
    "fernetKey",
    "apiSecretKey",
    "jwtSecret",
    "webserverSecretKey",
    "sshKey",
    "keytabBase64Content",
    "metadataConnection",
    "brokerUrl",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$", re.I)


def _env() -> dict[str, str]:
    return {item["name"]: item.get("value") for item in VALUES["env"]}


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
            yield f"{path}.{key}", key, value
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_kubernetes_executor_and_a_pinned_platform_image() -> None:
    assert VALUES["executor"] == "KubernetesExecutor"
    image = VALUES["images"]["airflow"]
    assert image["repository"] and not image["repository"].startswith("apache/airflow"), "the platform image"
    assert image["repository"] == VALUES["defaultAirflowRepository"]
    for tag in (image["tag"], VALUES["defaultAirflowTag"], _env()["MLP_TRAINING_IMAGE"].rsplit(":", 1)[-1]):
        assert tag and tag != "latest", "pin a release tag or digest"
    pinned = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert VALUES["airflowVersion"] == pinned, "the chart decides by airflowVersion; it must be the image's Airflow"


def test_external_postgres_and_airflow_secrets_come_from_kubernetes_secrets() -> None:
    assert VALUES["postgresql"]["enabled"] is False
    assert VALUES["data"]["metadataSecretName"]
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert VALUES.get(key), f"{key}: set, or the chart generates a different secret per release"
    assert VALUES["createUserJob"]["enabled"] is False, "the chart's user job creates admin/admin"


def test_no_plaintext_secret_in_the_values() -> None:
    for path, key, value in _walk(VALUES):
        if key in PLAINTEXT_KEYS:
            assert value in (None, {}, ""), f"{path} holds a credential; use the chart's *SecretName key"
    for item in VALUES["env"]:
        if SECRET_NAME.search(item["name"]):
            assert "value" not in item, f"env {item['name']} in plain text; use `secret:`"
    text = (HELM / "airflow-values.yaml").read_text()
    assert not re.search(r"://[^/:@\s]+:[^@\s]+@", text), "a URI with a password"


def test_connections_come_from_a_secret() -> None:
    from jobs.settings import Settings

    conns = {s["envName"]: s for s in VALUES["secret"]}
    smtp = f"AIRFLOW_CONN_{Settings.from_env().smtp_conn_id.upper()}"
    assert {"AIRFLOW_CONN_SPARK_DEFAULT", smtp} <= set(conns)
    assert all(c["secretName"] and c["secretKey"] for c in conns.values())
    assert not any(name.startswith("AIRFLOW_CONN_") for name in _env())


def test_platform_env_uses_the_names_jobs_settings_reads() -> None:
    source = (REPO / "jobs" / "settings.py").read_text()
    read = set(re.findall(r"_(?:env|csv)\(\s*\"([A-Z0-9_]+)\"", source))
    env = _env()
    for name in env:
        if name.startswith(("MLP_", "MLFLOW_")):
            assert name in read, f"{name} is not read by jobs/settings.py"
    assert env["MLP_TRAINING_BACKEND"] == "kubernetes"
    assert "SPARK_LOCAL_IP" in VALUES["extraEnv"] and "status.podIP" in VALUES["extraEnv"]


def test_dags_are_baked_into_the_image_the_values_run() -> None:
    core = VALUES["config"]["core"]
    assert VALUES["dags"]["gitSync"]["enabled"] is False and VALUES["dags"]["persistence"]["enabled"] is False
    for key, folder in (("dags_folder", "dags"), ("plugins_folder", "plugins")):
        assert core[key] == f"/opt/mlplatform/{folder}"
        assert f"COPY {folder} ./{folder}" in (REPO / "Dockerfile").read_text()
    template = _env()["MLP_TRAINING_POD_TEMPLATE"]
    assert template.startswith("/opt/mlplatform/") and (REPO / template.removeprefix("/opt/mlplatform/")).is_file()


def test_the_values_fit_the_platform_image() -> None:
    """No FAB provider and no /clean-logs script in the image: the chart's defaults for both must be overridden."""
    lock = (REPO / "requirements.lock").read_text()
    if "apache-airflow-providers-fab==" not in lock:
        assert "fab" not in VALUES["config"]["core"]["auth_manager"].lower()
    for component in ("scheduler", "triggerer", "dagProcessor", "workers"):
        assert VALUES[component]["logGroomerSidecar"]["enabled"] is False, component


def _documented(kind: str) -> str:
    match = re.search(rf"^- {kind}: `([^`]+)`", NOTES, re.M)
    assert match, f"the GPU notes name no {kind}"
    return match.group(1)


def test_gpu_notes_agree_with_the_training_pod_template() -> None:
    spec = POD["spec"]
    key, value = _documented("label").split("=", 1)
    assert spec["nodeSelector"] == {key: value}
    taint_key, effect = re.fullmatch(r"([^=:]+)(?:=[^:]*)?:(\w+)", _documented("taint")).groups()
    assert any(
        t["key"] == taint_key and t["effect"] == effect and t.get("operator") == "Exists" for t in spec["tolerations"]
    ), "the pod template must tolerate the documented taint (any value)"
    resource = _documented("resource")
    container = next(c for c in spec["containers"] if c["name"] == "base")
    assert int(container["resources"]["limits"][resource]) >= 1
    account, namespace = re.search(r"service account: `([^`]+)`.*?namespace\s+`([^`]+)`", NOTES, re.S).groups()
    assert spec["serviceAccountName"] == account
    assert _env()["MLP_K8S_NAMESPACE"] == namespace
    pool = _documented("pool")
    assert f'pool="{pool}"' in (REPO / "dags" / "training.py").read_text()


def test_airflow_pods_stay_off_the_gpu_nodes() -> None:
    taint_key = _documented("taint").split("=")[0].split(":")[0]
    for component in ("workers", "scheduler", "triggerer", "dagProcessor", "apiServer"):
        tolerations = VALUES.get(component, {}).get("tolerations") or []
        assert all(t.get("key") != taint_key for t in tolerations), component
    assert all(t.get("key") != taint_key for t in VALUES.get("tolerations") or [])


def test_spark_tasks_are_clients_of_the_connect_server_only_airflow_reaches() -> None:
    """MLP_SPARK_MODE=connect, and spark-connect.yaml serves the port and host the documented connection names."""
    import json

    from jobs.settings import Settings

    docs = list(yaml.safe_load_all((HELM / "spark-connect.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in docs}
    assert set(kinds) == {"Deployment", "Service", "NetworkPolicy"}
    assert _env()["MLP_SPARK_MODE"] == "connect"
    assert any(s["envName"] == "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT" for s in VALUES["secret"])
    documented = json.loads(re.search(r"--from-literal=spark_connect_default='([^']+)'", NOTES).group(1))
    assert documented["conn_type"] == "spark_connect"
    service = kinds["Service"]
    assert documented["host"].split(".")[:2] == [service["metadata"]["name"], _env()["MLP_K8S_NAMESPACE"]]
    assert [p["port"] for p in service["spec"]["ports"]] == [documented["port"]]
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "jobs.spark", "--serve"]
    assert container["image"].split(":")[0] == VALUES["images"]["airflow"]["repository"], "the platform image"
    env = {e["name"]: e for e in container["env"]}
    assert env["MLP_SPARK_CONNECT_PORT"]["value"] == str(documented["port"])
    assert env["SPARK_LOCAL_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for name in ("MLP_LAKE_ROOT", "MLP_SPARK_IVY_DIR"):
        assert env[name]["value"] == _env()[name], f"{name}: the server and the tasks see the same lake and jars"
    read = set(re.findall(r"_(?:env|csv)\(\s*\"([A-Z0-9_]+)\"", (REPO / "jobs" / "settings.py").read_text()))
    assert {n for n in env if n.startswith("MLP_")} <= read
    assert not any("value" in e for n, e in env.items() if SECRET_NAME.search(n)), "secrets from a Secret"
    assert Settings.from_env().spark_connect_port == documented["port"], "the platform's default port"
    grpc = [rule for rule in kinds["NetworkPolicy"]["spec"]["ingress"] if {"port": 15002} in rule.get("ports", [])]
    assert grpc == [{"from": [{"podSelector": {"matchLabels": {"tier": "airflow"}}}], "ports": [{"port": 15002}]}]
    executors = [rule for rule in kinds["NetworkPolicy"]["spec"]["ingress"] if rule not in grpc]
    opened = {p["port"] for rule in executors for p in rule["ports"]}
    fixed = dict(a.split("=", 1) for a in container["args"] if "=" in a)
    assert opened == {int(fixed["spark.driver.port"]), int(fixed["spark.blockManager.port"])}
