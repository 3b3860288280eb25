"""SQL spans: the statement text, never its parameters.

`sql_span(statement)` wraps any driver call; `TracedCursor` / `AsyncTracedCursor` do it for
every `execute` of a psycopg 3 connection:

    conn = psycopg.connect(url, cursor_factory=TracedCursor)
    pool = AsyncConnectionPool(url, kwargs={"cursor_factory": AsyncTracedCursor})

Parameters are never read, so values bound with `%s` (passwords, personal data) stay out of
traces; statements with literals inlined are recorded as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pilothouse.telemetry.spans import start_span


def _operation(statement: str) -> str:
    words = statement.split(None, 1)
    return words[0].upper() if words else "SQL"


@contextmanager
def sql_span(statement: str, system: str = "postgresql") -> Iterator[None]:
    """A CLIENT span named after the SQL operation, with `db.query.text` = `statement`."""
    span = start_span(
        _operation(statement),
        kind="CLIENT",
        attributes={"db.system.name": system, "db.query.text": statement},
    )
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        if span is not None:
            span.close(error)


def statement_text(query: Any, context: Any) -> str:
    """The text of a psycopg query (str, bytes or a `psycopg.sql` composition)."""
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    if isinstance(query, str):
        return query
    return str(query.as_string(context))
