"""The settings module: local defaults, environment overrides, clear errors."""

from __future__ import annotations

import pytest

from jobs.settings import load


def test_defaults_are_local_and_self_contained(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MLP_HOME", str(tmp_path))
    for name in ("MLP_LAKE_ROOT", "MLFLOW_TRACKING_URI", "MLP_SPARK_MASTER", "MLP_TRAINING_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    settings = load()
    assert settings.lake_root == str(tmp_path / "lake")
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert settings.spark_master == "local[*]"
    assert settings.training_backend == "local"
    assert settings.table_path("silver", "transactions") == f"{tmp_path}/lake/silver/transactions"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_LAKE_ROOT", "s3a://lake/")
    monkeypatch.setenv("MLP_SPARK_MASTER", "spark://10.0.0.5:7077")
    monkeypatch.setenv("MLP_ALERT_RECIPIENTS", "a@x.org, b@x.org")
    monkeypatch.setenv("MLP_TRAINING_BACKEND", "kubernetes")
    settings = load()
    assert settings.table_path("silver", "transactions") == "s3a://lake/silver/transactions"
    assert settings.model_table_path("m1", "features") == "s3a://lake/models/m1/features"
    assert settings.spark_master == "spark://10.0.0.5:7077"
    assert settings.alert_recipients == ("a@x.org", "b@x.org")
    assert settings.training_backend == "kubernetes"


def test_unknown_training_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_TRAINING_BACKEND", "slurm")
    with pytest.raises(ValueError, match="MLP_TRAINING_BACKEND"):
        load()


def test_delta_package_matches_installed_versions() -> None:
    from importlib.metadata import version

    from jobs.spark import delta_package

    coordinate = delta_package(load())
    assert coordinate.endswith(":" + version("delta-spark"))
    assert f"_{'.'.join(version('pyspark').split('.')[:2])}_2.13" in coordinate
