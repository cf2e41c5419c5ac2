"""The MLflow model registry as the platform uses it: alias names, experiments, resolving and moving the champion."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.settings import Settings

CHAMPION, PREVIOUS_CHAMPION, CHALLENGER = "champion", "previous_champion", "challenger"


class PromotionError(RuntimeError):
    """A promotion or rollback that cannot be carried out as asked (no such version, nothing to roll back to...)."""


class StaleChampionError(PromotionError):
    """Check-and-set failed: the champion changed between evaluation and the alias move."""


class NoChampionError(RuntimeError):
    """The model has no champion yet: nothing may score (a challenger is not trusted until promoted)."""


def experiment_id(settings: Settings, name: str) -> str:
    """The MLflow experiment ``name`` (created with the platform's artifact root when new)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = settings.mlflow_artifact_root
    location = root if "://" in root else Path(root).resolve().as_uri()
    return client.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}")


def resolve_champion(settings: Settings, model: str) -> dict[str, Any]:
    """The champion's concrete version, its run and a version-pinned URI (``models:/<model>/<version>``)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        version = MlflowClient().get_model_version_by_alias(model, CHAMPION)
    except MlflowException as exc:
        raise NoChampionError(
            f"{model} has no @{CHAMPION} version: train and promote one first (training DAG, or promote_model)"
        ) from exc
    return {
        "version": int(version.version),
        "run_id": version.run_id,
        "uri": f"models:/{model}/{version.version}",
    }


def aliases(client: Any, model: str) -> dict[str, int]:
    """The registered model's aliases as {alias: version}; empty when the model has none (or does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_registered_model(model).aliases
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
            return {}
        raise
    return {name: int(version) for name, version in found.items()}


@contextmanager
def _model_lock(lock_dir: Path, model: str) -> Iterator[None]:
    """One alias move per model at a time on this host (the check-and-set below covers the evaluation window)."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{model}.promotion.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def move_champion(client: Any, model: str, to_version: int, expected: int | None, lock_dir: Path) -> dict[str, int]:
    """Check-and-set: point ``champion`` at ``to_version`` and ``previous_champion`` at the old champion, but only if
    the champion is still ``expected`` (what the decision was made against); return the aliases after the move."""
    with _model_lock(lock_dir, model):
        current = aliases(client, model).get(CHAMPION)
        if current != expected:
            raise StaleChampionError(
                f"{model}: champion is v{current} but the decision was made against v{expected}; "
                "another promotion or rollback happened meanwhile. Re-run to evaluate against the new champion."
            )
        if expected is not None:
            client.set_registered_model_alias(model, PREVIOUS_CHAMPION, str(expected))
        client.set_registered_model_alias(model, CHAMPION, str(to_version))
        after = aliases(client, model)
    if after.get(CHAMPION) != to_version:
        raise PromotionError(f"{model}: champion alias reads v{after.get(CHAMPION)} after moving it to v{to_version}")
    return after


def model_version(client: Any, model: str, version: int) -> Any:
    """One registered version, or PromotionError naming the model and version."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model, str(version))
    except MlflowException as exc:
        raise PromotionError(f"{model} has no version {version}") from exc
