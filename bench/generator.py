"""Benchmark the synthetic generator: throughput, peak memory at two sizes, and a streaming reconcile of the files.

Each size runs in its own child process so ``ru_maxrss`` is that run's own peak, not the larger of both.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from jobs.sources import generate as gen
from jobs.sources import landing


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _run_child(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = gen.GeneratorConfig(
        out=args.out,
        rows=args.rows,
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        corrupt_rate=args.corrupt_rate,
    )
    started = time.perf_counter()
    manifest = gen.generate(config)
    wall = time.perf_counter() - started
    result = {"rows": manifest["totals"]["rows"], "wall_s": wall, "peak_rss_mib": _peak_rss_mib()}
    print(json.dumps(result), flush=True)
    return 0


def _classify(positions: tuple[int, ...] | None, width: int, fields: list[str], day: date, dates: dict) -> str:
    """Outcome of one line under the clean-stage rules (independent of the generator's code)."""
    if positions is None:
        return landing.REASON_MISSING_COLUMN
    if len(fields) != width:
        return landing.REASON_MALFORMED
    _, customer_at, date_at, quantity_at, amount_at = positions
    customer = fields[customer_at]
    if not (customer.isascii() and customer.isdigit()) or int(customer) <= 0:
        return landing.REASON_BAD_CUSTOMER
    text = fields[date_at]
    if text not in dates:
        ok = len(text) == 10 and text[4] == "-" and text[7] == "-"
        try:
            dates[text] = date.fromisoformat(text) if ok else None
        except ValueError:
            dates[text] = None
    ordered = dates[text]
    if ordered is None:
        return landing.REASON_BAD_DATE
    if ordered > day:
        return landing.REASON_FUTURE_DATE
    try:
        quantity = int(fields[quantity_at])
    except ValueError:
        return landing.REASON_BAD_QUANTITY
    if not 1 <= quantity <= landing.MAX_QUANTITY:
        return landing.REASON_BAD_QUANTITY
    try:
        amount = float(fields[amount_at])
    except ValueError:
        return landing.REASON_BAD_AMOUNT
    if not 0 <= amount <= landing.MAX_AMOUNT:
        return landing.REASON_BAD_AMOUNT
    return "valid"


def reconcile(out: Path, manifest_path: Path) -> list[str]:
    """Re-read every file line by line and return the differences from the manifest (empty when it reconciles)."""
    manifest = json.loads(manifest_path.read_text())
    problems: list[str] = []
    dates: dict[str, date | None] = {}
    totals: Counter[str] = Counter()
    folders = sorted((out / landing.DATASET).glob("date=*"))
    if sorted(f.name.removeprefix("date=") for f in folders) != sorted(manifest["days"]):
        problems.append("day folders differ from the manifest's days")
    for folder in folders:
        day = date.fromisoformat(folder.name.removeprefix("date="))
        if not landing.is_complete(folder):
            problems.append(f"{folder.name}: no {landing.SUCCESS_MARKER}")
        counts: Counter[str] = Counter()
        seen: set[str] = set()
        for path in sorted(folder.glob("part-*.csv")):
            counts["files"] += 1
            with path.open("r", encoding="utf-8", newline="") as handle:
                first = handle.readline()
                if not first:
                    counts["empty_files"] += 1
                    continue
                header = first.rstrip("\n").split(",")
                positions = (
                    tuple(header.index(c) for c in landing.COLUMNS) if set(landing.COLUMNS) <= set(header) else None
                )
                for line in handle:
                    counts["rows"] += 1
                    fields = line.rstrip("\n").split(",")
                    outcome = _classify(positions, len(header), fields, day, dates)
                    if outcome != "valid":
                        counts[outcome] += 1
                    elif fields[positions[0]] in seen:  # type: ignore[index]
                        counts["duplicates"] += 1
                    else:
                        seen.add(fields[positions[0]])  # type: ignore[index]
                        counts["valid"] += 1
        expected = manifest["days"].get(day.isoformat())
        if expected is None:
            continue
        flat = {key: expected[key] for key in ("files", "empty_files", "rows", "valid", "duplicates")}
        flat.update(expected["quarantine"])
        for key, value in flat.items():
            if counts[key] != value:
                problems.append(f"{day}: {key} manifest={value} files={counts[key]}")
        totals.update(counts)
    expected_totals = manifest["totals"]
    for key in ("files", "empty_files", "rows", "valid", "duplicates"):
        if totals[key] != expected_totals[key]:
            problems.append(f"total {key}: manifest={expected_totals[key]} files={totals[key]}")
    for reason, value in expected_totals["quarantine"].items():
        if totals[reason] != value:
            problems.append(f"total {reason}: manifest={value} files={totals[reason]}")
    return problems


def _bench_one(rows: int, out: Path, args: argparse.Namespace) -> dict:
    from bench import harness  # here, not at the top: the measured child's memory must not include its imports

    options = ["--child", "--rows", str(rows), "--out", str(out), "--customers", str(args.customers)]
    options += ["--days", str(args.days), "--seed", str(args.seed), "--corrupt-rate", str(args.corrupt_rate)]
    result = harness.run_child("bench.generator", *options)
    print(
        f"generate rows={result['rows']:,} wall={result['wall_s']:.1f}s "
        f"rows/s={result['rows'] / result['wall_s']:,.0f} peak_rss={result['peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    started = time.perf_counter()
    problems = reconcile(out, out / landing.DATASET / f"_manifest_{args.seed}.json")
    result["reconcile_s"] = time.perf_counter() - started
    result["reconciled"] = not problems
    verdict = "OK: manifest matches the files exactly" if not problems else f"FAILED ({len(problems)} differences)"
    print(f"reconcile rows={rows:,} in {result['reconcile_s']:.1f}s: {verdict}", flush=True)
    for problem in problems[:20]:
        print(f"  {problem}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per measurement; non-zero when a manifest does not reconcile."""
    parser = argparse.ArgumentParser(prog="python -m bench.generator", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=1_000_000, help="smaller run first, for memory; 0 to skip")
    parser.add_argument("--out", type=Path, default=None, help="keep the output here instead of a temp folder")
    parser.add_argument("--customers", type=int, default=23_570)
    parser.add_argument("--days", type=int, default=546)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corrupt-rate", type=float, default=0.01)
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _run_child(args)

    root = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="bench-generator-"))
    sizes = [size for size in (args.small, args.rows) if size > 0]
    results = []
    try:
        for size in sizes:
            print(f"--- {size:,} rows, {args.customers:,} customers, {args.days} days", flush=True)
            results.append(_bench_one(size, root / f"rows={size}", args))
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    print("--- summary")
    for result in results:
        print(
            f"rows={result['rows']:>12,}  wall={result['wall_s']:7.1f}s  "
            f"rows/s={result['rows'] / result['wall_s']:>11,.0f}  peak_rss={result['peak_rss_mib']:6.0f} MiB  "
            f"reconciled={result['reconciled']}"
        )
    if len(results) == 2:
        row_ratio = results[1]["rows"] / results[0]["rows"]
        rss_ratio = results[1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
        print(f"rows x{row_ratio:.1f} -> peak RSS x{rss_ratio:.2f}")
    if not args.no_record:
        from bench import report

        for result in results:
            report.record(
                "generator",
                {"rows": result["rows"], "customers": args.customers, "days": args.days, "seed": args.seed},
                result,
                stages={
                    "generate": {"seconds": result["wall_s"], "peak_gib": result["peak_rss_mib"] / 1024},
                    "reconcile": {"seconds": result["reconcile_s"]},
                },
                ratios={"rows/s": round(result["rows"] / result["wall_s"])},
            )
    return 0 if all(result["reconciled"] for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
