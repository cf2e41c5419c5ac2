"""Coordination through the lake itself: a lease (one holder per key at a time, across processes and hosts that
share the lake) and retrying Delta's optimistic-concurrency conflicts.

A lease is a row of ``ops/leases`` (key, owner, expiry) claimed with a Delta MERGE: two claims that race are two
transactions on one table, and Delta lets exactly one commit; the other gets a concurrent-modification error and
tries again. The table runs at the ``Serializable`` isolation level so any concurrent write it read counts as a
conflict. A holder that dies leaves its row until it expires; the same owner (a retried task re-using its
decision id) takes its own lease back at once. Expiry uses the hosts' clocks, so keep them in sync (NTP) and the
TTL far above the longest critical section.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from jobs.settings import Settings
from jobs.spark import create_delta_table, merge_into

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

T = TypeVar("T")
LEASES_TABLE = ("ops", "leases")
LEASE_SCHEMA = "key string, owner string, host string, acquired_at double, expires_at double"
# Delta's conflict errors (io.delta.exceptions.*); under Spark Connect only the message names them.
CONFLICT_MARKERS = ("DELTA_CONCURRENT", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED", "Concurrent")


class LeaseTimeout(TimeoutError):
    """The lease stayed with another owner for longer than the caller was willing to wait."""


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is Delta's optimistic-concurrency conflict (worth retrying), not a real failure."""
    from delta.exceptions import DeltaConcurrentModificationException

    if isinstance(exc, DeltaConcurrentModificationException):
        return True
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in CONFLICT_MARKERS)


def retry_conflicts(fn: Callable[[], T], *, attempts: int = 10, delay_s: float = 0.2, what: str = "write") -> T:
    """Run ``fn``; when Delta reports a concurrent-write conflict, back off (exponential, jittered) and run it again."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            pause = delay_s * 2 ** (attempt - 1) * (1 + random.random())
            log.info(
                "%s: concurrent Delta commit (%s); retry %d/%d in %.1f s",
                what,
                type(exc).__name__,
                attempt,
                attempts,
                pause,
            )
            time.sleep(pause)
    raise AssertionError("unreachable")


def _table(spark: SparkSession, settings: Settings) -> str:
    path = settings.table_path(*LEASES_TABLE)
    schema = spark.createDataFrame([], LEASE_SCHEMA).schema

    def create() -> None:
        create_delta_table(spark, path, schema, {"delta.isolationLevel": "Serializable"})

    retry_conflicts(create, what="create ops/leases")
    return path


def holder(spark: SparkSession, settings: Settings, key: str) -> dict | None:
    """The row holding ``key`` now (expired or not), or None."""
    from pyspark.sql import functions as F

    rows = spark.read.format("delta").load(_table(spark, settings)).where(F.col("key") == key).collect()
    return rows[0].asDict() if rows else None


def _claim(spark: SparkSession, path: str, key: str, owner: str, ttl_s: float) -> None:
    """One MERGE: take ``key`` if it is free, expired, or already ours (renewing it)."""
    now = time.time()
    row = [(key, owner, socket.gethostname(), now, now + ttl_s)]
    source = spark.createDataFrame(row, LEASE_SCHEMA)
    merge_into(
        spark,
        path,
        source,
        "t.key = s.key",
        f"WHEN MATCHED AND (t.expires_at < {now!r} OR t.owner = s.owner) THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *",
    )


def _release(spark: SparkSession, path: str, key: str, owner: str) -> None:
    source = spark.createDataFrame([(key, owner, "", 0.0, 0.0)], LEASE_SCHEMA)
    merge_into(spark, path, source, "t.key = s.key", "WHEN MATCHED AND t.owner = s.owner THEN DELETE")


@contextmanager
def held(
    spark: SparkSession,
    settings: Settings,
    key: str,
    owner: str,
    *,
    ttl_s: float = 3600.0,
    wait_s: float = 3600.0,
    poll_s: float = 2.0,
) -> Iterator[dict]:
    """Hold the lease ``key`` as ``owner`` for the block (waiting up to ``wait_s`` for another owner to finish)."""
    path = _table(spark, settings)
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        try:
            _claim(spark, path, key, owner, ttl_s)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            log.info("lease %s: another claim committed first; looking again", key)
        current = holder(spark, settings, key)
        if current is not None and current["owner"] == owner:
            break
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"lease {key} is held by {current and current['owner']}; waited {wait_s:.0f} s")
        if not waited:
            log.info(
                "lease %s is held by %s (on %s); waiting",
                key,
                current and current["owner"],
                current and current["host"],
            )
            waited = True
        time.sleep(poll_s * (1 + random.random() / 2))
    log.info("lease %s taken by %s", key, owner)
    try:
        yield current
    finally:
        retry_conflicts(lambda: _release(spark, path, key, owner), what=f"release lease {key}")
        log.info("lease %s released by %s", key, owner)
