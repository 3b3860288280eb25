"""Client-side metrics and spans: SQL through psycopg's `TracedCursor` against the real PostgreSQL
(`db_client_operation_duration_seconds`), and httpx through `traced_client` against a real local
HTTP server (`http_client_request_duration_seconds`, the `traceparent` it receives). Metrics are
read as Prometheus text from a real registry bound as the runtime binds its own."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import generate_latest

from pilothouse.metrics import Metrics
from pilothouse.telemetry.http_client import traced_async_client, traced_client
from pilothouse.telemetry.psycopg_cursors import AsyncTracedCursor, TracedCursor
from pilothouse.telemetry.spans import start_span
from pilothouse.telemetry.state import state
from tests.telemetry.conftest import value

DB = "db_client_operation_duration_seconds_count"
HTTP = "http_client_request_duration_seconds_count"


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    """A fresh registry the helpers record into (as `telemetry.state` holds the runtime's)."""
    fresh = Metrics()
    monkeypatch.setattr(state, "_metrics", fresh)
    return fresh


def _text(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes)


def test_sql_through_the_traced_cursor_is_measured_by_verb_and_error(
    postgres_url: str, metrics: Metrics, spans: Any
) -> None:
    table = f"client_metrics_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, cursor_factory=TracedCursor) as conn:
        conn.execute("SELECT 1").fetchone()
        conn.execute(f"CREATE TEMP TABLE {table} (id int, secret text)")
        conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "hunter2-param"))
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table_client_metrics")
    text = _text(metrics)
    system = {"db_system_name": "postgresql"}
    assert value(text, DB, **system, db_operation_name="SELECT", error_type="") == 1
    assert value(text, DB, **system, db_operation_name="CREATE", error_type="") == 1
    assert value(text, DB, **system, db_operation_name="INSERT", error_type="") == 1
    failed = {**system, "db_operation_name": "SELECT", "error_type": "psycopg.errors.UndefinedTable"}
    assert value(text, DB, **failed) == 1
    assert table not in text and "hunter2" not in text  # the verb, never the statement or its values
    insert = next(s for s in spans.get_finished_spans() if s.name == "INSERT")
    assert _attrs(insert)["db.operation.name"] == "INSERT" and "error.type" not in _attrs(insert)
    failing = [s for s in spans.get_finished_spans() if _attrs(s).get("error.type")]
    assert [(s.name, _attrs(s)["error.type"]) for s in failing] == [
        ("SELECT", "psycopg.errors.UndefinedTable")
    ]


def test_async_cursor_and_unknown_verbs_stay_bounded(postgres_url: str, metrics: Metrics) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(
            postgres_url, cursor_factory=AsyncTracedCursor
        ) as conn:
            await conn.execute("select 2")
            await conn.execute("/* a comment first */ SELECT 3")

    asyncio.run(run())
    text = _text(metrics)
    labels = {"db_system_name": "postgresql", "error_type": ""}
    assert value(text, DB, **labels, db_operation_name="SELECT") == 1
    assert value(text, DB, **labels, db_operation_name="_OTHER") == 1


class _Api(BaseHTTPRequestHandler):
    """200 on /api/v1/namespaces/ci/pods, 404 elsewhere; records each request's traceparent."""

    def do_GET(self) -> None:
        self.server.traceparents.append(self.headers.get("traceparent"))  # type: ignore[attr-defined]
        found = self.path.split("?", 1)[0] == "/api/v1/namespaces/ci/pods"
        body = b'{"kind": "PodList", "items": []}' if found else b"{}"
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.traceparents = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _refused_port() -> tuple[int, socket.socket]:
    """A port bound but not listening: connecting to it is refused while the socket is held."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1], sock


def test_outgoing_requests_are_traced_measured_and_carry_the_trace(
    api: ThreadingHTTPServer, metrics: Metrics, spans: Any
) -> None:
    port = api.server_address[1]
    refused_port, held = _refused_port()
    parent = start_span("step list-pods")
    assert parent is not None
    with traced_client(base_url=f"http://user:pw@127.0.0.1:{port}") as client:
        ok = client.get("/api/v1/namespaces/ci/pods", params={"labelSelector": "app=ci"})
        missing = client.get("/api/v1/namespaces/ci/pods/runner-7f9c")
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{refused_port}/api/v1/namespaces/ci/pods")
    parent.close(None)
    held.close()
    assert ok.json()["kind"] == "PodList" and missing.status_code == 404

    text = _text(metrics)
    where = {"http_request_method": "GET", "server_address": "127.0.0.1"}
    assert (
        value(text, HTTP, **where, server_port=str(port), http_response_status_code="200", error_type="") == 1
    )
    assert (
        value(text, HTTP, **where, server_port=str(port), http_response_status_code="404", error_type="404")
        == 1
    )
    refused = {
        "server_port": str(refused_port),
        "http_response_status_code": "",
        "error_type": "httpx.ConnectError",
    }
    assert value(text, HTTP, **where, **refused) == 1
    assert "runner-7f9c" not in text and "namespaces" not in text  # never the path

    finished = {s.name: s for s in spans.get_finished_spans() if s.name == "step list-pods"}
    step = finished["step list-pods"]
    calls = sorted((s for s in spans.get_finished_spans() if s.name == "GET"), key=lambda s: s.start_time)
    assert len(calls) == 3
    assert all(c.parent is not None and c.parent.span_id == step.context.span_id for c in calls)
    received = api.traceparents  # type: ignore[attr-defined]
    assert received == [
        f"00-{c.context.trace_id:032x}-{c.context.span_id:016x}-{c.context.trace_flags:02x}"
        for c in calls[:2]
    ], received
    assert _attrs(calls[0])["url.full"] == f"http://127.0.0.1:{port}/api/v1/namespaces/ci/pods"
    assert _attrs(calls[0])["http.response.status_code"] == 200 and calls[0].status.is_ok
    assert _attrs(calls[1])["error.type"] == "404" and not calls[1].status.is_ok
    assert _attrs(calls[2])[
        "error.type"
    ] == "httpx.ConnectError" and "http.response.status_code" not in _attrs(calls[2])


def test_async_client_records_too(api: ThreadingHTTPServer, metrics: Metrics) -> None:
    port = api.server_address[1]

    async def run() -> int:
        async with traced_async_client() as client:
            response = await client.request("PURGE", f"http://127.0.0.1:{port}/cache")
            return response.status_code

    assert asyncio.run(run()) == 501  # BaseHTTPRequestHandler: no do_PURGE
    text = _text(metrics)
    labels = {"server_address": "127.0.0.1", "server_port": str(port), "http_response_status_code": "501"}
    assert value(text, HTTP, http_request_method="_OTHER", **labels, error_type="501") == 1


def test_exception_events_are_redacted_like_logs(postgres_url: str, metrics: Metrics, spans: Any) -> None:
    """A driver's or client's error text can carry a value: the span's exception event passes
    message and stack trace through `redact`, as log lines do (the gRPC spans did already)."""
    table = f"client_redact_{uuid.uuid4().hex[:8]}"
    with (
        psycopg.connect(postgres_url, cursor_factory=TracedCursor) as conn,
        pytest.raises(psycopg.errors.SyntaxError),
    ):
        conn.execute(f"CREATE TEMP TABLE {table} (password=hunter2-in-sql text)")
    span = start_span("call", kind="CLIENT")
    assert span is not None
    try:
        raise ValueError("login refused: api_key=hunter2-in-error")
    except ValueError as exc:
        span.close(exc)
    events = [e for s in spans.get_finished_spans() for e in s.events if e.name == "exception"]
    assert len(events) == 2, events
    for event in events:
        text = str(event.attributes["exception.message"]) + str(event.attributes["exception.stacktrace"])
        assert "hunter2" not in text and "***" in text, text
