"""Benchmark history: append every result to history.jsonl, then regenerate README.md and the log-log plots.

``history.jsonl`` is append-only, one JSON object per result: the benchmark, its parameters, the input rows, the
cost of each stage (``{"spark.backfill": {"seconds": 80.1, "peak_gib": 1.9}, ...}``), ratios, the full result,
a UTC timestamp, the git commit (and whether the tree was dirty) and the machine (cores, memory, OS, Python, Java
and the engines' versions). ``README.md`` (the newest result per benchmark and size, with its machine) and one
``<benchmark>.png`` per benchmark (seconds, and peak GiB where recorded, against rows; one line per stage; where
rows do not apply, bars of the newest result's stages) are derived from it and rewritten each time, so a run
never loses an earlier one.

Other bench modules record through ``record(name, params, result, rows=..., stages=..., ratios=...)``;
``python -m bench.report`` only regenerates the views from the history.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from jobs.settings import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "docs" / "benchmarks"
HISTORY = "history.jsonl"
PACKAGES = {
    "spark": "pyspark",
    "delta": "delta-spark",
    "duckdb": "duckdb",
    "evidently": "evidently",
    "xgboost": "xgboost",
    "torch": "torch",
}
MACHINE_COLUMNS = ("cores", "memory_gib", "os", "python", "java", *PACKAGES)


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def java_version() -> str | None:
    """The version of the ``java`` Spark would launch (JAVA_HOME first, then the PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else "java"
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "([^"]+)"', done.stderr + done.stdout)
    return match.group(1) if match else None


def machine() -> dict[str, Any]:
    """Cores, total memory, OS, Python, Java and the versions of the engines the benchmarks compare."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java_version(),
        **{key: _version(package) for key, package in PACKAGES.items()},
    }


def git_commit() -> dict[str, Any]:
    """HEAD's commit and whether tracked files differ from it (read-only: no index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.strip()

    # The results folder itself changes with every run; only the code decides whether the tree is dirty.
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs/benchmarks")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def record(
    name: str,
    params: dict[str, Any],
    result: dict[str, Any],
    *,
    rows: int | None = None,
    stages: dict[str, dict[str, float | None]] | None = None,
    ratios: dict[str, float] | None = None,
    root: Path = RESULTS_DIR,
) -> dict[str, Any]:
    """Append one result to ``root/history.jsonl`` and regenerate the README table and plots; return the entry."""
    if stages is None and "seconds" in result:
        stages = {"total": {"seconds": result["seconds"], "peak_gib": result.get("peak_gib")}}
    entry = {
        "benchmark": name,
        "params": params,
        "rows": rows if rows is not None else result.get("rows"),
        "stages": stages or {},
        "ratios": ratios or {},
        "result": result,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        **git_commit(),
        "machine": machine(),
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / HISTORY
    lead = "\n" if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n") else ""
    with path.open("a") as out:
        out.write(lead + json.dumps(entry, default=str) + "\n")
    render(root)
    return entry


def history(root: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every recorded result, oldest first."""
    path = root / HISTORY
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def newest(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest entry per (benchmark, rows), sorted by benchmark then rows."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in entries:
        latest[(entry["benchmark"], entry.get("rows") or 0)] = entry
    return [latest[key] for key in sorted(latest)]


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}" if value >= 0.1 or value == 0 else f"{value:.3g}"


def _cell(values: dict[str, float | None], digits: int = 1) -> str:
    return "<br>".join(f"{key} {_number(value, digits)}" for key, value in values.items() if value is not None)


def _results(count: int) -> str:
    return f"{count} result" + ("" if count == 1 else "s")


def _machines(entries: list[dict[str, Any]]) -> dict[str, str]:
    """A short label (A, B, ...) per distinct machine, in order of appearance."""
    labels: dict[str, str] = {}
    for entry in entries:
        key = json.dumps(entry["machine"], sort_keys=True)
        labels.setdefault(key, chr(ord("A") + len(labels)) if len(labels) < 26 else f"M{len(labels)}")
    return labels


def markdown(entries: list[dict[str, Any]]) -> str:
    """README.md: the newest result per (benchmark, rows), the machines they ran on, and the plots."""
    latest = newest(entries)
    labels = _machines(latest)
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `python -m bench.report` from [{HISTORY}]({HISTORY}) (append-only, {_results(len(entries))}); "
        "do not edit by hand. Newest result per benchmark and size; seconds are wall time per stage.",
        "",
        "| benchmark | rows | seconds | peak GiB | ratios | when (UTC) | commit | machine |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for entry in latest:
        stages = entry["stages"]
        commit = (entry.get("commit") or "")[:10] + (" (dirty)" if entry.get("dirty") else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    entry["benchmark"],
                    f"{entry['rows']:,}" if entry.get("rows") else "",
                    _cell({k: v.get("seconds") for k, v in stages.items()}, 2),
                    _cell({k: v.get("peak_gib") for k, v in stages.items()}, 2),
                    _cell(entry["ratios"], 2),
                    entry["timestamp"].replace("T", " ").removesuffix("+00:00"),
                    f"`{commit}`" if commit else "",
                    labels[json.dumps(entry["machine"], sort_keys=True)],
                ]
            )
            + " |"
        )
    lines += ["", "## Machines", "", "| machine | " + " | ".join(MACHINE_COLUMNS) + " |"]
    lines.append("|---|" + "---|" * len(MACHINE_COLUMNS))
    for key, label in labels.items():
        described = json.loads(key)
        lines.append(f"| {label} | " + " | ".join(str(described.get(c) or "") for c in MACHINE_COLUMNS) + " |")
    grown = growth(latest)
    if grown:
        lines += [
            "",
            "## Growth with rows",
            "",
            "Per stage measured at two or more sizes: the smallest and the largest, and the log-log slope between them "
            "(1 = linear; above 1.1 the stage grows faster than its input; below 0.9 most of its cost does not grow "
            "with the input rows: start-up, or output sized by something else, such as customers x dates for gold).",
            "",
            "| benchmark | stage | rows | seconds | slope | reading |",
            "|---|---|---|---|---:|---|",
        ]
        for item in grown:
            lines.append(
                f"| {item['benchmark']} | {item['stage']} | {item['rows'][0]:,} → {item['rows'][1]:,} | "
                f"{_number(item['seconds'][0], 2)} → {_number(item['seconds'][1], 2)} | {item['slope']:.2f} | "
                f"{item['reading']} |"
            )
    lines += ["", "## Cost against rows (log-log), or per stage where rows do not apply", ""]
    lines += [f"![{name}]({name}.png)" for name in sorted({e["benchmark"] for e in latest})]
    return "\n".join(lines) + "\n"


def growth(latest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (benchmark, stage) with seconds at two or more sizes: the log-log slope from the smallest to the largest."""
    out = []
    for name in sorted({e["benchmark"] for e in latest}):
        for stage, points in sorted(_series([e for e in latest if e["benchmark"] == name], "seconds").items()):
            (rows_a, secs_a), (rows_b, secs_b) = min(points), max(points)
            if rows_b <= rows_a:
                continue
            slope = math.log(secs_b / secs_a) / math.log(rows_b / rows_a)
            reading = "super-linear" if slope > 1.1 else "linear" if slope >= 0.9 else "sub-linear"
            out.append(
                {
                    "benchmark": name,
                    "stage": stage,
                    "rows": (rows_a, rows_b),
                    "seconds": (secs_a, secs_b),
                    "slope": round(slope, 2),
                    "reading": reading,
                }
            )
    return out


def _series(latest: list[dict[str, Any]], metric: str) -> dict[str, list[tuple[int, float]]]:
    """stage -> [(rows, value)] over the sizes where the stage recorded ``metric``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for entry in latest:
        for stage, cost in entry["stages"].items():
            value = cost.get(metric)
            if entry.get("rows") and value:
                out.setdefault(stage, []).append((entry["rows"], value))
    return out


def plot(entries: list[dict[str, Any]], root: Path = RESULTS_DIR) -> list[Path]:
    """One ``<benchmark>.png`` per benchmark: seconds (and peak GiB) against rows, log-log, a line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    latest = newest(entries)
    for name in sorted({e["benchmark"] for e in latest}):
        mine = [e for e in latest if e["benchmark"] == name]
        if not any(e.get("rows") for e in mine):
            written += _bars(mine[-1], root / f"{name}.png", plt)
            continue
        panels = [(metric, _series(mine, metric)) for metric in ("seconds", "peak_gib")]
        panels = [(metric, series) for metric, series in panels if series]
        if not panels:
            continue
        figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
        for axis, (metric, series) in zip(axes[0], panels, strict=True):
            for stage, points in sorted(series.items()):
                xs, ys = zip(*sorted(points), strict=True)
                axis.plot(xs, ys, marker="o", label=stage)
            axis.set(xscale="log", yscale="log", xlabel="rows", ylabel="peak GiB" if metric == "peak_gib" else metric)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize="small")
        figure.suptitle(name)
        figure.tight_layout()
        path = root / f"{name}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def _bars(entry: dict[str, Any], path: Path, plt: Any) -> list[Path]:
    """Where rows do not apply (parse times, a night's tasks): the newest result's seconds per stage, as bars."""
    stages = [(stage, cost["seconds"]) for stage, cost in entry["stages"].items() if cost.get("seconds") is not None]
    if not stages:
        return []
    figure, axis = plt.subplots(figsize=(7, 1 + 0.4 * len(stages)))
    names, seconds = zip(*reversed(stages), strict=True)
    axis.barh(names, seconds)
    axis.bar_label(axis.containers[0], fmt="%.3g", fontsize="small")
    axis.set(xlabel="seconds")
    axis.grid(True, axis="x", alpha=0.3)
    figure.suptitle(f"{entry['benchmark']} ({entry['timestamp'][:10]})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return [path]


def render(root: Path = RESULTS_DIR) -> None:
    """Rewrite README.md and the plots from the history."""
    entries = history(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(markdown(entries))
    plot(entries, root)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.report [--root DIR]`` regenerates README.md and the plots from history.jsonl."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=RESULTS_DIR, help="folder holding history.jsonl")
    args = parser.parse_args(argv)
    render(args.root)
    print(f"{_results(len(history(args.root)))} -> {args.root / 'README.md'} and plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
