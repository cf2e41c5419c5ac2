"""The fixed project layout exists, and docker-compose.yaml parses (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_fixed_layout_exists() -> None:
    for name in (
        "dags",
        "plugins",
        "jobs",
        "include",
        "tests",
        "docker-compose.yaml",
        "requirements.txt",
        "README.md",
        "Makefile",
        ".ci/run",
    ):
        assert (REPO / name).exists(), name


def test_compose_file_parses_and_names_services() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    assert isinstance(compose["services"], dict) and compose["services"]


def test_requirements_are_pinned_exactly() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert "==" in line and not any(op in line for op in (">", "<", "~", "!")), f"{name}: {line}"
