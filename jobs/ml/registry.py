"""The MLflow model registry as the platform uses it: alias names, experiments, resolving and moving the champion."""

from __future__ import annotations

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


def move_champion(client: Any, model: str, to_version: int, expected: int | None) -> dict[str, int]:
    """Check-and-set: point ``champion`` at ``to_version`` and ``previous_champion`` at ``expected`` (the champion the
    decision was made against), only if the champion is still ``expected``; return the aliases after the move.

    The caller holds the model's promotion lease. The steps are ordered so that a crash between any two of them
    never leaves ``previous_champion == champion``: a ``previous_champion`` that already names the target is removed
    first, then ``champion`` moves, then ``previous_champion`` is set. Calling it again after a crash (the champion
    already at ``to_version``) only finishes the last step.
    """
    before = aliases(client, model)
    current = before.get(CHAMPION)
    if current not in (expected, to_version):
        raise StaleChampionError(
            f"{model}: champion is v{current} but the decision was made against v{expected}; "
            "the alias was moved outside this decision."
        )
    if current != to_version:
        if before.get(PREVIOUS_CHAMPION) == to_version:
            client.delete_registered_model_alias(model, PREVIOUS_CHAMPION)
        client.set_registered_model_alias(model, CHAMPION, str(to_version))
    if expected is not None and before.get(PREVIOUS_CHAMPION) != expected:
        client.set_registered_model_alias(model, PREVIOUS_CHAMPION, str(expected))
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
