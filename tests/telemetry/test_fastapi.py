"""A FastAPI app under `pilothouse serve`: one server span per request.

FastAPI 0.142+ traces every request itself once a global tracer provider exists ("FastAPI
provides OpenTelemetry support by default for HTTP request traces, metrics, and logs ... Telemetry
libraries can configure OpenTelemetry's global providers ... and FastAPI uses those providers
automatically", fastapi.tiangolo.com/advanced/opentelemetry/). Its span starts from the request
headers, not from the current span, so under Pilothouse each request had two SERVER spans in two
traces and the handler's logs carried FastAPI's trace id. Run with the newest FastAPI (the dev
extra has no upper bound; `make test-latest` upgrades it).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from tests.helpers import ServeProcess
from tests.jobs.conftest import wait_until
from tests.telemetry.test_otlp_e2e import Receiver, http_receiver  # noqa: F401  (fixture)

SERVER = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
TRACE_ID = "6bf92f3577b34da6a3ce929d0e0e4736"


def serve_fastapi(tmp_path: Path, receiver: Receiver, env: dict[str, str]) -> ServeProcess:
    """`pilothouse serve` of tests/apps/fastapi_app.py exporting OTLP to `receiver` (started)."""
    config = tmp_path / "pilothouse.toml"
    config.write_text(
        '[service]\nname = "shop"\napp = "tests.apps.fastapi_app:app"\n'
        '[lifecycle]\npre_stop_delay = "0s"\n[telemetry]\ntraces = "otlp"\n'
    )
    env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
    return ServeProcess(config, env=env).start()


def stop(serve: ServeProcess) -> None:
    """SIGTERM, and the exit code 0 (the shutdown's flush step exports the spans)."""
    try:
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0, serve.output
    finally:
        serve.stop()


def test_one_server_span_per_fastapi_request(
    http_receiver: Receiver,  # noqa: F811
    tmp_path: Path,
    serve_env: dict[str, str],
) -> None:
    import fastapi

    assert hasattr(fastapi, "telemetry"), f"fastapi {fastapi.__version__} has no native telemetry to test"
    serve = serve_fastapi(tmp_path, http_receiver, serve_env)
    try:
        fresh = httpx.get(f"{serve.app_url}/orders/7")
        continued = httpx.get(
            f"{serve.app_url}/orders/8", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
        )
        assert fresh.status_code == continued.status_code == 200
    finally:
        stop(serve)
    servers = [span for span in http_receiver.spans if span.kind == SERVER]
    assert sorted(span.name for span in servers) == ["GET /orders/{order_id}"] * 2, servers
    by_trace = {span.trace_id.hex(): span for span in servers}
    assert len(by_trace) == 2  # one trace per request
    assert TRACE_ID in by_trace  # the incoming trace is continued
    children = [span for span in http_receiver.spans if span.name == "load order"]
    assert len(children) == 2
    for child in children:
        assert child.parent_span_id == by_trace[child.trace_id.hex()].span_id
    lines = [json.loads(line) for line in serve.output.splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("logger") == "shop.orders"]
    assert len(logged) == 2, serve.output
    for line in logged:
        server = by_trace[line["trace_id"]]  # the handler's log line names the one server span's trace
        assert line["span_id"] == next(c for c in children if c.trace_id == server.trace_id).span_id.hex()
    assert "FASTAPI_OTEL_AUTO_CONFIGURE" not in serve.output


def test_fastapi_auto_configure_is_named_as_a_second_exporter(
    http_receiver: Receiver,  # noqa: F811
    tmp_path: Path,
    serve_env: dict[str, str],
) -> None:
    """FastAPI's docs tell users to set FASTAPI_OTEL_AUTO_CONFIGURE=true: FastAPI then adds its own
    OTLP exporter to Pilothouse's provider and every span arrives twice. Pilothouse says so."""
    serve = serve_fastapi(tmp_path, http_receiver, {**serve_env, "FASTAPI_OTEL_AUTO_CONFIGURE": "true"})
    try:
        assert httpx.get(f"{serve.app_url}/orders/7").status_code == 200
    finally:
        stop(serve)
    (warning,) = [line for line in serve.output.splitlines() if "FASTAPI_OTEL_AUTO_CONFIGURE" in line]
    assert json.loads(warning)["level"] == "warning"
    assert "exported twice" in warning
    wait_until(
        lambda: [s.name for s in http_receiver.spans].count("load order") == 2,
        what="FastAPI's exporter's copy (its batch processor exports on its own schedule)",
    )
