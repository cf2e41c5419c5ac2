"""Synthetic retail transactions for scale tests, written into the landing zone exactly like the CDNOW replay.

The purchase process follows BG/NBD: customers are acquired over the period and buy once on acquisition; each
then buys at a gamma-distributed Poisson rate and drops out for good after any purchase with a beta-distributed
probability. Basket values are lognormal per customer with per-purchase noise. A global rate scale is
calibrated so the output holds exactly ``rows`` data lines. Drift (rate, basket, new-customer mix) and
corruptions (each mapped to exactly one expected outcome of the clean stage) are injected on request, and a
manifest records the expected per-day counts so tests can reconcile ingest with the files.

Everything streams day by day: memory is O(customers + rows of one day), never O(total rows).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs import cli
from jobs.sources import landing

logger = logging.getLogger(__name__)

# Corruption kinds and the one outcome the clean stage must reach for each.
OUTCOME_VALID = "valid"
OUTCOME_DUPLICATE = "duplicate"
OUTCOME_EMPTY_FILE = "empty_file"
CORRUPTION_OUTCOMES: dict[str, str] = {
    "malformed": landing.REASON_MALFORMED,
    "negative_amount": landing.REASON_BAD_AMOUNT,
    "absurd_amount": landing.REASON_BAD_AMOUNT,
    "bad_quantity": landing.REASON_BAD_QUANTITY,
    "unknown_id": landing.REASON_BAD_CUSTOMER,
    "bad_date": landing.REASON_BAD_DATE,
    "future_date": landing.REASON_FUTURE_DATE,
    "duplicate": OUTCOME_DUPLICATE,
    "missing_column": landing.REASON_MISSING_COLUMN,
    "empty_file": OUTCOME_EMPTY_FILE,
}
CORRUPT_KINDS: tuple[str, ...] = tuple(CORRUPTION_OUTCOMES)
# Kinds that turn one purchase line into a bad line; empty_file adds a file, not a line.
_ROW_KINDS: tuple[str, ...] = tuple(kind for kind in CORRUPT_KINDS if kind != "empty_file")

# Process parameters. Rates are relative: the calibrated scale turns them into purchases per day.
RATE_SHAPE = 0.6  # gamma shape of the purchase rate; below 1 gives many light and a few heavy buyers
DROPOUT_A = 1.5  # beta(a, b) dropout probability; b is solved from the rows per customer asked for
LIFETIME_FACTOR = 2.0  # expected lifetime purchases / needed purchases per customer, so churn never starves
BASKET_LOG_MEAN = math.log(25.0)  # per-customer mean basket (dollars), lognormal across customers
BASKET_LOG_SD = 0.8
PURCHASE_LOG_SD = 0.5  # per-purchase noise around the customer's mean basket
UNIT_PRICE = 12.0  # dollars per item, to derive quantity from the basket value
UNIT_PRICE_LOG_SD = 0.3
ACQUISITION_DECAY = 0.5  # acquisition density decays as exp(-t / (decay * period)): early cohorts are larger
NEW_SEGMENT_RATE = 0.5  # the post-drift segment buys less often ...
NEW_SEGMENT_BASKET = 2.0  # ... but spends more per basket
EMPTY_FILE_FACTOR = 10.0  # share of days with an empty file = min(1, factor * corrupt_rate)
CALIBRATION_SLACK = 0.002  # calibrate to at most this share of surplus purchases, then thin them away
MAX_CALIBRATION_PASSES = 80

_ID_PREFIX = "g"
_FUTURE_DAYS = 30
_BAD_CUSTOMERS = ("", "unknown", "abc", "0", "-42", "N/A")
_BAD_DATES = ("not-a-date", "N/A", "1997-13-01", "31/12/1997", "??")
_GARBAGE = ("garbage", "<html><body>502 Bad Gateway</body></html>", "NULL", "%%%%%%")
_MAX_CENTS = round(landing.MAX_AMOUNT * 100)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of one synthetic run; same config and seed give byte-identical files."""

    out: Path
    rows: int
    customers: int = 23_570
    start: date = date(1997, 1, 1)
    days: int = 546
    seed: int = 0
    drift_start: date | None = None
    drift_rate: float = 1.0
    drift_basket: float = 1.0
    drift_new_mix: float = 0.0
    corrupt_rate: float = 0.0
    corrupt_kinds: tuple[str, ...] = field(default=CORRUPT_KINDS)
    manifest: Path | None = None
    rows_per_file: int = 1_000_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.manifest is not None:
            object.__setattr__(self, "manifest", Path(self.manifest))
        object.__setattr__(self, "corrupt_kinds", tuple(self.corrupt_kinds))
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.rows < self.customers:
            raise ValueError(f"rows ({self.rows}) must be >= customers ({self.customers}): every customer buys once")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.drift_rate <= 0 or self.drift_basket <= 0:
            raise ValueError("drift multipliers must be > 0")
        if not 0.0 <= self.drift_new_mix <= 1.0:
            raise ValueError("drift_new_mix must be in [0, 1]")
        if not 0.0 <= self.corrupt_rate <= 1.0:
            raise ValueError("corrupt_rate must be in [0, 1]")
        unknown = sorted(set(self.corrupt_kinds) - set(CORRUPT_KINDS))
        if unknown:
            raise ValueError(f"unknown corrupt kinds {unknown}; choose from {list(CORRUPT_KINDS)}")
        if self.rows_per_file < 1:
            raise ValueError("rows_per_file must be >= 1")

    @property
    def manifest_path(self) -> Path:
        """Where the manifest goes."""
        if self.manifest is not None:
            return self.manifest
        return self.out / landing.DATASET / f"_manifest_{self.seed}.json"

    @property
    def drift_offset(self) -> float:
        """Drift start in days from ``start``; +inf without drift."""
        return math.inf if self.drift_start is None else float((self.drift_start - self.start).days)


@dataclass(frozen=True)
class Customers:
    """Per-customer latent attributes (index i is customer id i + 1)."""

    acquired: np.ndarray  # acquisition time in days from start (first purchase), float64
    rate: np.ndarray  # relative purchase rate per day before calibration, float64
    lifetime: np.ndarray  # purchases before dropout (BG/NBD geometric), int64
    basket: np.ndarray  # mean basket value in dollars, float64
    new_segment: np.ndarray  # acquired after drift start from the other segment, bool


def simulate_customers(config: GeneratorConfig) -> Customers:
    """Draw every customer's acquisition time, rate, lifetime and basket for ``config``."""
    n = config.customers
    horizon = float(config.days)
    rng = np.random.default_rng([config.seed, 1])
    # Draw every variate regardless of drift so the same seed gives the same customers with and without it.
    u_acq = rng.random(n)
    rate = np.maximum(rng.gamma(RATE_SHAPE, 1.0 / RATE_SHAPE, n), 1e-12)  # a zero rate would divide by zero
    b = max(LIFETIME_FACTOR * config.rows / n * (DROPOUT_A - 1.0) - DROPOUT_A + 1.0, 0.05)
    dropout = np.clip(rng.beta(DROPOUT_A, b, n), 1e-9, 1.0)
    lifetime = rng.geometric(dropout).astype(np.int64)
    basket = np.exp(rng.normal(BASKET_LOG_MEAN, BASKET_LOG_SD, n))
    u_mix = rng.random(n)

    tau = ACQUISITION_DECAY * horizon
    acquired = -tau * np.log1p(-u_acq * (1.0 - math.exp(-horizon / tau)))
    acquired = np.minimum(acquired, np.nextafter(horizon, 0.0))
    # Heavy-tailed lifetimes can still fall short for tiny populations; stretch them so the target is reachable.
    need = LIFETIME_FACTOR * config.rows
    total = float(lifetime.sum())
    if total < need:
        lifetime = np.ceil(lifetime * (need / total)).astype(np.int64)
    new_segment = (acquired >= config.drift_offset) & (u_mix < config.drift_new_mix)
    rate = np.where(new_segment, rate * NEW_SEGMENT_RATE, rate)
    basket = np.where(new_segment, basket * NEW_SEGMENT_BASKET, basket)
    return Customers(acquired=acquired, rate=rate, lifetime=lifetime, basket=basket, new_segment=new_segment)


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64 finaliser: counter-based randomness keeps each customer's path independent of the rate scale.
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _uniform(key: np.uint64, customer: np.ndarray, index: np.ndarray) -> np.ndarray:
    x = _mix(customer.astype(np.uint64) * _GOLDEN + key)
    x = _mix(x + index.astype(np.uint64) * _GOLDEN)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _advance(t: np.ndarray, duration: np.ndarray, drift_at: float, drift_rate: float) -> np.ndarray:
    # Piecewise-constant intensity: time past the drift start runs drift_rate times faster.
    if drift_rate == 1.0 or math.isinf(drift_at):
        return t + duration
    plain = t + duration
    crossed = drift_at + (plain - drift_at) / drift_rate
    after = t + duration / drift_rate
    return np.where(t >= drift_at, after, np.where(plain <= drift_at, plain, crossed))


def _events(
    customers: Customers, scale: float, config: GeneratorConfig
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (day, customer index, purchase number, time) for every purchase, day by day."""
    key = np.random.SeedSequence([config.seed, 2]).generate_state(1, np.uint64)[0]
    drift_at = config.drift_offset
    rate = customers.rate * scale
    next_t = customers.acquired.copy()
    made = np.zeros(customers.acquired.size, dtype=np.int64)
    for day in range(config.days):
        end = float(day + 1)
        idx = np.flatnonzero(next_t < end)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        while idx.size:
            t = next_t[idx]
            k = made[idx]
            parts.append((idx, k, t))
            made[idx] = k + 1
            gap = -np.log(_uniform(key, idx, k + 1)) / rate[idx]
            nxt = _advance(t, gap, drift_at, config.drift_rate)
            nxt[made[idx] >= customers.lifetime[idx]] = np.inf
            next_t[idx] = nxt
            idx = idx[nxt < end]
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            yield day, empty, empty, np.empty(0, dtype=np.float64)
        elif len(parts) == 1:
            yield day, *parts[0]
        else:
            yield day, *(np.concatenate(cols) for cols in zip(*parts, strict=True))


def _count(customers: Customers, scale: float, config: GeneratorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Purchases and repeat purchases per day at ``scale``."""
    total = np.zeros(config.days, dtype=np.int64)
    repeat = np.zeros(config.days, dtype=np.int64)
    for day, _, k, _ in _events(customers, scale, config):
        total[day] = k.size
        repeat[day] = int(np.count_nonzero(k))
    return total, repeat


def _calibrate(customers: Customers, config: GeneratorConfig) -> tuple[float, np.ndarray, np.ndarray, int]:
    """Find a rate scale giving between ``rows`` and ``rows * (1 + slack)`` purchases; return it with day counts."""
    # Purchases only grow with the scale (counter-based draws), so a bracketing secant search converges.
    target = config.rows
    slack = max(20, int(target * CALIBRATION_SLACK))
    firsts = customers.acquired.size
    aim = math.log(target - firsts + slack / 2)
    horizon = float(config.days)
    drift_at = min(config.drift_offset, horizon)
    before = np.clip(drift_at - customers.acquired, 0.0, None)
    after = np.clip(horizon - np.maximum(customers.acquired, drift_at), 0.0, None)
    exposure = before + config.drift_rate * after
    # Start where a smooth stand-in for min(lifetime - 1, Poisson(rate * scale * exposure)) meets the target.
    cap = (customers.lifetime - 1).astype(np.float64)
    load = customers.rate * exposure
    capped = cap > 0
    cap, load = cap[capped], load[capped]

    def expected(log_scale: float) -> float:
        return float(np.sum(cap * -np.expm1(-load * math.exp(log_scale) / cap)))

    low, high = -40.0, 40.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if expected(middle) < target - firsts else (low, middle)
    x = 0.5 * (low + high)
    # The stand-in's local elasticity is a better first secant slope than a constant.
    first_slope = (math.log(max(expected(x + 0.01), 1e-300)) - math.log(max(expected(x - 0.01), 1e-300))) / 0.02
    lo = -math.inf
    hi = math.inf
    previous: tuple[float, float] | None = None
    for passes in range(1, MAX_CALIBRATION_PASSES + 1):
        scale = math.exp(x)
        total, repeat = _count(customers, scale, config)
        got = int(total.sum())
        logger.debug("calibration pass %d: scale %.6g -> %d purchases", passes, scale, got)
        if target <= got <= target + slack:
            return scale, total, repeat, passes
        if got > target:
            hi = x
        else:
            lo = x
        y = math.log(max(got - firsts, 0.5))
        # Repeats grow like scale**slope in log-log terms; churn caps them, so the slope is below 1.
        slope = min(max(first_slope, 0.05), 1.0)
        if previous is not None and previous[0] != x:
            slope = max((y - previous[1]) / (x - previous[0]), 0.05)
        previous = (x, y)
        step = min(max((aim - y) / slope, -math.log(1e3)), math.log(1e3))
        candidate = x + step
        if math.isfinite(lo) and math.isfinite(hi):
            margin = 0.01 * (hi - lo)
            if not lo + margin < candidate < hi - margin:
                candidate = 0.5 * (lo + hi)
        x = candidate
    raise RuntimeError(f"rate calibration did not converge to {target} rows in {MAX_CALIBRATION_PASSES} passes")


def _format_cents(cents: np.ndarray) -> pa.Array:
    magnitude = np.abs(cents)
    whole = pc.cast(pa.array(magnitude // 100, type=pa.int64()), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(magnitude % 100, type=pa.int64()), pa.string()), width=2, padding="0")
    text = pc.binary_join_element_wise(whole, frac, ".")
    negative = cents < 0
    if negative.any():
        text = pc.if_else(pa.array(negative), pc.binary_join_element_wise("-", text, ""), text)
    return text


@dataclass
class _DayRows:
    """One day's lines as numeric columns plus string overrides for the corrupted ones."""

    tid: np.ndarray
    customer: np.ndarray
    date_code: np.ndarray  # index into the day's date lookup
    quantity: np.ndarray
    cents: np.ndarray
    customer_token: np.ndarray  # -1, or index into _BAD_CUSTOMERS
    malformed: np.ndarray  # -1, or malformed variant 0..3
    garbage: np.ndarray  # index into _GARBAGE for variant 2


def _render(rows: _DayRows, idx: np.ndarray, prefix: str, dates: pa.Array, with_amount: bool = True) -> memoryview:
    """CSV body (one line per index, newline-terminated) of the selected rows."""
    if idx.size == 0:
        return memoryview(b"")
    tid = pc.binary_join_element_wise(prefix, pc.cast(pa.array(rows.tid[idx], type=pa.int64()), pa.string()), "")
    cust = pc.cast(pa.array(rows.customer[idx], type=pa.int64()), pa.string())
    token = rows.customer_token[idx]
    bad = token >= 0
    if bad.any():
        tokens = pa.array(_BAD_CUSTOMERS, type=pa.string()).take(pa.array(token[bad], type=pa.int64()))
        cust = pc.replace_with_mask(cust, pa.array(bad), tokens)
    day = dates.take(pa.array(rows.date_code[idx], type=pa.int64()))
    qty = pc.cast(pa.array(rows.quantity[idx], type=pa.int64()), pa.string())
    columns = [tid, cust, day, qty]
    if with_amount:
        columns.append(_format_cents(rows.cents[idx]))
    lines = pc.binary_join_element_wise(*columns, ",")
    variant = rows.malformed[idx]
    broken = variant >= 0
    if broken.any():
        sub = pa.array(np.flatnonzero(broken), type=pa.int64())
        full = lines.take(sub)
        short = pc.binary_join_element_wise(*(col.take(sub) for col in columns[:-1]), ",")  # one field missing
        extra = pc.binary_join_element_wise(full, "x", ",")  # one field too many
        garbage = pa.array(_GARBAGE, type=pa.string()).take(pa.array(rows.garbage[idx][broken], type=pa.int64()))
        truncated = pc.binary_join_element_wise(tid.take(sub), cust.take(sub), ",")
        choice = pa.array(variant[broken], type=pa.int8())
        lines = pc.replace_with_mask(lines, pa.array(broken), pc.choose(choice, short, extra, garbage, truncated))
    body = pc.binary_join_element_wise(lines, "", "\n")
    offsets = np.frombuffer(body.buffers()[1], dtype=np.int32, count=len(body) + 1, offset=body.offset * 4)
    return memoryview(body.buffers()[2])[offsets[0] : offsets[-1]]


def _write_bytes_atomic(path: Path, header: str, body: memoryview) -> None:
    # Same temp-file-and-rename contract as landing.write_atomic, without a Python loop per line.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(header.encode("utf-8") + b"\n")
            handle.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _empty_counts() -> dict[str, object]:
    return {
        "files": 0,
        "empty_files": 0,
        "rows": 0,
        "valid": 0,
        "duplicates": 0,
        "quarantine": dict.fromkeys(landing.REASONS, 0),
    }


def _add_counts(total: dict[str, object], day: dict[str, object]) -> None:
    for key in ("files", "empty_files", "rows", "valid", "duplicates"):
        total[key] += day[key]  # type: ignore[operator]
    for reason, n in day["quarantine"].items():  # type: ignore[union-attr]
        total["quarantine"][reason] += n  # type: ignore[index]


def _purchase_rows(
    customers: Customers,
    cust: np.ndarray,
    t: np.ndarray,
    first_id: int,
    config: GeneratorConfig,
    rng: np.random.Generator,
) -> _DayRows:
    """Baskets and quantities of one day's purchases, all valid."""
    n = cust.size
    noise = PURCHASE_LOG_SD * rng.standard_normal(n) - 0.5 * PURCHASE_LOG_SD**2  # mean-one lognormal factor
    amount = customers.basket[cust] * np.exp(noise)
    if config.drift_basket != 1.0:
        amount = np.where(t >= config.drift_offset, amount * config.drift_basket, amount)
    unit = UNIT_PRICE * np.exp(UNIT_PRICE_LOG_SD * rng.standard_normal(n))
    return _DayRows(
        tid=first_id + np.arange(n, dtype=np.int64),
        customer=cust + 1,
        date_code=np.zeros(n, dtype=np.int64),
        quantity=np.clip(np.rint(amount / unit), 1, landing.MAX_QUANTITY).astype(np.int64),
        cents=np.clip(np.rint(amount * 100.0), 1, _MAX_CENTS).astype(np.int64),
        customer_token=np.full(n, -1, dtype=np.int64),
        malformed=np.full(n, -1, dtype=np.int64),
        garbage=np.zeros(n, dtype=np.int64),
    )


def _assign_roles(
    rows: _DayRows, row_kinds: list[str], code: dict[str, int], rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Pick the corrupted lines (0 = valid, else the kind's code) and rewrite their fields."""
    n = rows.tid.size
    role = np.zeros(n, dtype=np.int64)
    if not row_kinds:
        return role
    hit = rng.random(n) < rate
    role[hit] = 1 + rng.integers(0, len(row_kinds), size=int(hit.sum()))
    _apply_corruptions(rows, role, code, rng)
    dup = np.flatnonzero(role == code["duplicate"]) if code["duplicate"] > 0 else np.empty(0, dtype=np.int64)
    if dup.size:
        valid = role == 0
        # A re-send needs an earlier valid line; a leading duplicate becomes that line instead.
        if not valid.any() or dup[0] < np.argmax(valid):
            role[dup[0]] = 0
            dup = dup[1:]
            valid = role == 0
        earlier = np.cumsum(valid)[dup]
        source = np.flatnonzero(valid)[(rng.random(dup.size) * earlier).astype(np.int64)]
        for column in (rows.tid, rows.customer, rows.date_code, rows.quantity, rows.cents):
            column[dup] = column[source]
    return role


def _write_day(
    folder: Path,
    day: date,
    rows: _DayRows,
    role: np.ndarray,
    code: dict[str, int],
    empty_file: bool,
    config: GeneratorConfig,
) -> list[str]:
    """Write one day's files, drop stale ones, then the marker; return the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    # Withdraw the marker first: a rerun must never expose a half-rewritten day as complete.
    (folder / landing.SUCCESS_MARKER).unlink(missing_ok=True)
    prefix = f"{_ID_PREFIX}-{config.seed}-"
    dates = pa.array(
        [(day + timedelta(days=i)).isoformat() for i in range(_FUTURE_DAYS + 1)] + list(_BAD_DATES),
        type=pa.string(),
    )
    nocol = role == code["missing_column"] if code["missing_column"] > 0 else np.zeros(role.size, dtype=bool)
    main = np.flatnonzero(~nocol)
    written: list[str] = []
    # Always at least one file: a header-only file is how the source says "no purchases today".
    for first in range(0, max(main.size, 1), config.rows_per_file):
        name = f"part-{len(written):05d}.csv"
        chunk = main[first : first + config.rows_per_file]
        _write_bytes_atomic(folder / name, landing.HEADER, _render(rows, chunk, prefix, dates))
        written.append(name)
    if nocol.any():
        name = f"part-{len(written):05d}.csv"
        header = ",".join(column for column in landing.COLUMNS if column != "amount")
        _write_bytes_atomic(folder / name, header, _render(rows, np.flatnonzero(nocol), prefix, dates, False))
        written.append(name)
    if empty_file:
        name = f"part-{len(written):05d}.csv"
        landing.write_atomic(folder / name, [])
        written.append(name)
    for stale in folder.glob("part-*.csv"):
        if stale.name not in written:
            stale.unlink()
    landing.mark_complete(folder)
    return written


def generate(config: GeneratorConfig) -> dict:
    """Write the synthetic landing zone for ``config`` and return its manifest."""
    started = time.monotonic()
    customers = simulate_customers(config)
    scale, per_day, repeats, passes = _calibrate(customers, config)
    surplus = int(per_day.sum()) - config.rows
    # Thin the calibration surplus from repeat purchases only, so every customer keeps the acquisition purchase.
    thin_rng = np.random.default_rng([config.seed, 3])
    thin = thin_rng.multivariate_hypergeometric(repeats, surplus) if surplus else np.zeros(config.days, dtype=np.int64)
    logger.info(
        "calibrated rate scale %.6g in %d passes (%d surplus purchases thinned) in %.1fs",
        scale,
        passes,
        surplus,
        time.monotonic() - started,
    )

    row_kinds = [kind for kind in _ROW_KINDS if kind in config.corrupt_kinds] if config.corrupt_rate > 0 else []
    kind_code = {kind: i + 1 for i, kind in enumerate(row_kinds)}  # 0 = valid
    code = {kind: kind_code.get(kind, -1) for kind in _ROW_KINDS}
    empty_share = min(1.0, EMPTY_FILE_FACTOR * config.corrupt_rate) if "empty_file" in config.corrupt_kinds else 0.0
    purchases = np.zeros(config.customers, dtype=np.int64)
    injected = dict.fromkeys(CORRUPT_KINDS, 0)
    days: dict[str, dict[str, object]] = {}
    totals = _empty_counts()
    next_id = 0
    checkpoints = {max(0, math.ceil(config.days * step / 10) - 1) for step in range(1, 11)}

    for day_index, cust, k, t in _events(customers, scale, config):
        day = config.start + timedelta(days=day_index)
        rng = np.random.default_rng([config.seed, 4, day_index])
        order = np.argsort(t, kind="stable")
        cust, k, t = cust[order], k[order], t[order]
        if thin[day_index]:
            drop = rng.choice(np.flatnonzero(k > 0), size=int(thin[day_index]), replace=False)
            keep = np.ones(cust.size, dtype=bool)
            keep[drop] = False
            cust, k, t = cust[keep], k[keep], t[keep]
        np.add.at(purchases, cust, 1)
        rows = _purchase_rows(customers, cust, t, next_id, config, rng)
        next_id += cust.size
        role = _assign_roles(rows, row_kinds, code, config.corrupt_rate, rng)
        empty_file = empty_share > 0 and rng.random() < empty_share
        written = _write_day(landing.day_dir(config.out, day), day, rows, role, code, empty_file, config)

        counts = _empty_counts()
        counts["files"] = len(written)
        counts["empty_files"] = int(empty_file)
        counts["rows"] = cust.size
        counts["valid"] = int(np.count_nonzero(role == 0))
        for kind in row_kinds:
            lines = int(np.count_nonzero(role == code[kind]))
            injected[kind] += lines
            outcome = CORRUPTION_OUTCOMES[kind]
            if outcome == OUTCOME_DUPLICATE:
                counts["duplicates"] += lines  # type: ignore[operator]
            else:
                counts["quarantine"][outcome] += lines  # type: ignore[index]
        injected["empty_file"] += int(empty_file)
        days[day.isoformat()] = counts
        _add_counts(totals, counts)
        if day_index in checkpoints:
            logger.info(
                "day %d/%d (%s): %d rows written, %.1fs",
                day_index + 1,
                config.days,
                day.isoformat(),
                totals["rows"],
                time.monotonic() - started,
            )

    params = asdict(config)
    params["out"] = str(config.out)
    params["manifest"] = str(config.manifest_path)
    params["start"] = config.start.isoformat()
    params["drift_start"] = None if config.drift_start is None else config.drift_start.isoformat()
    params["corrupt_kinds"] = list(config.corrupt_kinds)
    manifest = {
        "generator": "jobs.sources.generate",
        "format_version": 1,
        "seed": config.seed,
        "params": params,
        "columns": list(landing.COLUMNS),
        "outcomes": CORRUPTION_OUTCOMES,
        "totals": totals,
        "injected": injected,
        "stats": {
            "customers": config.customers,
            "customers_with_purchases": int(np.count_nonzero(purchases)),
            "repeat_customers": int(np.count_nonzero(purchases >= 2)),
            "new_segment_customers": int(np.count_nonzero(customers.new_segment)),
            "rate_scale": scale,
            "calibration_passes": passes,
            "thinned_purchases": surplus,
        },
        "days": days,
    }
    path = config.manifest_path
    path.parent.mkdir(parents=True, exist_ok=True)
    landing.write_atomic(path, [json.dumps(manifest, indent=1)])
    logger.info(
        "wrote %d rows in %d files over %d days in %.1fs; manifest %s",
        totals["rows"],
        totals["files"],
        config.days,
        time.monotonic() - started,
        path,
    )
    return manifest


def _apply_corruptions(rows: _DayRows, role: np.ndarray, code: dict[str, int], rng: np.random.Generator) -> None:
    """Rewrite the fields of corrupted lines so each violates exactly one rule."""
    # Fixed draw order per kind keeps the output a pure function of the seed.
    sel = np.flatnonzero(role == code["malformed"])
    rows.malformed[sel] = rng.integers(0, 4, size=sel.size)
    rows.garbage[sel] = rng.integers(0, len(_GARBAGE), size=sel.size)
    sel = np.flatnonzero(role == code["negative_amount"])
    rows.cents[sel] = -rows.cents[sel]
    sel = np.flatnonzero(role == code["absurd_amount"])
    rows.cents[sel] = _MAX_CENTS + 1 + rng.integers(0, 99 * _MAX_CENTS, size=sel.size)
    sel = np.flatnonzero(role == code["bad_quantity"])
    variant = rng.integers(0, 3, size=sel.size)
    negative = -rng.integers(1, 10, size=sel.size)
    huge = landing.MAX_QUANTITY + rng.integers(1, 9 * landing.MAX_QUANTITY, size=sel.size)
    rows.quantity[sel] = np.where(variant == 0, 0, np.where(variant == 1, negative, huge))
    sel = np.flatnonzero(role == code["unknown_id"])
    rows.customer_token[sel] = rng.integers(0, len(_BAD_CUSTOMERS), size=sel.size)
    sel = np.flatnonzero(role == code["bad_date"])
    rows.date_code[sel] = _FUTURE_DAYS + 1 + rng.integers(0, len(_BAD_DATES), size=sel.size)
    sel = np.flatnonzero(role == code["future_date"])
    rows.date_code[sel] = rng.integers(1, _FUTURE_DAYS + 1, size=sel.size)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser("jobs.sources.generate", __doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="landing root (files go under transactions/)")
    parser.add_argument("--rows", type=int, required=True, help="exact number of data lines to write")
    parser.add_argument("--customers", type=int, default=23_570)
    parser.add_argument("--start", type=date.fromisoformat, default=date(1997, 1, 1), help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=546)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift-start", type=date.fromisoformat, default=None, help="drift from this day on")
    parser.add_argument("--drift-rate", type=float, default=1.0, help="purchase-rate multiplier after drift")
    parser.add_argument("--drift-basket", type=float, default=1.0, help="basket-value multiplier after drift")
    parser.add_argument(
        "--drift-new-mix",
        type=float,
        default=0.0,
        help="share of customers acquired after drift-start from a low-rate, high-basket segment",
    )
    parser.add_argument("--corrupt-rate", type=float, default=0.0, help="fraction of lines to corrupt")
    parser.add_argument("--corrupt-kinds", default="all", help=f"comma list of {','.join(CORRUPT_KINDS)} or 'all'")
    parser.add_argument("--manifest", type=Path, default=None, help="default <out>/transactions/_manifest_<seed>.json")
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.corrupt_kinds.split(",") if kind.strip()]
    args.corrupt_kinds = CORRUPT_KINDS if kinds == ["all"] else tuple(kinds)
    args.parser = parser
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: generate, print the counts, return 0."""
    args = _parse_args(argv)
    cli.setup_logging(args.log_level.upper())
    try:
        config = GeneratorConfig(
            out=args.out,
            rows=args.rows,
            customers=args.customers,
            start=args.start,
            days=args.days,
            seed=args.seed,
            drift_start=args.drift_start,
            drift_rate=args.drift_rate,
            drift_basket=args.drift_basket,
            drift_new_mix=args.drift_new_mix,
            corrupt_rate=args.corrupt_rate,
            corrupt_kinds=args.corrupt_kinds,
            manifest=args.manifest,
            rows_per_file=args.rows_per_file,
        )
    except ValueError as exc:
        args.parser.error(str(exc))
    manifest = generate(config)
    totals = manifest["totals"]
    print(
        f"rows={totals['rows']} valid={totals['valid']} duplicates={totals['duplicates']} "
        f"quarantined={sum(totals['quarantine'].values())} files={totals['files']} "
        f"empty_files={totals['empty_files']} days={config.days} manifest={config.manifest_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
