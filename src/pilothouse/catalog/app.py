"""Application metrics behind the helpers in `pilothouse.telemetry` (units of work, protocol
commands, queue depth, connection pools). Label values come from the user's code: keep them to
a fixed set of names (never ids)."""

from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS, MetricSpec

UNIT_OF_WORK_EXECUTIONS = MetricSpec(
    name="pilothouse_unit_of_work_executions",
    type="counter",
    help="Executions of a named unit of work by outcome (success or error).",
    labels=("unit", "outcome"),
    unit="executions",
)
UNIT_OF_WORK_DURATION = MetricSpec(
    name="pilothouse_unit_of_work_duration_seconds",
    type="histogram",
    help="Duration of a named unit of work, whatever its outcome.",
    labels=("unit",),
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)
COMMAND_DURATION = MetricSpec(
    name="pilothouse_command_duration_seconds",
    type="histogram",
    help="Duration of a protocol-level command (e.g. LINK, READ, SEND) by its result code.",
    labels=("command", "result"),
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)
QUEUE_DEPTH = MetricSpec(
    name="pilothouse_queue_depth",
    type="gauge",
    help="Items waiting in a named queue, read when the metrics are scraped.",
    labels=("queue",),
    unit="items",
)
POOL_CONNECTIONS_IN_USE = MetricSpec(
    name="pilothouse_pool_connections_in_use",
    type="gauge",
    help="Connections of a named pool lent out right now, read when the metrics are scraped.",
    labels=("pool",),
    unit="connections",
)
POOL_CONNECTIONS_MAX = MetricSpec(
    name="pilothouse_pool_connections_max",
    type="gauge",
    help="The most connections a named pool may open.",
    labels=("pool",),
    unit="connections",
)
POOL_UTILIZATION = MetricSpec(
    name="pilothouse_pool_utilization_ratio",
    type="gauge",
    help="Connections in use divided by the pool maximum (1 means callers wait for a connection).",
    labels=("pool",),
    unit="ratio",
)

HELPERS: dict[str, tuple[MetricSpec, ...]] = {
    "unit_of_work": (UNIT_OF_WORK_EXECUTIONS, UNIT_OF_WORK_DURATION),
    "command": (COMMAND_DURATION,),
    "queue_depth": (QUEUE_DEPTH,),
    "watch_pool": (POOL_CONNECTIONS_IN_USE, POOL_CONNECTIONS_MAX, POOL_UTILIZATION),
}
"""Which `pilothouse.telemetry` helper emits which metrics: a service lists the helpers it calls
in `[monitoring].helpers`, and only their panels and alerts are generated."""

SPECS = (
    UNIT_OF_WORK_EXECUTIONS,
    UNIT_OF_WORK_DURATION,
    COMMAND_DURATION,
    QUEUE_DEPTH,
    POOL_CONNECTIONS_IN_USE,
    POOL_CONNECTIONS_MAX,
    POOL_UTILIZATION,
)
