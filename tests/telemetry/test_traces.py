"""Server spans and nested unit-of-work and SQL spans, with an in-memory exporter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pilothouse.config.model import Config
from pilothouse.runtime.runtime import Runtime
from pilothouse.telemetry import feature
from tests.telemetry import demo_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _client(**telemetry: Any) -> httpx.AsyncClient:
    runtime = Runtime(
        Config.model_validate(
            {
                "service": {"name": "demo"},
                "telemetry": {"traces": "console", "access_log": False, **telemetry},
            }
        )
    )
    feature.install(runtime)  # keeps the provider the fixture installed
    app = runtime.wrap(demo_app.app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo")


def _by_name(spans: Any) -> dict[str, Any]:
    return {span.name: span for span in spans.get_finished_spans()}


async def test_units_nest_under_the_server_span_with_sql(
    spans: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_DATABASE_URL", postgres_url)
    async with _client(correlation_header="X-Transaction-ID") as client:
        r = await client.get(
            "/work",
            headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "X-Transaction-ID": "TX-9"},
        )
    assert r.json() == {"value": 42}
    named = _by_name(spans)
    server, a, b, c, sql = (named[n] for n in ("GET /work", "A", "B", "C", "SELECT"))
    # The incoming traceparent is continued: same trace, the caller's span is the parent.
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert r.headers["traceparent"].startswith(f"00-{TRACE_ID}-")
    # A -> B -> C -> SQL, each the child of the one before.
    for child, parent in ((a, server), (b, a), (c, b), (sql, c), (named["LINK"], server)):
        assert child.parent.span_id == parent.context.span_id, child.name
        assert child.context.trace_id == server.context.trace_id
    assert sql.attributes["db.query.text"] == "SELECT %s::int + 1"
    assert "41" not in repr(dict(sql.attributes))  # parameters are never recorded
    assert server.attributes["http.route"] == "/work"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["correlation_id"] == "TX-9"
    assert named["LINK"].attributes["pilothouse.command.result"] == "OK"


async def test_correlation_set_by_app_code_and_errors(spans: Any) -> None:
    async with _client(correlation_attribute="app.transaction_id") as client:
        await client.get("/work", params={"tx": "T-77"})
        with pytest.raises(RuntimeError):
            await client.get("/boom")
    named = _by_name(spans)
    assert named["GET /work"].attributes["app.transaction_id"] == "T-77"
    boom = named["GET /boom"]
    assert boom.status.status_code.name == "ERROR"
    assert boom.attributes["http.response.status_code"] == 500
    assert [event.name for event in boom.events] == ["exception"]


async def test_unmatched_requests_are_named_by_method_only(spans: Any) -> None:
    async with _client() as client:
        assert (await client.get("/nowhere")).status_code == 404
    (span,) = spans.get_finished_spans()
    assert span.name == "GET"
    assert "http.route" not in span.attributes
