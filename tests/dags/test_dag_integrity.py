"""DAG integrity: every DAG file imports cleanly and follows the house rules (tags, owner, retries, docs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pyspark", "torch", "xgboost", "mlflow", "evidently", "great_expectations", "sklearn", "delta")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_files_exist() -> None:
    assert DAG_FILES, "no DAG files found under dags/"


def test_dagbag_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(DAG_FILES), "one DAG per file"


def test_every_dag_follows_house_rules(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id, f"{dag_id}: dag_id must equal the file stem"
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id}: no doc_md"
        assert dag.schedule is not None or dag.timetable is not None, f"{dag_id}: no explicit schedule"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: default owner"
            assert task.retries >= 2, f"{dag_id}.{task.task_id}: retries {task.retries} < 2"


def test_dag_files_import_nothing_heavy() -> None:
    """A fresh interpreter imports every DAG file and must not load any heavy library at parse time."""
    code = f"""
import importlib.util, json, sys
for path in {[str(p) for p in DAG_FILES]!r}:
    spec = importlib.util.spec_from_file_location("dagfile_" + path.rsplit("/", 1)[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"DAG files load heavy modules at parse time: {loaded[:10]}"
