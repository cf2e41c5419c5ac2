"""The nightly feature DAG end to end with Airflow's own ``dag.test()``: real spark-submit, real Delta tables."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from jobs.features import build
from jobs.lake import clean, ingest
from jobs.sources import cdnow

MODEL = "purchase_propensity"

REPO = Path(__file__).resolve().parents[2]


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "feature_pipeline.py"))
    assert bag.import_errors == {}
    return bag.dags["feature_pipeline"]


def test_backfill_then_nightly_run_end_to_end(airflow_db, spark, settings) -> None:
    from airflow.utils.state import DagRunState

    frame = cdnow.read_cdnow()
    cdnow.replay(settings.landing_root, date(1997, 1, 1), date(1997, 1, 4), frame)
    dag = _dag()

    backfill = dag.test(
        logical_date=datetime(1997, 1, 1, tzinfo=UTC),
        run_conf={"start_date": "1997-01-01", "end_date": "1997-01-03"},
    )
    assert backfill.state == DagRunState.SUCCESS
    gate = next(ti for ti in backfill.get_task_instances() if ti.task_id == "quality_gate")
    assert gate.xcom_pull(task_ids="quality_gate")["passed"] is True
    # A run triggered at 1997-01-05 00:00 processes the day that just ended: 1997-01-04.
    # A fresh DAG object: dag.test() leaves the previous run's conf in the params of the one it ran.
    nightly = _dag().test(
        logical_date=datetime(1997, 1, 5, tzinfo=UTC), run_conf={"start_date": None, "end_date": None}
    )
    assert nightly.state == DagRunState.SUCCESS

    landed = int((frame.order_date <= date(1997, 1, 4)).sum())
    read = lambda table: spark.read.format("delta").load(settings.table_path(*table))  # noqa: E731
    assert read(ingest.BRONZE_TABLE).count() == landed
    assert read(clean.SILVER_TABLE).count() == landed  # CDNOW has no bad lines
    model = lambda name: spark.read.format("delta").load(settings.model_table_path(MODEL, name))  # noqa: E731
    features = model(build.FEATURES_TABLE)
    per_day = {r.as_of_date: r["count"] for r in features.groupBy("as_of_date").count().collect()}
    seen = {d: frame[frame.order_date <= d].customer_id.nunique() for d in per_day}
    assert per_day == seen and sorted(per_day) == [date(1997, 1, d) for d in (1, 2, 3, 4)]
    assert features.select("customer_id", "as_of_date").distinct().count() == features.count()
    ops = {r.landing_date: r.run_id for r in read(clean.RECONCILIATION_TABLE).collect()}
    quality = model("data_quality")
    assert quality.where("NOT success").count() == 0
    assert {r.run_id for r in quality.select("run_id").distinct().collect()} == {backfill.run_id, nightly.run_id}
    assert ops[date(1997, 1, 4)] == nightly.run_id and ops[date(1997, 1, 1)] == backfill.run_id

    # The features Asset event carries the window, so the scoring DAG it triggers knows which date is new.
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from mlplatform.tasks import features_asset
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == features_asset("purchase_propensity").uri)
            .order_by(AssetEvent.id)
        ).all()
    windows = [{k: e[k] for k in ("start", "end")} for e in extras[-2:]]
    assert windows == [{"start": "1997-01-01", "end": "1997-01-03"}, {"start": "1997-01-04", "end": "1997-01-04"}]
    # Each event carries the gold versions its gate validated: what training may pin.
    assert extras[-1]["versions"]["features"] > extras[-2]["versions"]["features"]
