"""SQL spans and query metrics: the statement text in the span, never its parameters; the SQL
verb, never the statement, in the metric.

`sql_span(statement)` wraps any driver call; `TracedCursor` / `AsyncTracedCursor` do it for
every `execute` of a psycopg 3 connection:

    conn = psycopg.connect(url, cursor_factory=TracedCursor)
    pool = AsyncConnectionPool(url, kwargs={"cursor_factory": AsyncTracedCursor})

Parameters are never read, so values bound with `%s` (passwords, personal data) stay out of
traces; statements with literals inlined are recorded as written.

Each operation is also observed in `db_client_operation_duration_seconds`, the OpenTelemetry
`db.client.operation.duration` histogram (stable database metric conventions,
https://opentelemetry.io/docs/specs/semconv/database/database-metrics/#metric-dbclientoperationduration:
`db.system.name` required, `db.operation.name` when readily available, `error.type` if and only if
the operation failed), labelled `db_system_name`, `db_operation_name` (the SQL verb, bounded by
`catalog.db_client.SQL_OPERATIONS`) and `error_type` (the exception's class; empty on success).
It goes to the runtime's registry once the telemetry feature bound it, else to a private one
(`telemetry.state`), so a script or a test without a runtime records without failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any

from pilothouse.catalog import db_client
from pilothouse.telemetry.spans import error_type, start_span
from pilothouse.telemetry.state import state


def _operation(statement: str) -> str:
    words = statement.split(None, 1)
    return words[0].upper() if words else "SQL"


def operation_name(verb: str) -> str:
    """The bounded `db.operation.name` of a statement's SQL verb: the verb, or `_OTHER`."""
    return verb if verb in db_client.SQL_OPERATIONS else db_client.OTHER_OPERATION


@contextmanager
def sql_span(statement: str, system: str = "postgresql") -> Iterator[None]:
    """A CLIENT span named after the SQL operation, with `db.query.text` = `statement`, and one
    observation of `db_client_operation_duration_seconds`."""
    verb = _operation(statement)
    operation = operation_name(verb)
    started = perf_counter()
    span = start_span(
        verb,
        kind="CLIENT",
        attributes={"db.system.name": system, "db.operation.name": operation, "db.query.text": statement},
    )
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        failed = error_type(error) if error is not None else ""
        if span is not None:
            span.close(error)  # an error: its exception event, error.type and ERROR status
        histogram = state.metrics.histogram(db_client.DB_CLIENT_OPERATION_DURATION)
        histogram.labels(system, operation, failed).observe(perf_counter() - started)


def statement_text(query: Any, context: Any) -> str:
    """The text of a psycopg query (str, bytes or a `psycopg.sql` composition)."""
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    if isinstance(query, str):
        return query
    return str(query.as_string(context))
