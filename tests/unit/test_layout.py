"""The fixed project layout exists (top-level names, jobs' subpackages, tests in tiers that mirror the package),
and docker-compose.yaml parses (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
JOBS_SUBPACKAGES = ("sources", "lake", "features", "quality", "ml", "serving", "monitoring", "notify")
JOBS_LEAF_MODULES = ("settings", "config", "spark", "cli")
TIERS = ("unit", "spark", "dags", "integration", "deploy", "bench")  # tests/conftest.py marks tests by these


def test_fixed_layout_exists() -> None:
    for name in (
        "dags",
        "plugins",
        "jobs",
        "include",
        "tooling",
        "bench",
        "tests",
        "docs",
        "docker-compose.yaml",
        "requirements.txt",
        "README.md",
        "Makefile",
        ".ci/run",
    ):
        assert (REPO / name).exists(), name


def test_jobs_has_a_subpackage_per_stage_and_the_leaf_modules() -> None:
    for name in JOBS_SUBPACKAGES:
        assert (REPO / "jobs" / name / "__init__.py").is_file(), f"jobs/{name}/"
    for name in JOBS_LEAF_MODULES:
        assert (REPO / "jobs" / f"{name}.py").is_file(), f"jobs/{name}.py"


def test_every_test_lives_in_a_tier_that_mirrors_the_package() -> None:
    """tests/<tier>/...; under unit/ and spark/, a folder is a jobs subpackage (or the tooling, in unit/)."""
    mirrors = {"unit": {*JOBS_SUBPACKAGES, "tooling"}, "spark": set(JOBS_SUBPACKAGES)}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        parts = path.relative_to(REPO / "tests").parts
        assert len(parts) > 1 and parts[0] in TIERS, f"tests/{'/'.join(parts)} is in no tier folder {TIERS}"
        if len(parts) > 2 and parts[0] in mirrors:
            assert parts[1] in mirrors[parts[0]], f"tests/{'/'.join(parts)}: {parts[1]} mirrors no package"
            # A package, so unit/quality/test_gate.py and spark/quality/test_gate.py import under different names.
            assert (path.parent / "__init__.py").is_file(), f"tests/{'/'.join(parts[:-1])}/__init__.py"


def test_compose_file_parses_and_names_services() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    assert isinstance(compose["services"], dict) and compose["services"]


def test_requirements_are_pinned_exactly() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert "==" in line and not any(op in line for op in (">", "<", "~", "!")), f"{name}: {line}"
