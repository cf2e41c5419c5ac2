"""Every module under jobs/ imports in a fresh interpreter without loading Airflow, the plugins, the tooling, the
benchmarks or the DAGs: jobs runs in pods and under spark-submit, where none of them belong.

import-linter (``make lint``) checks the import statements; this runs them, so an import through a third-party
library or ``importlib`` counts too. One interpreter imports every module (one per module would take minutes); a
finder first on ``sys.meta_path`` sees each forbidden import the first time it happens and records the jobs module
whose code asked for it, so the failure names that module and line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("airflow", "mlplatform", "tooling", "bench", "dags")  # the jobs-airflow-free contract in pyproject.toml

PROBE = r"""
import importlib, json, sys, traceback

FORBIDDEN = set(sys.argv[1].split(","))
modules = sys.argv[2:]
current = None
found = []  # (forbidden module, the jobs module that imported it, where)


class Watch:
    '''Records who imports a forbidden module; finds nothing itself, so the import goes on as usual.'''

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            frame, importer, where = sys._getframe(1), current, "through a third-party import"
            while frame is not None:
                module = frame.f_globals.get("__name__") or ""
                if module == "jobs" or module.startswith("jobs."):
                    importer, where = module, f"{frame.f_code.co_filename}:{frame.f_lineno}"
                    break
                frame = frame.f_back
            found.append((name, importer, where))
        return None


sys.meta_path.insert(0, Watch)
errors = {}
for current in modules:
    try:
        importlib.import_module(current)
    except BaseException:
        errors[current] = traceback.format_exc(limit=3)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({"found": found, "errors": errors, "loaded": loaded}))
"""


def jobs_modules() -> list[str]:
    """Every module of the jobs package, from its files (nothing imported), packages before their modules."""
    names = []
    for path in sorted((REPO / "jobs").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


@pytest.fixture(scope="module")
def probe() -> dict:
    """Import every jobs module in one fresh interpreter (plugins/ on its path, as on an Airflow worker)."""
    code = f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'plugins')!r}]\n" + PROBE
    done = subprocess.run(
        [sys.executable, "-c", code, ",".join(FORBIDDEN), *jobs_modules()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_walk_finds_every_module_and_each_imports(probe: dict) -> None:
    names = jobs_modules()
    assert {"jobs", "jobs.settings", "jobs.ml", "jobs.ml.families.xgboost", "jobs.quality.gate"} <= set(names)
    assert probe["errors"] == {}, "jobs modules that fail to import in a fresh interpreter:\n" + "\n".join(
        f"{name}:\n{error}" for name, error in probe["errors"].items()
    )


def test_no_jobs_module_imports_airflow_plugins_tooling_bench_or_dags(probe: dict) -> None:
    offenders = sorted(
        {f"{importer} imports {name.split('.')[0]} ({where})" for name, importer, where in probe["found"]}
    )
    assert offenders == [], "jobs must stay importable without Airflow and the code around it:\n" + "\n".join(offenders)
    assert probe["loaded"] == []
