"""The Kubernetes training path reads its training set from the object-store lake: the pod built from the Helm
values (MLP_LAKE_ROOT on S3, credentials from a Secret, no lake volume), and the job's read path against a real S3
API (moto's server on loopback)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VALUES: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "helm" / "airflow-values.yaml").read_text())
POD = yaml.safe_load((REPO / "include" / "pod_templates" / "training.yaml").read_text())
LAKE_SECRET = "mlplatform-lake-s3"
S3_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}


def _helm_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in VALUES["env"]}


def _training_pod(monkeypatch) -> Any:
    """The pod request the train task would send, with the Airflow side's settings from the Helm values."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in _helm_env().items():
        if name.startswith(("MLP_", "MLFLOW_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLP_TRAINING_POD_TEMPLATE", str(REPO / "include" / "pod_templates" / "training.yaml"))
    bag = DagBag(dag_folder=str(REPO / "dags" / "training.py"))
    assert bag.import_errors == {}
    return bag.dags["training"].get_task("train").build_pod_request_obj(dry_run=True)


def test_helm_lake_is_object_storage_with_credentials_from_a_secret() -> None:
    assert _helm_env()["MLP_LAKE_ROOT"].startswith(("s3a://", "s3://"))
    secrets = {s["envName"]: (s["secretName"], s["secretKey"]) for s in VALUES["secret"]}
    template = {e["name"]: e for e in POD["spec"]["containers"][0]["env"]}
    for name in S3_VARIABLES:
        assert name not in _helm_env(), f"{name} comes from the Secret, not from a value"
        ref = template[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in template[name]
        assert secrets[name] == (ref["name"], ref["key"]) == (LAKE_SECRET, ref["key"]), (
            f"task pods and training pods read {name} from the same Secret key"
        )
        assert not ref.get("optional"), "a missing lake Secret must stop the pod, not let it run without credentials"


def test_training_pod_reads_the_lake_from_object_storage_without_a_volume(monkeypatch) -> None:
    pod = _training_pod(monkeypatch)
    container = next(c for c in pod.spec.containers if c.name == "base")
    env = {e.name: e for e in container.env}
    assert env["MLP_LAKE_ROOT"].value == _helm_env()["MLP_LAKE_ROOT"], "the pod reads where the platform wrote"
    for name in S3_VARIABLES:
        assert env[name].value is None and env[name].value_from.secret_key_ref.name == LAKE_SECRET, name
    assert env["MLFLOW_TRACKING_URI"].value == _helm_env()["MLFLOW_TRACKING_URI"]
    mounts = {m.mount_path for m in container.volume_mounts or []}
    assert mounts == {"/dev/shm"}, f"no lake volume is needed, got {mounts}"
    assert [v.name for v in pod.spec.volumes] == ["dshm"]


@pytest.fixture
def s3(monkeypatch) -> Any:
    """A real S3 API on loopback (moto's server), and the AWS variables the pod gets from the Secret."""
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lake-reader")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    admin = fs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
    admin.create_dir("mlplatform-lake")
    try:
        yield admin
    finally:
        server.stop()


def _write_set_as_spark_does(s3: Any, root: str, manifest: dict[str, Any], frames: dict[str, Any]) -> None:
    """The layout build_training_set writes: Parquet partitioned by split, then the manifest as one text part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split, frame in frames.items():
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), f"{root}/split={split}/part-00000.parquet", filesystem=s3
        )
    with s3.open_output_stream(f"{root}/_manifest/part-00000-0.txt") as out:
        out.write(json.dumps(manifest, sort_keys=True).encode() + b"\n")
    with s3.open_output_stream(f"{root}/_manifest/_SUCCESS") as out:
        out.write(b"")


def test_training_job_reads_its_set_and_delta_versions_from_s3(monkeypatch, s3) -> None:
    """What jobs.ml.train does in the pod: find the set under MLP_LAKE_ROOT (s3a://) and load it, on a real S3 API."""
    from datetime import date

    import pandas as pd

    from jobs.config import feature_columns, load_model_config
    from jobs.ml import trainset
    from jobs.settings import load

    monkeypatch.setenv("MLP_LAKE_ROOT", "s3a://mlplatform-lake/lake")
    settings = load()
    config = load_model_config(sorted(settings.models_dir.glob("*.yaml"))[0])
    columns = list(feature_columns(config))
    frames = {
        split: pd.DataFrame(
            {
                "customer_id": [i, i + 1],
                "as_of_date": [date(1997, 3, 1 + i), date(1997, 3, 2 + i)],
                **{c: [float(i), float(i + 1)] for c in columns},
                "label": [0, 1],
            }
        )
        for i, split in enumerate(trainset.SPLITS, start=1)
    }
    versions = {"features": 3, "labels": 5}
    key = trainset.set_key(config, versions, None, None)
    path = trainset.set_path(settings, config, key)
    assert path.startswith("s3a://mlplatform-lake/lake/models/")
    manifest = {"key": key, "rows": {s: 2 for s in trainset.SPLITS}, "feature_columns": columns}
    _write_set_as_spark_does(s3, path.removeprefix("s3a://"), manifest, frames)

    got_manifest, sets = trainset.load_training_set(path)
    assert got_manifest == manifest
    for split in trainset.SPLITS:
        assert sets[split][["customer_id", *columns, "label"]].equals(frames[split][["customer_id", *columns, "label"]])

    for n in range(versions["labels"] + 1):
        with s3.open_output_stream(f"mlplatform-lake/lake/gold/t/_delta_log/{n:020d}.json") as out:
            out.write(b"{}")
    assert trainset.current_version("s3a://mlplatform-lake/lake/gold/t") == versions["labels"]

    with pytest.raises(FileNotFoundError, match="no complete training set"):
        trainset.load_training_set(trainset.set_path(settings, config, "ts-missing"))
