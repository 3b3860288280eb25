"""Safe errors against a real `pilothouse serve`: an unhandled exception (carrying a secret in
its message) becomes problem+json with the request id, and neither the body nor the logs show
the secret; the app's own 500 page passes untouched; a failure after the response started is
logged and counted. Starlette in debug mode sends its traceback page first — the worst case."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.protection.conftest import SECRET, Serve


def counter(metrics: str, name: str, label: str) -> float:
    match = re.search(rf"^{name}_total{{{label}}} (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


def log_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_raising_route_answers_problem_json_without_exception_text(serve: Serve) -> None:
    service = serve("")
    response = httpx.get(f"{service.app_url}/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "request_id": response.headers["x-request-id"],
    }
    for leak in (SECRET, "Traceback", "ValueError", "could not connect"):
        assert leak not in response.text
    metrics = httpx.get(f"{service.ops_url}/metrics").text
    assert counter(metrics, "pilothouse_http_unhandled_errors", 'response="problem"') == 1
    service.stop()
    output = service.output
    assert SECRET not in output  # the exception is logged, its secret masked
    [error] = [line for line in log_lines(output) if line["logger"] == "pilothouse.protection"]
    assert error["level"] == "error"
    assert error["request_id"] == body["request_id"]
    assert "ValueError: could not connect with password ***" in str(error["exception"])


def test_problem_body_carries_the_trace_id(serve: Serve) -> None:
    """With tracing on (exporting to a closed port: the ids exist, the export fails quietly), the
    body's trace id is the one in the `traceparent` the request continued."""
    service = serve('[telemetry]\ntraces = "otlp"\n')
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = httpx.get(
        f"{service.app_url}/boom", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert response.status_code == 500
    assert response.json()["trace_id"] == trace_id
    assert SECRET not in response.text


def test_without_safe_errors_the_traceback_reaches_the_client(serve: Serve) -> None:
    """The same route with `[protection.errors] enabled = false`: Starlette's debug page, with
    the exception text — what the tests above prove is replaced."""
    service = serve("[protection.errors]\nenabled = false\n")
    response = httpx.get(f"{service.app_url}/boom")
    assert response.status_code == 500
    assert "ValueError" in response.text


def test_app_own_error_page_passes_untouched(serve: Serve) -> None:
    service = serve("")
    response = httpx.get(f"{service.app_url}/own-error")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "the app's own error page"}
    metrics = httpx.get(f"{service.ops_url}/metrics").text
    assert counter(metrics, "pilothouse_http_unhandled_errors", 'response="problem"') == 0


def test_failure_after_the_response_started_is_logged_and_counted(serve: Serve) -> None:
    service = serve("")
    with (
        pytest.raises(httpx.HTTPError),
        httpx.stream("GET", f"{service.app_url}/stream-then-raise") as response,
    ):
        assert response.status_code == 200
        response.read()  # the body breaks off: the server closes the unfinished response
    metrics = httpx.get(f"{service.ops_url}/metrics").text
    assert counter(metrics, "pilothouse_http_unhandled_errors", 'response="started"') == 1
    service.stop()
    [error] = [line for line in log_lines(service.output) if line["logger"] == "pilothouse.protection"]
    assert "after the response started" in str(error["message"])
