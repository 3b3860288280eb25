"""Telemetry: Prometheus metrics, OpenTelemetry traces and JSON logs for a Pilothouse service.

The runtime does the per-request part (`middleware`), `feature.install` the process part
(logs, tracer provider, process metrics). App code uses the helpers re-exported here.
"""

from pilothouse.telemetry.helpers import command, queue_depth, request_id, set_correlation, unit_of_work
from pilothouse.telemetry.pools import PoolUsage, psycopg_pool_usage, sqlalchemy_pool_usage, watch_pool
from pilothouse.telemetry.sql import sql_span

__all__ = [
    "PoolUsage",
    "command",
    "psycopg_pool_usage",
    "queue_depth",
    "request_id",
    "set_correlation",
    "sql_span",
    "sqlalchemy_pool_usage",
    "unit_of_work",
    "watch_pool",
]
