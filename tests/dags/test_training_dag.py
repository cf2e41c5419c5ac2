"""The training DAG's wiring, and its Kubernetes pod as an object (no cluster here: the pod request is built and
inspected, which is what KubernetesPodOperator would send to the API server)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "training.py"))
    assert bag.import_errors == {}
    return bag.dags["training"]


def _local_command(dag) -> list[str]:
    from mlplatform.tasks import training_command

    versions = (
        "{{ ti.xcom_pull(task_ids='pin_versions')['features'] }}",
        "{{ ti.xcom_pull(task_ids='pin_versions')['labels'] }}",
    )
    window = ("{{ params.as_of_start or '' }}", "{{ params.as_of_end or '' }}")
    reason = dag.get_task("train").command[dag.get_task("train").command.index("--reason") + 1]
    return training_command("purchase_propensity", "{{ params.family }}", reason, window, versions)


def test_training_runs_on_the_features_asset_in_the_gpu_pool(monkeypatch) -> None:
    monkeypatch.setenv("MLP_TRAINING_BACKEND", "local")
    dag = _dag()
    from mlplatform.tasks import features_asset

    assert features_asset("purchase_propensity") in dag.timetable.asset_condition.objects
    assert [t.task_id for t in dag.topological_sort()] == [
        "pin_versions",
        "build_training_set",
        "train",
        "evaluate_and_promote",
    ]
    promote = dag.get_task("evaluate_and_promote")
    assert type(promote).__name__ == "PromotionOperator" and promote.application_args[1] == "auto"
    train = dag.get_task("train")
    assert type(train).__name__ == "LocalTrainingOperator" and train.pool == "gpu"
    assert train.command[:3] == ["python", "-m", "jobs.ml.train"]
    assert set(dag.params.keys()) == {"family", "as_of_start", "as_of_end", "reason"}


def test_kubernetes_pod_requests_a_gpu_and_runs_the_local_command(monkeypatch) -> None:
    monkeypatch.setenv("MLP_TRAINING_BACKEND", "local")
    local = _dag().get_task("train").command
    monkeypatch.setenv("MLP_TRAINING_BACKEND", "kubernetes")
    monkeypatch.setenv("MLP_TRAINING_IMAGE", "registry.example.org/mlplatform-training:1.2.3")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.ml-platform.svc:5000")
    dag = _dag()
    train = dag.get_task("train")
    assert type(train).__name__ == "TrainingPodOperator" and train.pool == "gpu"
    assert train.on_finish_action.value == "delete_pod" and train.get_logs

    pod = train.build_pod_request_obj(dry_run=True)  # dry run: no cluster, no kube config
    container = pod.spec.containers[0]
    assert container.name == "base"
    assert container.image == "registry.example.org/mlplatform-training:1.2.3"
    assert [*container.command, *container.args] == local, "the pod runs exactly the local backend's command"
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.resources.requests["cpu"] and container.resources.requests["memory"]
    assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in pod.spec.tolerations)
    assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert pod.spec.service_account_name == "ml-training"
    assert pod.metadata.namespace == "ml-platform"
    env = {e.name: e for e in container.env}
    assert env["MLFLOW_TRACKING_URI"].value == "http://mlflow.ml-platform.svc:5000"
    assert env["MLFLOW_TRACKING_PASSWORD"].value_from.secret_key_ref.name == "mlflow-credentials"
    assert env["MLFLOW_TRACKING_PASSWORD"].value is None, "no secret value in the pod spec"


def test_pod_template_file_is_a_valid_pod_without_secret_values() -> None:
    import yaml

    template = yaml.safe_load((REPO / "include" / "pod_templates" / "training.yaml").read_text())
    assert template["kind"] == "Pod" and template["spec"]["containers"][0]["name"] == "base"
    for env in template["spec"]["containers"][0]["env"]:
        if "PASSWORD" in env["name"] or "SECRET" in env["name"]:
            assert "value" not in env and "secretKeyRef" in env["valueFrom"]


@pytest.mark.parametrize("backend", ["local", "kubernetes"])
def test_backend_choice_comes_from_settings(monkeypatch, backend) -> None:
    monkeypatch.setenv("MLP_TRAINING_BACKEND", backend)
    expected = {"local": "LocalTrainingOperator", "kubernetes": "TrainingPodOperator"}[backend]
    assert type(_dag().get_task("train")).__name__ == expected


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of a command, arg or env value (a port of
    ``third_party/forked/golang/expansion``): ``$$`` -> ``$``; ``$(NAME)`` -> its value when ``NAME`` is defined,
    else left as written; an unclosed ``$(`` and any other ``$x`` stay as they are."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)", "secret"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$secret"),
        ("$(MISSING)", "$(MISSING)"),
        ("a$b$", "a$b$"),
        ("$(A", "$(A"),
        ("$$", "$"),
    ],
)
def test_kubelet_expand_follows_the_kubernetes_rules(text: str, expanded: str) -> None:
    """The rules as the Kubernetes API reference states them for EnvVar.value and Container.args."""
    assert kubelet_expand(text, {"A": "secret"}) == expanded


class _TaskInstance:
    """What rendering and the pod's labels read from the task instance."""

    dag_id, task_id, run_id, map_index, try_number = "training", "train", "manual__2026-01-01", -1, 1

    def xcom_pull(self, task_ids: str | None = None, **_: object) -> dict[str, int]:
        return {"features": 7, "labels": 8}


@pytest.mark.parametrize(
    "reason", ["$(MLFLOW_TRACKING_PASSWORD)", "$$(MLFLOW_TRACKING_PASSWORD)", "cost $5 $(HOME) $$ $", "plain"]
)
def test_free_text_reason_reaches_the_training_container_literally(monkeypatch, reason: str) -> None:
    """A reason naming a secret env var must arrive as that text, not as the secret (argv, then MLflow tags)."""
    from types import SimpleNamespace

    from jobs.settings import load

    monkeypatch.setenv("MLP_TRAINING_BACKEND", "kubernetes")
    dag = _dag()
    train = dag.get_task("train")
    context = {
        "params": {"family": "all", "as_of_start": None, "as_of_end": None, "reason": reason},
        "dag_run": SimpleNamespace(run_type="manual", triggering_user_name=None),
        "ti": _TaskInstance(),
        "run_id": "manual__2026-01-01",
        "dag": dag,
        "task": train,
    }
    train.render_template_fields(context)
    assert train.arguments[train.arguments.index("--reason") + 1] == reason, "rendered as typed"
    for _ in range(2):  # a retry or reattach rebuilds the request: still escaped once
        pod = train.build_pod_request_obj(context, dry_run=True)
        container = next(c for c in pod.spec.containers if c.name == "base")
        # What the kubelet resolves the secret-backed variables to, then expands argv with.
        env = {e.name: e.value for e in container.env if e.value is not None}
        env |= {e.name: "s3cret-from-the-secret" for e in container.env if e.value_from is not None}
        argv = [kubelet_expand(x, env) for x in [*container.command, *container.args]]
        assert argv[argv.index("--reason") + 1] == reason
        assert not any("s3cret-from-the-secret" in x for x in argv)
        assert argv == [*train.cmds, *train.arguments], "every argument arrives exactly as rendered"
        values = {e.name: kubelet_expand(e.value, env) for e in container.env if e.value is not None}
        assert values["MLFLOW_TRACKING_URI"] == load().mlflow_tracking_uri
