"""Fixtures of the telemetry tests: the demo service config and scrape parsing."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, write_config

DEMO_APP = "tests.telemetry.demo_app:app"


def demo_config(directory: Path, telemetry: str = "", extra: str = "") -> Path:
    """A pilothouse.toml for the demo app with `telemetry` lines under [telemetry]."""
    return write_config(
        directory,
        f"""
[service]
name = "demo"
app = "{DEMO_APP}"
version = "1.2.3"

[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "5s"
flush_timeout = "5s"

[monitoring]
helpers = ["unit_of_work", "command"]   # what demo_app calls

[telemetry]
{telemetry}
{extra}
""",
    )


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text scrape, keyed by (name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(body: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a series that was never touched)."""
    return samples(body).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def serve_env() -> dict[str, str]:
    """The demo app is imported from the repository root."""
    return {"PYTHONPATH": str(ROOT)}


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Path]:
    return lambda telemetry="", extra="": demo_config(tmp_path, telemetry, extra)


@pytest.fixture(scope="session")
def _memory_exporter() -> object:
    """One in-memory exporter on the process's global tracer provider (the API allows one
    provider per process, so it is shared by every test here and cleared per test)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_memory_exporter: object) -> object:
    _memory_exporter.clear()  # type: ignore[attr-defined]
    return _memory_exporter


class HttpReceiver:
    """A real OTLP/HTTP endpoint: records each request (headers, decoded body); `answers`
    (status, headers) are given in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        self.targets: list[str] = []  # each request's target (a proxy is asked for whole URLs)
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                status, extra = receiver.answers.pop(0) if receiver.answers else (200, {})
                with receiver.got:
                    receiver.requests.append((headers, ExportTraceServiceRequest.FromString(body)))
                    receiver.targets.append(self.path)
                    receiver.got.notify_all()
                self.send_response(status)
                for key, val in {"Content-Type": "application/x-protobuf", **extra}.items():
                    self.send_header(key, val)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self.got:
            assert self.got.wait_for(lambda: len(self.requests) >= count, timeout), self.requests


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.server.shutdown()
