"""Logs of a real `pilothouse serve`: JSON lines sharing request and trace ids, redaction."""

from __future__ import annotations

import json
import logging
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.telemetry.logs import JsonFormatter
from tests.helpers import ServeProcess

Request = tuple[str, dict[str, str]]


def _run(config: Path, env: dict[str, str], *requests: Request) -> tuple[list[httpx.Response], str]:
    serve = ServeProcess(config, env=env).start()
    try:
        responses = [httpx.get(serve.app_url + path, headers=headers) for path, headers in requests]
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    finally:
        serve.stop()
    return responses, serve.output


def test_every_line_is_json_and_a_request_shares_its_ids(
    config_factory: Callable[..., Path], serve_env: dict[str, str]
) -> None:
    config = config_factory('traces = "otlp"\nlog_format = "json"')
    env = {
        **serve_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }
    (given, generated), output = _run(config, env, ("/work", {"X-Request-ID": "req-given-1"}), ("/work", {}))
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "service"} <= line.keys(), line
        assert line["service"] == "demo"
    assert given.headers["x-request-id"] == "req-given-1"
    for response in (given, generated):
        rid = response.headers["x-request-id"]
        mine = [line for line in lines if line.get("request_id") == rid]
        # The app's two lines and the access line, all in the request's trace.
        assert [line["logger"] for line in mine] == ["demo", "demo", "pilothouse.access"]
        trace_id = response.headers["traceparent"].split("-")[1]
        assert {line["trace_id"] for line in mine} == {trace_id}
        assert mine[1]["value"] == 0  # `extra=` fields become JSON fields
        assert mine[2]["http_route"] == "/work" and mine[2]["status"] == 200


def test_text_format_access_log_off_and_secrets_redacted(
    config_factory: Callable[..., Path], serve_env: dict[str, str]
) -> None:
    config = config_factory('log_format = "text"\naccess_log = false')
    env = {**serve_env, "DEMO_LEAK": "hunter2-secret-value"}
    (r,), output = _run(config, env, ("/leak", {"X-Request-ID": "rid-7"}))
    assert r.status_code == 200
    assert "hunter2-secret-value" not in output
    leak = next(line for line in output.splitlines() if "connecting with" in line)
    assert "***" in leak and "request_id=rid-7" in leak
    assert "pilothouse.access" not in output
    assert not any(line.startswith("{") for line in output.splitlines())


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (1764115200.0, "2025-11-26T00:00:00.000Z"),
        (1764115200.5, "2025-11-26T00:00:00.500Z"),
        (math.nextafter(1764115201.0, 0), "2025-11-26T00:00:00.999Z"),  # never ".1000Z"
    ],
)
def test_timestamps_are_utc_milliseconds(created: float, expected: str) -> None:
    assert JsonFormatter("svc")._timestamp(created) == expected


def test_no_ansi_escape_codes_in_json_lines() -> None:
    """uvicorn logs `extra={"color_message": ...}` (its message with ANSI colours, for its own
    terminal formatter); a JSON line carries neither that copy nor escape codes in any string."""
    record = logging.makeLogRecord(
        {
            "name": "uvicorn.error",
            "msg": "Started server process [\x1b[36m%d\x1b[0m]",
            "args": (42,),
            "color_message": "Started server process [\x1b[36m%d\x1b[0m]",
            "worker": "\x1b[1mw1\x1b[0m",
        }
    )
    line = JsonFormatter("svc").format(record)
    assert "\x1b" not in line and "\\u001b" not in line
    doc = json.loads(line)
    assert doc["message"] == "Started server process [42]"
    assert doc["worker"] == "w1"
    assert "color_message" not in doc


def test_the_usual_access_line_is_written_as_the_formatter_writes_any_line() -> None:
    """The access line's one-f-string path (nothing to escape or redact) gives the text
    `JsonFormatter.line` gives; every other line goes through `line` itself. Line by line, and
    as the writer renders them: each setting's lines in one batch, timestamps in three seconds
    (the batch makes a second's text once)."""
    import itertools

    from pilothouse import redaction
    from pilothouse.telemetry.access import _render_lines
    from pilothouse.telemetry.context import request_context
    from pilothouse.telemetry.logs import ACCESS_LOGGER

    formatters = (JsonFormatter("shop"), JsonFormatter('sh"op', "tenant"))
    paths = (
        "/items/42",
        "/a@b",
        "/x=1",
        "/é",
        "/\x1b[31m",
        '/q"',
        "/b\\s",
        "/t\tab",
        "/items/s3cr3t-value",
        "/a/token=abc",
        "/a/token:abc",
        "/u:p@db",
        "/go/postgres://u:pw@db/x",
    )
    batches: dict[bool, tuple[list[Any], list[str]]] = {False: ([], []), True: ([], [])}
    try:
        for number, (
            secret,
            formatter,
            method,
            path,
            status,
            micros,
            request_id,
            correlation,
            ids,
            subject,
        ) in enumerate(
            itertools.product(
                (False, True),
                formatters,
                ("GET", 'PO"ST'),
                paths,
                (200, 503),
                (0, 123, 999_999, 12_345_678, -1),
                (None, "abc", "a.b:c@d/e+f=g-h_1", "trace id"),  # ids the middleware made or checked
                (None, "c1"),
                (None, ("a" * 32, "b" * 16)),
                (None, "alice"),
            )
        ):
            if request_id == "trace id":  # a new trace's id doubles as the request id (the same str)
                request_id = ids[0] if ids is not None else None
            if secret:  # a registered secret: every line is redacted, so none takes the short path
                redaction.register_secret("s3cr3t-value")
            created = 1_700_000_000.9996 + number // 1000
            ms, frac = divmod(micros, 1000)
            extra = f', "http_route": "/items/{{id}}", "status": {status}, "duration_ms": {ms}.{frac:03d}'
            if subject is not None:
                extra += f', "subject": {json.dumps(subject, ensure_ascii=False)}'
            message = f"{method} {path} {status} {ms}.{frac // 100}ms"
            expected = formatter.line(created, ACCESS_LOGGER, message, request_id, correlation, ids, extra)
            request = None
            if (request_id, correlation, subject) != (None, None, None) or number % 2:
                request = request_context(request_id, correlation)  # (all None: either way)
                request.subject = subject
            args = (method, path, status, micros, '"/items/{id}"', request, ids)
            assert _render_lines([(formatter, created, *args)]) == expected
            json.loads(expected)
            batches[secret][0].append((formatter, created, *args))
            batches[secret][1].append(expected)
        for secret, (items, lines) in batches.items():
            if secret:
                redaction.register_secret("s3cr3t-value")
            else:
                redaction.unregister_secret("s3cr3t-value")
            assert len({int(item[1]) for item in items}) > 3
            assert _render_lines(items) == "".join(lines)
    finally:
        redaction.unregister_secret("s3cr3t-value")


def test_a_request_id_the_middleware_accepts_needs_no_escaping_in_json() -> None:
    """`_render_lines` writes the request id as it is: every character the middleware lets through
    (`_SAFE_REQUEST_ID`) stands in a JSON string unescaped."""
    from pilothouse.telemetry.logs import json_string
    from pilothouse.telemetry.middleware import _SAFE_REQUEST_ID

    accepted = [chr(byte) for byte in range(256) if _SAFE_REQUEST_ID.fullmatch(bytes([byte]))]
    assert len(accepted) == 26 * 2 + 10 + len("_.:@/+=-")
    for char in accepted:
        assert json.dumps(char, ensure_ascii=False) == json_string(char) == f'"{char}"'


@pytest.mark.parametrize(
    "message",
    ["login failed, password: hunter2", "api_key:hunter2 rejected", "retry with token = hunter2"],
)
def test_key_value_secrets_are_masked_with_a_colon_as_with_an_equals_sign(message: str) -> None:
    """`redact` masks `password: x` as it masks `password=x`; the formatter's guard (skip lines
    that cannot hold a match) must not skip a line whose only separator is a colon, with or
    without registered secrets, nor the access line's short path."""
    from pilothouse.telemetry.access import _render_lines

    formatter = JsonFormatter("svc")
    record = logging.makeLogRecord({"name": "app", "msg": message, "detail": message})
    doc = json.loads(formatter.format(record))
    line = json.loads(formatter.line(0.0, "app", message, None, None, None, ""))
    path = "/" + message.replace(" ", "")
    access = json.loads(_render_lines([(formatter, 0.0, "GET", path, 200, 5, "null", None, None)]))
    for text in (doc["message"], doc["detail"], line["message"], access["message"]):
        assert "hunter2" not in text and "***" in text, text
