"""Connection-pool utilization gauges, with adapters for psycopg_pool and SQLAlchemy.

`watch_pool(name, pool)` exports in-use, maximum and their ratio, read at scrape time from the
pool's own counters (no wrapping of checkout/checkin, so nothing is added to the query path).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.catalog import app as app_metrics
from pilothouse.telemetry.state import state


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """Two readings of a pool: connections lent out now, and the most it may open."""

    in_use: Callable[[], float]
    maximum: Callable[[], float]


def psycopg_pool_usage(pool: Any) -> PoolUsage:
    """psycopg_pool ConnectionPool / AsyncConnectionPool: size minus idle, over max_size.

    While the pool grows, `pool_size` already counts the connection being prepared, so the
    in-use value can read one high for the moment a connection takes to open."""

    def in_use() -> float:
        stats = pool.get_stats()
        return float(stats.get("pool_size", 0) - stats.get("pool_available", 0))

    return PoolUsage(in_use, lambda: float(pool.max_size))


def sqlalchemy_pool_usage(pool: Any) -> PoolUsage:
    """A SQLAlchemy Pool or Engine: checked-out connections over size + max_overflow
    (infinite when overflow is unbounded, making the ratio 0)."""
    pool = getattr(pool, "pool", pool)  # an Engine carries its pool

    def maximum() -> float:
        overflow = getattr(pool, "_max_overflow", 0)
        return math.inf if overflow < 0 else float(pool.size() + overflow)

    return PoolUsage(lambda: float(pool.checkedout()), maximum)


def usage_of(pool: Any) -> PoolUsage:
    """Pick the adapter by what the object offers."""
    if isinstance(pool, PoolUsage):
        return pool
    if hasattr(pool, "get_stats") and hasattr(pool, "max_size"):
        return psycopg_pool_usage(pool)
    if hasattr(getattr(pool, "pool", pool), "checkedout"):
        return sqlalchemy_pool_usage(pool)
    raise TypeError(
        f"watch_pool: {type(pool).__name__} is not a psycopg_pool pool, a SQLAlchemy pool or engine, "
        "or a PoolUsage"
    )


def watch_pool(name: str, pool: Any) -> None:
    """Export `pilothouse_pool_connections_in_use`, `..._max` and `pilothouse_pool_utilization_ratio`
    for `pool` labelled `pool=name`."""
    usage = usage_of(pool)
    state.used("watch_pool")

    def ratio() -> float:
        maximum = usage.maximum()
        return usage.in_use() / maximum if maximum else 0.0

    metrics = state.metrics
    metrics.gauge(app_metrics.POOL_CONNECTIONS_IN_USE).labels(name).set_function(usage.in_use)
    metrics.gauge(app_metrics.POOL_CONNECTIONS_MAX).labels(name).set_function(usage.maximum)
    metrics.gauge(app_metrics.POOL_UTILIZATION).labels(name).set_function(ratio)
