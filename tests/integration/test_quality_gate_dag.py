"""The gate inside the nightly DAG (``dag.test()``, real spark-submit): bad data stops the features Asset, fails the
gate without retries and mails the team through ``smtp_default`` at a real SMTP server on loopback."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from mlplatform.tasks import features_asset

from jobs.sources import generate as gen

REPO = Path(__file__).resolve().parents[2]
MODEL = "purchase_propensity"


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "feature_pipeline.py"))
    assert bag.import_errors == {}
    return bag.dags["feature_pipeline"]


def _asset_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    uri = features_asset(MODEL).uri
    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
        )


def test_corrupted_night_fails_the_gate_stops_the_asset_and_mails_the_team(airflow_db, smtp_server, settings) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    gen.generate(
        gen.GeneratorConfig(
            out=settings.landing_root,
            rows=4_000,
            customers=200,
            start=date(1997, 1, 1),
            days=5,
            seed=11,
            corrupt_rate=0.2,
            corrupt_kinds=("malformed", "negative_amount", "bad_quantity"),
        )
    )
    events_before = _asset_events()

    run = _dag().test(
        logical_date=datetime(1997, 1, 1, tzinfo=UTC), run_conf={"start_date": "1997-01-01", "end_date": "1997-01-05"}
    )

    assert run.state == DagRunState.FAILED
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert {k: v[0] for k, v in states.items()} == {
        "ingest": TaskInstanceState.SUCCESS,
        "clean": TaskInstanceState.SUCCESS,
        "features": TaskInstanceState.SUCCESS,
        "labels": TaskInstanceState.SUCCESS,
        "quality_gate": TaskInstanceState.FAILED,
    }
    assert states["quality_gate"][1] == 1, "a failed check is final: no retries"
    # Training and scoring are scheduled on the features Asset: no event, so they are not triggered.
    assert _asset_events() == events_before

    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert "data-quality gate FAILED for purchase_propensity 1997-01-01..1997-01-05" in mail["Subject"]
    assert "ml-team@localhost" in mail["X-Envelope-To"]
    body = smtp_server.html(mail)
    assert "quarantine_share" in body and "expect_column_values_to_be_between" in body
    assert "rows unexpected" in body and "max_value=0.05" in body  # observed vs expected
    report = settings.reports_root / "quality" / MODEL / "1997-01-01_1997-01-05" / "docs" / "index.html"
    assert report.exists() and report.as_uri() in body
