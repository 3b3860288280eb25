"""Database client metrics (`pilothouse.telemetry.sql.sql_span` and the psycopg traced cursors),
named as the OpenTelemetry database metric conventions export to Prometheus
(`db.client.operation.duration`, stable: https://opentelemetry.io/docs/specs/semconv/database/
database-metrics/).

Label values are bounded: `db_system_name` is what the caller names (`postgresql`),
`db_operation_name` the statement's SQL verb, one of SQL_OPERATIONS or OTHER_OPERATION (never the
statement text), and `error_type` the failed operation's exception class (empty when it succeeded).
"""

from pilothouse.catalog.spec import DEFAULT_LATENCY_BUCKETS, MetricSpec

SQL_OPERATIONS = frozenset(
    (
        "ALTER",
        "ANALYZE",
        "BEGIN",
        "CALL",
        "CLOSE",
        "COMMIT",
        "COPY",
        "CREATE",
        "DEALLOCATE",
        "DECLARE",
        "DELETE",
        "DISCARD",
        "DO",
        "DROP",
        "EXECUTE",
        "EXPLAIN",
        "FETCH",
        "GRANT",
        "INSERT",
        "LISTEN",
        "LOCK",
        "MERGE",
        "MOVE",
        "NOTIFY",
        "PREPARE",
        "REFRESH",
        "REINDEX",
        "RELEASE",
        "RESET",
        "REVOKE",
        "ROLLBACK",
        "SAVEPOINT",
        "SELECT",
        "SET",
        "SHOW",
        "TABLE",
        "TRUNCATE",
        "UNLISTEN",
        "UPDATE",
        "VACUUM",
        "VALUES",
        "WITH",
    )
)
"""The SQL verbs `db_operation_name` takes as they are; any other first word is OTHER_OPERATION."""
OTHER_OPERATION = "_OTHER"

DB_CLIENT_OPERATION_DURATION = MetricSpec(
    name="db_client_operation_duration_seconds",
    type="histogram",
    help="Duration of database client operations this process ran, by system, SQL verb and error type.",
    labels=("db_system_name", "db_operation_name", "error_type"),
    unit="seconds",
    buckets=DEFAULT_LATENCY_BUCKETS,
)

SPECS = (DB_CLIENT_OPERATION_DURATION,)
