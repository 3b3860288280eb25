"""psycopg 3 cursors that put every `execute` in a SQL span and observe its duration in
`db_client_operation_duration_seconds` (see `pilothouse.telemetry.sql`).

Imported only by users who pass them as `cursor_factory`; psycopg is an optional extra.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pilothouse.telemetry.sql import sql_span, statement_text


class TracedCursor(psycopg.Cursor[Any]):
    """A psycopg Cursor recording one span per `execute` (statement text only)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TracedCursor:
        with sql_span(statement_text(query, self)):
            super().execute(query, params, **kwargs)
        return self


class AsyncTracedCursor(psycopg.AsyncCursor[Any]):
    """The asyncio twin of `TracedCursor`."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> AsyncTracedCursor:
        with sql_span(statement_text(query, self)):
            await super().execute(query, params, **kwargs)
        return self
