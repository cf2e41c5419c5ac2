"""Promotion under retries, crashes and concurrency, on a real MLflow registry, real XGBoost models and the real
Delta audit: Airflow retries every promotion task, so a retry must finish the decision its first try recorded.

A retry is simulated the way it happens: a step after the alias move fails (MLflow tagging, the audit write, the
second alias), then the same call runs again with the same DAG run id.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from jobs.ml import audit, promotion, trainset
from jobs.ml.registry import CHAMPION, PREVIOUS_CHAMPION, PromotionError, aliases
from tests.registry_helpers import KEY, NOISE, STRONG, WEAK, register

# Gates the synthetic models can pass on their own (the registry fixture in conftest.py applies them).
PROMOTION_GATES = {"min_primary": 0.55}


def _aliases(config) -> dict[str, int]:
    from mlflow import MlflowClient

    return aliases(MlflowClient(), config.name)


def _fail_once(monkeypatch, target, name: str, when=lambda *a, **k: True) -> list:
    """Make ``target.name`` raise the first time ``when`` holds (a crash in that step), then behave."""
    real, calls = getattr(target, name), []

    def flaky(*args, **kwargs):
        if not calls and when(*args, **kwargs):
            calls.append(args)
            raise RuntimeError(f"injected failure in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, flaky)
    return calls


def _two_champions(spark, settings, config, data) -> tuple[int, int]:
    """v_weak promoted at go-live, then v_strong promoted over it: champion strong, previous_champion weak."""
    weak = register(config, data["train"], WEAK)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="golive")
    strong = register(config, data["train"], STRONG)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="better")
    assert _aliases(config) == {"challenger": strong, CHAMPION: strong, PREVIOUS_CHAMPION: weak}
    return weak, strong


def _phases(spark, settings, config, run_id: str) -> list[str]:
    return [r["phase"] for r in promotion.read_audit(spark, settings, config.name) if r["dag_run_id"] == run_id]


def test_a_rollback_retried_after_its_alias_move_does_not_move_the_champion_back(
    spark, registry, data, monkeypatch
) -> None:
    settings, config = registry
    weak, strong = _two_champions(spark, settings, config, data)
    failed = _fail_once(monkeypatch, promotion, "_tag_versions")  # MLflow fails after the aliases moved
    with pytest.raises(RuntimeError, match="injected"):
        promotion.decide(spark, settings, config, kind="rollback", reason="CRM says scores are off", dag_run_id="rb")
    assert failed and _aliases(config)[CHAMPION] == weak

    retried = promotion.decide(
        spark, settings, config, kind="rollback", reason="CRM says scores are off", dag_run_id="rb"
    )
    assert retried["action"] == "rolled_back" and retried["champion_after"] == weak
    assert _aliases(config) == {"challenger": strong, CHAMPION: weak, PREVIOUS_CHAMPION: strong}
    assert _phases(spark, settings, config, "rb") == ["decided", "applied"]
    from mlflow import MlflowClient

    assert MlflowClient().get_model_version(config.name, str(weak)).tags["mlp.decision"] == "rolled_back"


def test_an_auto_promotion_retried_after_the_move_stays_promoted_not_skipped(
    spark, registry, data, monkeypatch
) -> None:
    settings, config = registry
    version = register(config, data["train"], STRONG)
    _fail_once(monkeypatch, promotion, "_tag_versions")
    with pytest.raises(RuntimeError, match="injected"):
        promotion.decide(spark, settings, config, kind="auto", dag_run_id="t1")
    assert _aliases(config)[CHAMPION] == version

    retried = promotion.decide(spark, settings, config, kind="auto", dag_run_id="t1")
    assert retried["action"] == "promoted" and retried["applied"], retried["summary"]
    (outcome,) = promotion.decisions(spark, settings, config.name)
    assert (outcome["action"], outcome["phase"], outcome["champion_after"]) == ("promoted", "applied", version)
    from mlflow import MlflowClient

    assert MlflowClient().get_model_version(config.name, str(version)).tags["mlp.decision"] == "promoted"
    summary = json.loads((settings.reports_root / "evaluation" / config.name / "t1" / "decision.json").read_text())
    assert (summary["action"], summary["phase"]) == ("promoted", "applied")


def test_a_manual_promotion_retried_after_the_move_says_it_promoted(spark, registry, data, monkeypatch) -> None:
    settings, config = registry
    register(config, data["train"], WEAK)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="golive")
    strong = register(config, data["train"], STRONG)
    _fail_once(monkeypatch, promotion, "_tag_versions")
    with pytest.raises(RuntimeError, match="injected"):
        promotion.decide(spark, settings, config, kind="promote", version=strong, dag_run_id="m1")

    retried = promotion.decide(spark, settings, config, kind="promote", version=strong, dag_run_id="m1")
    assert retried["action"] == "promoted" and "no alias moved" not in retried["summary"]
    assert _aliases(config)[CHAMPION] == strong
    assert _phases(spark, settings, config, "m1") == ["decided", "applied"]


def test_a_crash_after_the_move_before_it_was_recorded_is_recorded_by_the_retry(
    spark, registry, data, monkeypatch
) -> None:
    settings, config = registry
    version = register(config, data["train"], STRONG)
    _fail_once(monkeypatch, audit, "append", when=lambda spark, settings, record: record["phase"] == "applied")
    with pytest.raises(RuntimeError, match="injected"):
        promotion.decide(spark, settings, config, kind="auto", dag_run_id="t2")
    assert _aliases(config)[CHAMPION] == version and _phases(spark, settings, config, "t2") == ["decided"]

    retried = promotion.decide(spark, settings, config, kind="auto", dag_run_id="t2")
    assert retried["action"] == "promoted"
    assert _phases(spark, settings, config, "t2") == ["decided", "applied"]


def test_the_audit_is_append_only_one_row_per_phase_and_survives_optimize_and_vacuum(spark, registry, data) -> None:
    from delta.tables import DeltaTable

    settings, config = registry
    _two_champions(spark, settings, config, data)
    register(config, data["train"], NOISE)
    promotion.decide(spark, settings, config, kind="auto", dag_run_id="worse")  # rejected
    rows = promotion.read_audit(spark, settings, config.name)
    assert [(r["dag_run_id"], r["phase"]) for r in rows] == [
        ("golive", "decided"),
        ("golive", "applied"),
        ("better", "decided"),
        ("better", "applied"),
        ("worse", "decided"),
        ("worse", "applied"),
    ]
    assert rows[-1]["action"] == "rejected" and json.loads(rows[-1]["decision_json"])["decision_id"]

    table = DeltaTable.forPath(spark, audit.path(settings, config.name))
    assert table.detail().first()["properties"]["delta.appendOnly"] == "true"
    with pytest.raises(Exception, match="DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        table.delete("action = 'rejected'")
    with pytest.raises(Exception, match="DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        table.update("action = 'rejected'", {"action": "'promoted'"})
    table.optimize().executeCompaction()
    table.vacuum(0)  # the tests' Spark allows retention 0: the harshest VACUUM there is
    assert promotion.read_audit(spark, settings, config.name) == rows


def test_a_crash_between_the_two_alias_moves_leaves_a_rollback_possible(spark, registry, data) -> None:
    from mlflow import MlflowClient

    class CrashOnSecondAlias(MlflowClient):
        """The process dies right after the first of the two alias sets."""

        sets = 0

        def set_registered_model_alias(self, *args, **kwargs):
            type(self).sets += 1
            if type(self).sets == 2:
                raise RuntimeError("injected crash between the alias moves")
            return super().set_registered_model_alias(*args, **kwargs)

    settings, config = registry
    weak, strong = _two_champions(spark, settings, config, data)
    with pytest.raises(RuntimeError, match="injected crash"):
        promotion.decide(
            spark,
            settings,
            config,
            kind="rollback",
            reason="bad scores in the CRM export",
            dag_run_id="rb1",
            client=CrashOnSecondAlias(),
        )
    crashed = _aliases(config)
    assert crashed.get(PREVIOUS_CHAMPION) != crashed[CHAMPION], crashed
    assert crashed[CHAMPION] == weak

    # Nobody retries rb1; the next rollback still knows where to go (the audit), and closes rb1 as applied.
    again = promotion.decide(
        spark, settings, config, kind="rollback", reason="the rollback was wrong after all", dag_run_id="rb2"
    )
    assert again["champion_before"] == weak and again["champion_after"] == strong
    assert _aliases(config) == {"challenger": strong, CHAMPION: strong, PREVIOUS_CHAMPION: weak}
    assert _phases(spark, settings, config, "rb1") == ["decided", "applied"]


def test_rollback_to_a_version_that_was_never_champion_needs_force_and_is_audited_forced(spark, registry, data) -> None:
    settings, config = registry
    weak, strong = _two_champions(spark, settings, config, data)
    never = register(config, data["train"], NOISE)
    with pytest.raises(PromotionError, match="never champion"):
        promotion.decide(
            spark, settings, config, kind="rollback", version=never, reason="try the noise one", dag_run_id="r1"
        )
    assert _aliases(config)[CHAMPION] == strong
    to_weak = promotion.decide(
        spark, settings, config, kind="rollback", version=weak, reason="back to the go-live model", dag_run_id="r2"
    )
    assert to_weak["action"] == "rolled_back" and not to_weak["forced"]
    forced = promotion.decide(
        spark,
        settings,
        config,
        kind="rollback",
        version=never,
        force=True,
        reason="incident 42: the only version without the leaky feature",
        dag_run_id="r3",
    )
    assert forced["forced"] and "FORCED" in forced["summary"] and _aliases(config)[CHAMPION] == never
    outcome = {r["dag_run_id"]: r for r in promotion.decisions(spark, settings, config.name)}
    assert outcome["r3"]["forced"] is True and outcome["r3"]["applied"] and outcome["r2"]["forced"] is False


def test_two_decisions_at_the_same_moment_are_serialised_and_both_audited_complete(spark, registry, data) -> None:
    settings, config = registry
    weak, strong = _two_champions(spark, settings, config, data)
    challenger = register(config, data["train"], STRONG, rounds=120)
    start, outcomes, errors = threading.Barrier(2), {}, []

    def run(name: str, **kwargs) -> None:
        start.wait()
        try:
            outcomes[name] = promotion.decide(spark, settings, config, dag_run_id=name, **kwargs)
        except Exception as exc:  # the assertion below names it
            errors.append((name, exc))

    threads = [
        threading.Thread(target=run, args=("auto",), kwargs={"kind": "auto"}),
        threading.Thread(target=run, args=("rollback",), kwargs={"kind": "rollback", "reason": "CRM complaint 17"}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert errors == [] and set(outcomes) == {"auto", "rollback"}

    rows = [r for r in promotion.read_audit(spark, settings, config.name) if r["dag_run_id"] in outcomes]
    order = [r["dag_run_id"] for r in rows]
    first, second = order[0], order[-1]
    assert order == [first, first, second, second], "the whole decision is serialised, audit writes included"
    assert [r["phase"] for r in rows] == ["decided", "applied", "decided", "applied"]
    # The later decision was made against the champion the earlier one left, not the one both saw at the start.
    assert outcomes[second]["champion_before"] == outcomes[first]["champion_after"]
    assert _aliases(config)[CHAMPION] == outcomes[second]["champion_after"]
    assert {strong, weak, challenger} >= {outcomes[first]["champion_after"], outcomes[second]["champion_after"]}


def test_the_evaluation_set_is_the_most_recent_matured_holdout_not_the_newest_versions(spark, registry, data) -> None:
    from mlflow import MlflowClient

    settings, config = registry
    register(config, data["train"], STRONG)  # names KEY: holdout 1997-09-01 .. 1997-10-20
    backfill = register(config, data["train"], WEAK)
    older = "ts-test-backfill"
    folder = Path(trainset.set_path(settings, config, older)) / trainset.MANIFEST
    folder.mkdir(parents=True)
    holdout = ["1997-05-01", "1997-06-01"]  # older than KEY's, though the version naming it is newer
    manifest = {"key": older, "rows": {}, "checksum": "1", "versions": {}, "split": {"holdout": holdout}}
    (folder / "part-00000.txt").write_text(json.dumps(manifest))
    MlflowClient().set_model_version_tag(config.name, str(backfill), "trainset", older)

    assert promotion.latest_trainset(settings, config, MlflowClient()) == KEY
