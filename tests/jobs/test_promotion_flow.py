"""Champion/challenger decisions end to end on a real MLflow registry, real XGBoost models and a real Delta audit
table: a worse challenger is refused, a better one promoted, rollback restores the previous champion, dry_run moves
nothing, and a stale check-and-set fails."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta

import pytest

from jobs import promotion, trainset
from jobs.config import load_model_config
from jobs.features import feature_columns

pytestmark = pytest.mark.slow
KEY = "ts-test-evaluation"


def _frame(rows: int, seed: int, start: date):
    """Synthetic gold features with a label that recency and recent purchases really predict."""
    import numpy as np
    import pandas as pd

    config = load_model_config("purchase_propensity")
    rng = np.random.default_rng(seed)
    data = {c: rng.gamma(2.0, 20.0, rows) for c in feature_columns(config)}
    data["recency_days"] = rng.integers(0, 400, rows).astype(float)
    data["tenure_days"] = data["recency_days"] + rng.integers(0, 500, rows)
    data["txn_count_90d"] = rng.poisson(1.0, rows).astype(float)
    data["amount_sum_all"] = rng.gamma(1.5, 80.0, rows)
    logit = -0.5 - data["recency_days"] / 80.0 + 0.9 * data["txn_count_90d"] + 0.002 * data["amount_sum_all"]
    frame = pd.DataFrame(data)
    frame["label"] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int32")
    frame.insert(0, "customer_id", np.arange(rows).astype("int64"))
    frame.insert(1, "as_of_date", [start + timedelta(days=int(d)) for d in rng.integers(0, 50, rows)])
    return frame


@pytest.fixture(scope="module")
def data():
    return {"train": _frame(6000, 1, date(1997, 3, 1)), "holdout": _frame(6000, 2, date(1997, 9, 1))}


@pytest.fixture()
def registry(settings, data, tmp_path, monkeypatch):
    """A fresh MLflow store and a training set ``KEY`` whose holdout is the evaluation set."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLP_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    import mlflow

    from jobs.settings import load

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # the client library keeps the last URI it was given

    settings = load()
    config = load_model_config("purchase_propensity")
    path = trainset.set_path(settings, config, KEY)
    rows = {}
    for split in trainset.SPLITS:
        frame = data["holdout" if split == "holdout" else "train"]
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), f"{_mkdir(path, split)}/part-0.parquet")
        rows[split] = len(frame)
    manifest = {
        "key": KEY,
        "rows": rows,
        "checksum": "123",
        "versions": {"features": 7, "labels": 5},
        "split": {"holdout": ["1997-09-01", "1997-10-20"]},
    }
    (_mkdir(path, trainset.MANIFEST) / "part-00000.txt").write_text(json.dumps(manifest))
    return settings, config


def _mkdir(path: str, name: str):
    from pathlib import Path

    folder = Path(path) / (name if name == trainset.MANIFEST else f"split={name}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _register(config, frame, columns: list[str], rounds: int = 60) -> int:
    """Train XGBoost on ``columns`` of ``frame``, register it with the challenger alias; return the version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from jobs.train import train_xgboost

    small = config.model_copy(
        update={
            "training": config.training.model_copy(
                update={"xgboost": config.training.xgboost.model_copy(update={"n_estimators": rounds})}
            )
        }
    )
    model, _ = train_xgboost(frame, frame, columns, small, "cpu")
    mlflow.set_experiment(config.name)
    with mlflow.start_run():
        example = frame[columns].head(5)
        logged = mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=infer_signature(example, model.predict(None, example))
        )
    version = int(mlflow.register_model(logged.model_uri, config.name).version)
    client = MlflowClient()
    client.set_model_version_tag(config.name, str(version), "trainset", KEY)
    client.set_model_version_tag(config.name, str(version), "family", "xgboost")
    client.set_registered_model_alias(config.name, promotion.CHALLENGER, str(version))
    return version


WEAK = ["tenure_days"]  # knows a little: calibrated, but a low AUC
NOISE = ["mean_gap_days"]  # unrelated to the label in this data
STRONG = ["recency_days", "tenure_days", "txn_count_90d", "amount_sum_all"]


def _with(config, **gates):
    return config.model_copy(update={"promotion": config.promotion.model_copy(update=gates)})


def _aliases(config) -> dict[str, int]:
    from mlflow import MlflowClient

    return promotion.aliases(MlflowClient(), config.name)


def test_worse_challenger_is_refused_better_one_promoted_and_rollback_restores(spark, registry, data) -> None:
    settings, config = registry
    config = _with(config, min_primary=0.55)
    weak = _register(config, data["train"], WEAK)

    first = promotion.decide(spark, settings, config, kind="auto", dag_run_id="run-1", triggered_by="asset_triggered")
    assert first["action"] == "promoted" and first["champion"] is None, first["summary"]
    assert _aliases(config)["champion"] == weak

    worse = _register(config, data["train"], NOISE)
    second = promotion.decide(spark, settings, config, kind="auto", dag_run_id="run-2")
    assert second["action"] == "rejected" and "min_lift" in second["failed_gates"]
    assert _aliases(config)["champion"] == weak, "a rejected challenger never moves the champion"
    assert _aliases(config)["challenger"] == worse

    better = _register(config, data["train"], STRONG)
    third = promotion.decide(spark, settings, config, kind="auto", dag_run_id="run-3")
    assert third["action"] == "promoted" and third["failed_gates"] == []
    assert third["candidate"]["metrics"]["roc_auc"] > third["champion"]["metrics"]["roc_auc"] + 0.05
    assert _aliases(config) == {"challenger": better, "champion": better, "previous_champion": weak}

    back = promotion.decide(
        spark, settings, config, kind="rollback", reason="scores look off in the CRM", dag_run_id="run-4"
    )
    assert back["action"] == "rolled_back"
    assert _aliases(config) == {"challenger": better, "champion": weak, "previous_champion": better}

    audit = {r["dag_run_id"]: r for r in promotion.read_audit(spark, settings, config.name)}
    assert [audit[f"run-{i}"]["action"] for i in (1, 2, 3, 4)] == ["promoted", "rejected", "promoted", "rolled_back"]
    assert all(r["applied"] for r in audit.values())
    rejected = audit["run-2"]
    assert "min_lift" in rejected["failed_gates"].split(",")
    assert (rejected["champion_before"], rejected["champion_after"], rejected["candidate_version"]) == (
        weak,
        weak,
        worse,
    )
    gates = {g["name"]: g for g in json.loads(rejected["gates_json"])}
    assert not gates["min_lift"]["passed"] and gates["min_lift"]["observed"] < config.promotion.min_lift
    assert json.loads(rejected["champion_metrics_json"])["roc_auc"] > 0.55
    assert audit["run-1"]["triggered_by"] == "asset_triggered"
    assert audit["run-4"]["reason"] == "scores look off in the CRM"
    assert (audit["run-4"]["champion_before"], audit["run-4"]["champion_after"]) == (better, weak)

    # The decision is on the versions too, and the evaluation (report included) is an MLflow run.
    from mlflow import MlflowClient

    client = MlflowClient()
    tags = client.get_model_version(config.name, str(worse)).tags
    assert tags["mlp.decision"] == "rejected" and "min_lift" in tags["mlp.failed_gates"]
    assert client.get_model_version(config.name, str(weak)).tags["mlp.decision"] == "rolled_back"
    replaced = client.get_model_version(config.name, str(better)).tags
    assert replaced["mlp.decision"] == "promoted" and replaced["mlp.replaced_by"] == f"v{weak} (rolled_back)"
    run = client.get_run(third["evaluation_run_id"])
    assert run.data.metrics["candidate_roc_auc"] == pytest.approx(third["candidate"]["metrics"]["roc_auc"])
    assert "evaluation/index.html" in {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    report = (settings.reports_root / "evaluation" / config.name / "run-3" / "index.html").read_text()
    assert "data:image/png;base64," in report and "max_slice_drop" in report and "tenure_days&gt;=365" in report


def test_dry_run_and_disabled_move_nothing_but_are_audited(spark, registry, data) -> None:
    settings, config = registry
    version = _register(config, data["train"], STRONG)
    dry = promotion.decide(spark, settings, _with(config, mode="dry_run"), kind="auto", dag_run_id="dry")
    assert dry["action"] == "dry_run" and dry["gates_passed"]
    assert "champion" not in _aliases(config)
    off = promotion.decide(spark, settings, _with(config, mode="disabled"), kind="auto", dag_run_id="off")
    assert off["action"] == "skipped" and "disabled" in off["reason"]
    assert _aliases(config) == {"challenger": version}
    actions = {r["dag_run_id"]: r["action"] for r in promotion.read_audit(spark, settings, config.name)}
    assert actions == {"dry": "dry_run", "off": "skipped"}


def test_a_stale_check_and_set_fails_and_leaves_the_other_promotion_alone(spark, registry, data, monkeypatch) -> None:
    from mlflow import MlflowClient

    settings, config = registry
    config = _with(config, min_primary=0.55)
    first = _register(config, data["train"], WEAK)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="a")
    other = _register(config, data["train"], WEAK, rounds=20)
    challenger = _register(config, data["train"], STRONG)

    # The pure check-and-set: the champion is v1, not the v2 this caller evaluated against.
    client = MlflowClient()
    with pytest.raises(promotion.StaleChampionError, match="another promotion or rollback"):
        promotion.move_champion(client, config.name, challenger, other, settings.home / "locks")
    assert _aliases(config)["champion"] == first

    # While this decision evaluates, someone else promotes `other`: the move must refuse, not overwrite.
    from jobs import evaluation

    real = evaluation.evaluation_set

    def concurrent(*args, **kwargs):
        client.set_registered_model_alias(config.name, promotion.CHAMPION, str(other))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluation_set", concurrent)
    with pytest.raises(promotion.StaleChampionError):
        promotion.decide(spark, settings, config, kind="auto", dag_run_id="b")
    assert _aliases(config)["champion"] == other
    row = next(r for r in promotion.read_audit(spark, settings, config.name) if r["dag_run_id"] == "b")
    assert row["action"] == "promoted" and row["applied"] is False, "the audit shows a decision that did not apply"


def test_manual_promotion_is_gated_unless_forced_with_a_reason(spark, registry, data) -> None:
    settings, config = registry
    config = _with(config, min_primary=0.55)
    strong = _register(config, data["train"], STRONG)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="auto")
    weak = _register(config, data["train"], WEAK)

    refused = promotion.decide(spark, settings, config, kind="promote", version=weak, dag_run_id="m1")
    assert refused["action"] == "rejected" and _aliases(config)["champion"] == strong
    with pytest.raises(promotion.PromotionError, match="written reason"):
        promotion.decide(spark, settings, config, kind="promote", version=weak, force=True, reason="x")
    with pytest.raises(promotion.PromotionError, match="no version 99"):
        promotion.decide(spark, settings, config, kind="promote", version=99, dag_run_id="m2")
    forced = promotion.decide(
        spark,
        settings,
        config,
        kind="promote",
        version=weak,
        force=True,
        reason="legal asked for the simpler model",
        triggered_by="manual by alice",
        dag_run_id="m3",
    )
    assert forced["action"] == "forced" and forced["failed_gates"]
    assert _aliases(config)["champion"] == weak and _aliases(config)["previous_champion"] == strong
    row = next(r for r in promotion.read_audit(spark, settings, config.name) if r["dag_run_id"] == "m3")
    assert row["triggered_by"] == "manual by alice" and row["reason"] == "legal asked for the simpler model"


def test_rollback_without_a_previous_champion_says_so(spark, registry, data) -> None:
    settings, config = registry
    _register(config, data["train"], STRONG)
    with pytest.raises(promotion.PromotionError, match="no previous_champion"):
        promotion.decide(spark, settings, config, kind="rollback", reason="just in case it breaks")
