"""What every job's ``main(argv)`` shares: logging set up once, ``--model``, the ``--start/--end/--run-id`` window."""

from __future__ import annotations

import argparse
import logging
from datetime import date

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr in the platform's one format (a no-op when the process already configured logging)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def parser(module: str, description: str) -> argparse.ArgumentParser:
    """An argument parser whose usage line reads ``python -m <module>``."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description)


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model NAME``: a model file under include/models/ (or a YAML path); always required, never defaulted."""
    parser.add_argument("--model", required=True, help="model config name (include/models/<name>.yaml) or a path")


def add_window(parser: argparse.ArgumentParser) -> None:
    """``--start D [--end D] [--run-id ID]``: the inclusive window of dates a run owns, and who wrote it."""
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first date, YYYY-MM-DD")
    parser.add_argument("--end", type=date.fromisoformat, default=None, help="last date, inclusive; default: --start")
    parser.add_argument("--run-id", default="manual", help="the DAG run (lineage column of every row written)")


def add_date(parser: argparse.ArgumentParser) -> None:
    """``--date D [--run-id ID]``: one as-of date a run owns."""
    parser.add_argument("--date", type=date.fromisoformat, required=True, help="as-of date, YYYY-MM-DD")
    parser.add_argument("--run-id", default="manual", help="the DAG run (lineage column of every row written)")


def window(args: argparse.Namespace) -> tuple[date, date]:
    """The (start, end) of ``add_window``'s arguments, end defaulting to start."""
    return args.start, args.end or args.start
