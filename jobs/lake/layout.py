"""Moving a lake from the single-model layout of older versions to a folder per model.

Older versions kept one model's tables in shared places (``gold/customer_features``, ``gold/labels``,
``gold/predictions``, ``ops/model_decisions``, ``ops/drift_*``, ``ops/data_quality``, ``training_sets/<model>``).
Every model now owns ``<lake>/models/<model>/``; jobs refuse to run on a lake that still has the old tables
(:func:`jobs.spark.require_model_layout`). ``--migrate --model NAME`` moves them, as folders: a Delta table's log
refers to its files by relative path, so a moved table keeps its whole history (time travel, the audit's rows).
Local lakes only; on an object store copy the folders to the same names (``aws s3 sync``), then delete the old ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

from jobs import cli
from jobs.config import load_model_config
from jobs.settings import Settings, load
from jobs.spark import LEGACY_MODEL_TABLES, legacy_tables, local_lake

log = logging.getLogger(__name__)


def migrate(settings: Settings, model: str) -> list[tuple[str, str]]:
    """Move the old layout's tables (and ``training_sets/<model>``) under ``models/<model>/``; return the moves.
    Refuses to overwrite: a table that already exists in the new place stops the migration before anything moves."""
    base = local_lake(settings)
    if base is None:
        raise ValueError(f"{settings.lake_root} is not a local lake: copy its folders as docs/operations.md says")
    target = Path(settings.model_root(model).removeprefix("file://"))
    moves = [
        (base / old, target / LEGACY_MODEL_TABLES[old]) for old in legacy_tables(settings) if old in LEGACY_MODEL_TABLES
    ]
    sets = base / "training_sets" / model
    if sets.is_dir():
        moves.append((sets, target / "training_sets"))
    taken = [str(new) for _, new in moves if new.exists()]
    if taken:
        raise FileExistsError(f"already in the new layout, not overwritten: {', '.join(taken)}")
    for old, new in moves:
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)
        log.info("moved %s -> %s", old, new)
    leftover = base / "training_sets"
    if leftover.is_dir() and not any(leftover.iterdir()):
        leftover.rmdir()
    return [(str(old), str(new)) for old, new in moves]


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--migrate --model NAME`` moves an old lake's model tables to ``models/NAME/``; without ``--migrate``
    it lists what would move."""
    parser = cli.parser("jobs.lake.layout", "move an older single-model lake to a folder per model")
    cli.add_model(parser)
    parser.add_argument("--migrate", action="store_true", help="move the tables (default: only list them)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    settings, config = load(), load_model_config(args.model)
    old = legacy_tables(settings)
    if not old:
        print(f"{settings.lake_root}: already one folder per model; nothing to move")
        return 0
    if not args.migrate:
        print(
            f"{settings.lake_root} holds the old layout's {', '.join(old)}; "
            f"--migrate moves them to models/{config.name}/"
        )
        return 0
    for old_path, new_path in migrate(settings, config.name):
        print(f"moved {old_path} -> {new_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
