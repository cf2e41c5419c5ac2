"""The train task fails unless MLflow holds a complete run: a crash mid-training, a kill, and an exit 0 that never
trained all fail it (real subprocesses, a real MLflow store)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from jobs.ml import train

MODEL = "purchase_propensity"


def _operator(script: str):
    from mlplatform.operators import LocalTrainingOperator

    return LocalTrainingOperator(task_id="train", model=MODEL, command=[sys.executable, "-c", textwrap.dedent(script)])


def _starts_a_run(then: str) -> str:
    """A fake training command that opens the parent MLflow run the way jobs.ml.train does, then ``then``."""
    return f"""
        import os, signal, mlflow
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        found = mlflow.get_experiment_by_name("{MODEL}")
        experiment_id = found.experiment_id if found else mlflow.create_experiment(
            "{MODEL}", artifact_location=os.environ["MLP_MLFLOW_ARTIFACT_ROOT"])
        mlflow.start_run(experiment_id=experiment_id,
                         tags={{"{train.TAG_ROLE}": "parent", "{train.TAG_DAG_RUN}": "run-1"}})
        mlflow.log_metric("val_roc_auc", 0.7)
        {then}
    """


def test_exit_zero_without_an_mlflow_run_fails_the_task(settings) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="training did not complete: no MLflow"):
        _operator("print('pretending to train')").execute({"run_id": "run-1"})


def test_a_killed_training_process_fails_the_task(settings) -> None:
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException, match="killed by SIGKILL"):
        _operator(_starts_a_run("os.kill(os.getpid(), signal.SIGKILL)")).execute({"run_id": "run-1"})


def test_a_crash_mid_training_fails_the_task(settings) -> None:
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException, match="exited with 1"):
        _operator(_starts_a_run("raise RuntimeError('CUDA error: out of memory')")).execute({"run_id": "run-1"})


def test_exit_zero_with_an_unfinished_run_fails_the_task(settings) -> None:
    """A process that dies without closing its run (os._exit) leaves it RUNNING: not a success."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="RUNNING, not FINISHED"):
        _operator(_starts_a_run("os._exit(0)")).execute({"run_id": "run-1"})


def test_a_finished_run_without_metrics_or_model_fails_the_task(settings) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="lacks metrics"):
        _operator(_starts_a_run("mlflow.end_run()")).execute({"run_id": "run-1"})
