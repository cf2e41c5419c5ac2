"""Synthetic generator: determinism, the landing contract, exact manifest reconciliation, drift and the process."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from jobs.sources import generate as gen
from jobs.sources import landing

START = date(1997, 1, 1)


def _config(out: Path, **overrides: object) -> gen.GeneratorConfig:
    base: dict[str, object] = {"out": out, "rows": 6_000, "customers": 600, "start": START, "days": 60, "seed": 7}
    base.update(overrides)
    return gen.GeneratorConfig(**base)  # type: ignore[arg-type]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith("_manifest")
    }


def _classify(header: list[str], line: str, day: date) -> str:
    """Outcome of one data line under the clean-stage rules, written independently of the generator."""
    if not set(landing.COLUMNS) <= set(header):
        return landing.REASON_MISSING_COLUMN
    fields = line.split(",")
    if len(fields) != len(header):
        return landing.REASON_MALFORMED
    record = dict(zip(header, fields, strict=True))
    customer = record["customer_id"].strip()
    if not re.fullmatch(r"[0-9]+", customer) or int(customer) <= 0:
        return landing.REASON_BAD_CUSTOMER
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["order_date"]):
        return landing.REASON_BAD_DATE
    try:
        ordered = date.fromisoformat(record["order_date"])
    except ValueError:
        return landing.REASON_BAD_DATE
    if ordered > day:
        return landing.REASON_FUTURE_DATE
    if not re.fullmatch(r"-?\d+", record["quantity"]) or not 1 <= int(record["quantity"]) <= landing.MAX_QUANTITY:
        return landing.REASON_BAD_QUANTITY
    try:
        amount = float(record["amount"])
    except ValueError:
        return landing.REASON_BAD_AMOUNT
    if not 0 <= amount <= landing.MAX_AMOUNT:
        return landing.REASON_BAD_AMOUNT
    return "valid"


def _parse_landing(root: Path) -> tuple[dict[str, dict], list[tuple[date, list[str]]]]:
    """Per-day counts and the valid records, recomputed from the files alone."""
    days: dict[str, dict] = {}
    valid_rows: list[tuple[date, list[str]]] = []
    for folder in sorted((root / landing.DATASET).glob("date=*")):
        day = date.fromisoformat(folder.name.removeprefix("date="))
        counts = {"files": 0, "empty_files": 0, "rows": 0, "valid": 0, "duplicates": 0, "quarantine": Counter()}
        seen: dict[str, str] = {}
        for path in sorted(folder.glob("part-*.csv")):
            counts["files"] += 1
            data = path.read_bytes()
            if not data:
                counts["empty_files"] += 1
                continue
            text = data.decode("utf-8")
            assert text.endswith("\n"), path
            header, *lines = text[:-1].split("\n")
            columns = header.split(",")
            for line in lines:
                counts["rows"] += 1
                outcome = _classify(columns, line, day)
                if outcome != "valid":
                    counts["quarantine"][outcome] += 1
                    continue
                tid = line.split(",")[0]
                if tid in seen:
                    assert seen[tid] == line, "a re-used transaction id must be an exact re-send"
                    counts["duplicates"] += 1
                else:
                    seen[tid] = line
                    counts["valid"] += 1
                    valid_rows.append((day, line.split(",")))
        days[day.isoformat()] = counts
    return days, valid_rows


def _normalise(counts: dict) -> dict:
    quarantine = {reason: n for reason, n in counts["quarantine"].items() if n}
    return {**{key: counts[key] for key in ("files", "empty_files", "rows", "valid", "duplicates")}, "q": quarantine}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[gen.GeneratorConfig, dict]:
    config = _config(tmp_path_factory.mktemp("clean"))
    return config, gen.generate(config)


@pytest.fixture(scope="module")
def corrupt_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[gen.GeneratorConfig, dict]:
    config = _config(tmp_path_factory.mktemp("corrupt"), corrupt_rate=0.1, rows_per_file=40)
    return config, gen.generate(config)


def test_same_seed_gives_byte_identical_files_and_reruns_overwrite(tmp_path: Path) -> None:
    first = _config(tmp_path / "a", corrupt_rate=0.05, rows=3_000, customers=300, days=30)
    gen.generate(first)
    second = gen.generate(replace(first, out=tmp_path / "b"))
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    before = _tree_digest(tmp_path / "a")
    again = gen.generate(first)
    assert _tree_digest(tmp_path / "a") == before
    assert again["days"] == second["days"] and again["totals"] == second["totals"]
    other = replace(first, out=tmp_path / "c", seed=8)
    gen.generate(other)
    assert _tree_digest(tmp_path / "c") != before


def test_clean_run_writes_only_valid_rows_with_unique_ids(clean_run: tuple[gen.GeneratorConfig, dict]) -> None:
    config, manifest = clean_run
    folders = sorted((config.out / landing.DATASET).glob("date=*"))
    assert [f.name for f in folders] == [f"date={START + timedelta(days=i)}" for i in range(config.days)]
    assert all(landing.is_complete(folder) for folder in folders)
    days, valid = _parse_landing(config.out)
    assert len(valid) == config.rows == manifest["totals"]["rows"] == manifest["totals"]["valid"]
    assert sum(c["duplicates"] + sum(c["quarantine"].values()) for c in days.values()) == 0
    ids = [record[0] for _, record in valid]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"g-{config.seed}-\d+", tid) for tid in ids)
    for day, (_, customer, ordered, quantity, amount) in valid:
        assert ordered == day.isoformat()
        assert int(customer) >= 1 and 1 <= int(quantity) <= landing.MAX_QUANTITY
        assert re.fullmatch(r"\d+\.\d\d", amount) and 0 < float(amount) <= landing.MAX_AMOUNT
    header = (folders[0] / "part-00000.csv").read_text().splitlines()[0]
    assert header == landing.HEADER


def test_manifest_reconciles_exactly_with_corrupted_files(corrupt_run: tuple[gen.GeneratorConfig, dict]) -> None:
    config, manifest = corrupt_run
    parsed, _ = _parse_landing(config.out)
    assert sorted(parsed) == sorted(manifest["days"])
    for day, counts in manifest["days"].items():
        assert _normalise(parsed[day]) == _normalise(counts), day
        assert counts["rows"] == counts["valid"] + counts["duplicates"] + sum(counts["quarantine"].values())
    totals = manifest["totals"]
    assert totals["rows"] == config.rows
    assert totals["rows"] == totals["valid"] + totals["duplicates"] + sum(totals["quarantine"].values())
    assert all(n > 0 for n in manifest["injected"].values()), manifest["injected"]
    assert set(totals["quarantine"]) == set(landing.REASONS) and all(totals["quarantine"].values())
    # About corrupt_rate of the lines are bad; every kind maps to exactly one outcome.
    bad = totals["rows"] - totals["valid"]
    assert 0.07 * config.rows < bad < 0.13 * config.rows
    assert manifest["outcomes"] == gen.CORRUPTION_OUTCOMES
    saved = json.loads(config.manifest_path.read_text())
    assert saved["totals"] == totals and saved["days"] == manifest["days"]


def test_rerun_with_fewer_files_removes_stale_parts(tmp_path: Path) -> None:
    config = _config(tmp_path, rows_per_file=25, corrupt_rate=0.1, rows=3_000, customers=300, days=30)
    gen.generate(config)
    manifest = gen.generate(replace(config, rows_per_file=1_000_000))
    parsed, _ = _parse_landing(tmp_path)
    for day, counts in manifest["days"].items():
        assert _normalise(parsed[day]) == _normalise(counts), day


def test_customers_buy_first_on_acquisition_repeat_and_churn(clean_run: tuple[gen.GeneratorConfig, dict]) -> None:
    config, manifest = clean_run
    customers = gen.simulate_customers(config)
    _, valid = _parse_landing(config.out)
    first: dict[int, date] = {}
    purchases: Counter[int] = Counter()
    for day, record in valid:
        customer = int(record[1])
        purchases[customer] += 1
        first[customer] = min(first.get(customer, day), day)
    acquired_day = np.floor(customers.acquired).astype(int)
    # Every customer makes the acquisition purchase and never buys before it.
    assert set(first) == set(range(1, config.customers + 1))
    for customer, day in first.items():
        assert (day - START).days == acquired_day[customer - 1]
    counts = np.array([purchases[c] for c in range(1, config.customers + 1)])
    assert np.count_nonzero(counts >= 2) > 0.3 * config.customers
    assert manifest["stats"]["repeat_customers"] == np.count_nonzero(counts >= 2)
    # Dropout: nobody buys past the lifetime, and many customers have used it up by the end.
    assert np.all(counts <= customers.lifetime)
    assert np.count_nonzero(counts == customers.lifetime) > 0.1 * config.customers
    # Acquisition runs over the whole period, front-loaded.
    assert acquired_day.min() == 0 and acquired_day.max() >= config.days * 0.8
    assert np.count_nonzero(acquired_day < config.days / 2) > np.count_nonzero(acquired_day >= config.days / 2)


def _before_after(out: Path, drift_day: date) -> tuple[float, float, float, float]:
    _, valid = _parse_landing(out)
    before = [float(r[4]) for d, r in valid if d < drift_day]
    after = [float(r[4]) for d, r in valid if d >= drift_day]
    span_before = (drift_day - START).days
    span_after = max(d for d, _ in valid).toordinal() - drift_day.toordinal() + 1
    return len(before) / span_before, len(after) / span_after, float(np.mean(before)), float(np.mean(after))


def test_drift_changes_rate_and_basket_after_drift_start(tmp_path: Path) -> None:
    drift_day = START + timedelta(days=60)
    base = _config(tmp_path / "base", days=120, rows=12_000, customers=800)
    drifted = replace(base, out=tmp_path / "drift", drift_start=drift_day, drift_rate=2.5, drift_basket=2.0)
    gen.generate(base)
    gen.generate(drifted)
    b_rate0, b_rate1, b_amt0, b_amt1 = _before_after(base.out, drift_day)
    d_rate0, d_rate1, d_amt0, d_amt1 = _before_after(drifted.out, drift_day)
    assert (d_rate1 / d_rate0) > 1.5 * (b_rate1 / b_rate0)
    assert (d_amt1 / d_amt0) > 1.6 * (b_amt1 / b_amt0)
    assert 0.8 < (d_amt0 / b_amt0) < 1.25  # nothing changes before the drift start


def test_new_mix_moves_late_customers_to_the_other_segment(tmp_path: Path) -> None:
    drift_day = START + timedelta(days=30)
    config = _config(tmp_path, drift_start=drift_day, drift_new_mix=1.0)
    customers = gen.simulate_customers(config)
    late = customers.acquired >= 30
    assert np.array_equal(customers.new_segment, late)
    plain = gen.simulate_customers(replace(config, drift_start=None, drift_new_mix=0.0))
    assert not plain.new_segment.any()
    assert np.allclose(customers.basket[late], plain.basket[late] * gen.NEW_SEGMENT_BASKET)
    assert np.allclose(customers.rate[late], plain.rate[late] * gen.NEW_SEGMENT_RATE)
    assert np.array_equal(customers.basket[~late], plain.basket[~late])
    manifest = gen.generate(config)
    assert manifest["stats"]["new_segment_customers"] == int(late.sum())
    assert manifest["totals"]["rows"] == config.rows


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rows": 10, "customers": 20}, "rows"),
        ({"corrupt_kinds": ("nonsense",)}, "unknown corrupt kinds"),
        ({"corrupt_rate": 1.5}, "corrupt_rate"),
        ({"drift_new_mix": -0.1}, "drift_new_mix"),
    ],
)
def test_config_rejects_bad_parameters(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **overrides)


def test_cli_writes_exact_rows_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = tmp_path / "m.json"
    argv = ["--out", str(tmp_path / "land"), "--rows", "1234", "--customers", "300", "--start", "1998-03-01"]
    argv += ["--days", "20", "--seed", "3", "--corrupt-rate", "0.05", "--corrupt-kinds", "malformed,duplicate"]
    argv += ["--manifest", str(manifest_path), "--drift-start", "1998-03-10", "--drift-basket", "1.5"]
    assert gen.main(argv) == 0
    assert "rows=1234" in capsys.readouterr().out
    manifest = json.loads(manifest_path.read_text())
    assert manifest["totals"]["rows"] == 1234
    assert manifest["params"]["drift_start"] == "1998-03-10"
    quarantine = {reason for reason, n in manifest["totals"]["quarantine"].items() if n}
    assert quarantine <= {landing.REASON_MALFORMED}
    assert math.isclose(sum(manifest["days"][d]["rows"] for d in manifest["days"]), 1234)
