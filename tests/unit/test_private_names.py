"""No module reaches into another module's private names (``_name``): what is shared is public and documented."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = {"jobs", "mlplatform", "tooling", "bench", "tests"}
FOLDERS = ("jobs", "plugins", "tooling", "bench", "dags", "tests")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for every ``from <ours> import _x`` and ``<our module>._x`` in ``source``."""
    tree = ast.parse(source)
    modules: set[str] = set()  # local names bound to one of our modules (or to a name imported from one)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in OURS:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        base = node.value if isinstance(node, ast.Attribute) else None
        if isinstance(base, ast.Name) and base.id in modules and _private(node.attr):
            found.append((node.lineno, f"{base.id}.{node.attr}"))
    return sorted(found)


def test_the_check_sees_both_kinds_of_private_use() -> None:
    source = "from jobs.ml import train\nfrom jobs.lake.clean import _reconcile\nx = train._plots\ny = self._z\n"
    assert private_uses(source) == [(2, "from jobs.lake.clean import _reconcile"), (3, "train._plots")]


def test_no_module_uses_another_modules_private_names() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for folder in FOLDERS
        for path in sorted((REPO / folder).rglob("*.py"))
        for line, what in private_uses(path.read_text())
    ]
    assert offenders == [], "private names used across modules (make them public or keep them inside):\n" + "\n".join(
        offenders
    )
