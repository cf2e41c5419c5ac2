"""Champion/challenger decisions end to end on a real MLflow registry, real XGBoost models and a real Delta audit
table: a worse challenger is refused, a better one promoted, rollback restores the previous champion, dry_run moves
nothing, and a check-and-set against a champion moved outside the decision fails and is audited as failed."""

from __future__ import annotations

import json

import pytest

from jobs.ml import promotion
from jobs.ml.registry import CHAMPION, PromotionError, StaleChampionError, aliases, move_champion
from tests.registry_helpers import NOISE, STRONG, WEAK, register


def _with(config, **gates):
    return config.model_copy(update={"promotion": config.promotion.model_copy(update=gates)})


def _aliases(config) -> dict[str, int]:
    from mlflow import MlflowClient

    return aliases(MlflowClient(), config.name)


def test_worse_challenger_is_refused_better_one_promoted_and_rollback_restores(spark, registry, data) -> None:
    settings, config = registry
    config = _with(config, min_primary=0.55)
    weak = register(config, data["train"], WEAK)

    first = promotion.decide(spark, settings, config, kind="auto", dag_run_id="run-1", triggered_by="asset_triggered")
    assert first["action"] == "promoted" and first["champion"] is None, first["summary"]
    assert _aliases(config)["champion"] == weak

    worse = register(config, data["train"], NOISE)
    second = promotion.decide(spark, settings, config, kind="auto", dag_run_id="run-2")
    assert second["action"] == "rejected" and "min_lift" in second["failed_gates"]
    assert _aliases(config)["champion"] == weak, "a rejected challenger never moves the champion"
    assert _aliases(config)["challenger"] == worse

    better = register(config, data["train"], STRONG)
    third = promotion.decide(spark, settings, config, kind="auto", dag_run_id="run-3")
    assert third["action"] == "promoted" and third["failed_gates"] == []
    assert third["candidate"]["metrics"]["roc_auc"] > third["champion"]["metrics"]["roc_auc"] + 0.05
    assert _aliases(config) == {"challenger": better, "champion": better, "previous_champion": weak}

    back = promotion.decide(
        spark, settings, config, kind="rollback", reason="scores look off in the CRM", dag_run_id="run-4"
    )
    assert back["action"] == "rolled_back"
    assert _aliases(config) == {"challenger": better, "champion": weak, "previous_champion": better}

    audit = {r["dag_run_id"]: r for r in promotion.decisions(spark, settings, config.name)}
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
    version = register(config, data["train"], STRONG)
    dry = promotion.decide(spark, settings, _with(config, mode="dry_run"), kind="auto", dag_run_id="dry")
    assert dry["action"] == "dry_run" and dry["gates_passed"]
    assert "champion" not in _aliases(config)
    off = promotion.decide(spark, settings, _with(config, mode="disabled"), kind="auto", dag_run_id="off")
    assert off["action"] == "skipped" and "disabled" in off["reason"]
    assert _aliases(config) == {"challenger": version}
    actions = {r["dag_run_id"]: r["action"] for r in promotion.decisions(spark, settings, config.name)}
    assert actions == {"dry": "dry_run", "off": "skipped"}


def test_a_stale_check_and_set_fails_and_leaves_the_other_promotion_alone(spark, registry, data, monkeypatch) -> None:
    from mlflow import MlflowClient

    settings, config = registry
    config = _with(config, min_primary=0.55)
    first = register(config, data["train"], WEAK)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="a")
    other = register(config, data["train"], WEAK, rounds=20)
    challenger = register(config, data["train"], STRONG)

    # The pure check-and-set: the champion is v1, not the v2 this caller evaluated against.
    client = MlflowClient()
    with pytest.raises(StaleChampionError, match="moved outside this decision"):
        move_champion(client, config.name, challenger, other)
    assert _aliases(config)["champion"] == first

    # While this decision evaluates, someone else promotes `other`: the move must refuse, not overwrite.
    real = promotion.evaluation_set

    def concurrent(*args, **kwargs):
        client.set_registered_model_alias(config.name, CHAMPION, str(other))
        return real(*args, **kwargs)

    monkeypatch.setattr(promotion, "evaluation_set", concurrent)  # the name promotion calls
    with pytest.raises(StaleChampionError):
        promotion.decide(spark, settings, config, kind="auto", dag_run_id="b")
    assert _aliases(config)["champion"] == other
    phases = [(r["phase"], r["action"], r["applied"]) for r in promotion.read_audit(spark, settings, config.name)]
    assert phases[-2:] == [("decided", "promoted", False), ("failed", "promoted", False)], phases
    assert "moved outside" in promotion.decisions(spark, settings, config.name)[-1]["error"]
    # The decision is final: a retry of the same run reports the failure again and moves nothing.
    with pytest.raises(StaleChampionError):
        promotion.decide(spark, settings, config, kind="auto", dag_run_id="b")
    assert _aliases(config)["champion"] == other


def test_manual_promotion_is_gated_unless_forced_with_a_reason(spark, registry, data) -> None:
    settings, config = registry
    config = _with(config, min_primary=0.55)
    strong = register(config, data["train"], STRONG)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="auto")
    weak = register(config, data["train"], WEAK)

    refused = promotion.decide(spark, settings, config, kind="promote", version=weak, dag_run_id="m1")
    assert refused["action"] == "rejected" and _aliases(config)["champion"] == strong
    with pytest.raises(PromotionError, match="written reason"):
        promotion.decide(spark, settings, config, kind="promote", version=weak, force=True, reason="x")
    with pytest.raises(PromotionError, match="no version 99"):
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
    row = next(r for r in promotion.decisions(spark, settings, config.name) if r["dag_run_id"] == "m3")
    assert row["triggered_by"] == "manual by alice" and row["reason"] == "legal asked for the simpler model"


def test_rollback_without_a_previous_champion_says_so(spark, registry, data) -> None:
    settings, config = registry
    register(config, data["train"], STRONG)
    with pytest.raises(PromotionError, match="no previous_champion"):
        promotion.decide(spark, settings, config, kind="rollback", reason="just in case it breaks")
