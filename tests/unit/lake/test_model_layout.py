"""A lake from the single-model layout is refused with the command that fixes it, and that command moves every old
table into the model's folder with its Delta log (no Spark: folders and logs only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.lake import layout
from jobs.spark import LEGACY_MODEL_TABLES, LegacyLakeError, require_model_layout, run_job

MODEL = "purchase_propensity"


def _old_table(lake: Path, relative: str) -> Path:
    table = lake / relative
    (table / "_delta_log").mkdir(parents=True)
    (table / "_delta_log" / "00000000000000000000.json").write_text(json.dumps({"commitInfo": {}}))
    (table / "part-0.parquet").write_bytes(b"rows")
    return table


def test_an_old_lake_is_refused_before_any_spark_starts_and_names_the_fix(settings) -> None:
    _old_table(Path(settings.lake_root), "gold/customer_features")
    with pytest.raises(LegacyLakeError, match=r"gold/customer_features.*python -m jobs\.lake\.layout --migrate"):
        require_model_layout(settings)
    with pytest.raises(LegacyLakeError):
        run_job("any", lambda spark, s: pytest.fail("a job ran on the old layout"))


def test_migrate_moves_every_old_table_and_the_training_sets_into_the_model_folder(settings, capsys) -> None:
    lake = Path(settings.lake_root)
    for old in LEGACY_MODEL_TABLES:
        _old_table(lake, old)
    (lake / "training_sets" / MODEL / "ts-1").mkdir(parents=True)
    _old_table(lake, "silver/transactions")  # shared source tables stay where they are

    assert layout.main(["--model", MODEL]) == 0 and "--migrate moves them" in capsys.readouterr().out
    assert (lake / "gold" / "customer_features" / "_delta_log").is_dir(), "without --migrate nothing moves"

    assert layout.main(["--model", MODEL, "--migrate"]) == 0
    model = Path(settings.model_root(MODEL))
    assert sorted(p.name for p in model.iterdir()) == sorted([*LEGACY_MODEL_TABLES.values(), "training_sets"])
    assert (model / "decisions" / "_delta_log" / "00000000000000000000.json").exists()
    assert (model / "training_sets" / "ts-1").is_dir() and not (lake / "training_sets").exists()
    assert (lake / "silver" / "transactions" / "_delta_log").is_dir()
    require_model_layout(settings)  # no longer refused
    assert "nothing to move" in (layout.main(["--model", MODEL]) == 0 and capsys.readouterr().out)


def test_migrate_never_overwrites_a_table_already_in_the_new_layout(settings) -> None:
    lake = Path(settings.lake_root)
    _old_table(lake, "gold/labels")
    _old_table(Path(settings.model_root(MODEL)), "labels")
    with pytest.raises(FileExistsError, match="labels"):
        layout.migrate(settings, MODEL)
    assert (lake / "gold" / "labels" / "part-0.parquet").exists()
