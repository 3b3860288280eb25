"""Application metric helpers against real pools (PostgreSQL via psycopg_pool and SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from pilothouse.metrics import Metrics
from pilothouse.telemetry import command, queue_depth, unit_of_work, watch_pool
from pilothouse.telemetry.state import state
from tests.telemetry.conftest import value


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    previous = state._metrics
    fresh = Metrics()
    state.bind(fresh, "correlation_id")
    yield fresh
    state._metrics = previous


def _scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_psycopg_pool_utilization(metrics: Metrics, postgres_url: str) -> None:
    from psycopg_pool import ConnectionPool

    # min_size=2 and wait(): borrowing two connections must not make the pool grow, because
    # psycopg_pool counts a connection being prepared in pool_size (it would read as in use).
    with ConnectionPool(postgres_url, min_size=2, max_size=4, open=True) as pool:
        pool.wait()
        watch_pool("db", pool)
        with pool.connection(), pool.connection():
            body = _scrape(metrics)
        assert value(body, "pilothouse_pool_connections_in_use", pool="db") == 2
        assert value(body, "pilothouse_pool_connections_max", pool="db") == 4
        assert value(body, "pilothouse_pool_utilization_ratio", pool="db") == 0.5
        assert value(_scrape(metrics), "pilothouse_pool_connections_in_use", pool="db") == 0


def test_sqlalchemy_pool_utilization(metrics: Metrics, postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"), pool_size=3, max_overflow=2
    )
    try:
        watch_pool("orm", engine)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            body = _scrape(metrics)
        assert value(body, "pilothouse_pool_connections_in_use", pool="orm") == 1
        assert value(body, "pilothouse_pool_connections_max", pool="orm") == 5
        assert value(body, "pilothouse_pool_utilization_ratio", pool="orm") == 0.2
    finally:
        engine.dispose()


def test_watch_pool_rejects_unknown_objects(metrics: Metrics) -> None:
    with pytest.raises(TypeError, match="not a psycopg_pool pool"):
        watch_pool("x", object())


def test_queue_depth_is_read_at_scrape_time(metrics: Metrics) -> None:
    queue = [1, 2, 3]
    queue_depth("orders", lambda: len(queue))
    assert value(_scrape(metrics), "pilothouse_queue_depth", queue="orders") == 3
    queue.clear()
    assert value(_scrape(metrics), "pilothouse_queue_depth", queue="orders") == 0


async def test_units_and_commands_count_outcomes(metrics: Metrics) -> None:
    @unit_of_work("import")
    async def run(fail: bool) -> None:
        if fail:
            raise ValueError("bad row")

    await run(False)
    await run(False)
    with pytest.raises(ValueError):
        await run(True)
    with command("LINK") as cmd:
        cmd.result = "BUSY"
    with command("LINK"):
        pass
    with pytest.raises(OSError), command("SEND"):
        raise OSError("down")
    body = _scrape(metrics)
    assert value(body, "pilothouse_unit_of_work_executions_total", unit="import", outcome="success") == 2
    assert value(body, "pilothouse_unit_of_work_executions_total", unit="import", outcome="error") == 1
    assert value(body, "pilothouse_unit_of_work_duration_seconds_count", unit="import") == 3
    for name, result in (("LINK", "BUSY"), ("LINK", "ok"), ("SEND", "error")):
        assert value(body, "pilothouse_command_duration_seconds_count", command=name, result=result) == 1


def test_an_undeclared_helper_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    """A helper missing from [monitoring].helpers has no generated panel or alert: say so, once."""
    previous = state._metrics
    try:
        state.bind(Metrics(), "correlation_id", frozenset({"queue_depth"}))
        with caplog.at_level("WARNING", logger="pilothouse.telemetry"):
            queue_depth("declared", lambda: 1.0)
            for _ in range(3):
                with unit_of_work("undeclared"):
                    pass
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "'unit_of_work'" in warnings[0], warnings
    finally:
        state.bind(previous or Metrics(), "correlation_id")


def test_request_id_is_the_current_requests() -> None:
    """`request_id()` is what a service passes on to the services it calls (the market gateway
    does; examples/market/acceptance.py proves the id reaches the next service's log lines)."""
    from pilothouse.telemetry import request_id
    from pilothouse.telemetry.context import current_request, request_context

    assert request_id() is None
    token = current_request.set(request_context("req-42"))
    try:
        assert request_id() == "req-42"
    finally:
        current_request.reset(token)
    assert request_id() is None
